// singlequant/detail/arch/scalar.hpp - the portable ops of the INT4 GEMM (one lane; the ops shape is
// described in detail/arch/avx512.hpp). The reference the SIMD paths are tested against.
#ifndef SINGLEQUANT_DETAIL_ARCH_SCALAR_HPP
#define SINGLEQUANT_DETAIL_ARCH_SCALAR_HPP

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "../../config.hpp"
#include "base_tag.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail::arch {
namespace {

struct scalar_int4_ops {
  using ivec = std::int32_t;
  using wvec = std::uint32_t;  // 4 bytes, byte b in bits 8b..8b+7
  static constexpr std::size_t lanes = 1;
  static constexpr std::size_t tile_rows = 1;
  static constexpr bool weights_outer = true;  // loop order of the tile (int4_gemm_kernels.hpp)
  static constexpr std::size_t tile_panels = 1;

  static ivec set1(std::int32_t v) noexcept { return v; }
  static void unpack(const std::uint8_t* p, wvec& lo, wvec& hi) noexcept {
    lo = hi = 0;
    for (unsigned b = 0; b < 4; ++b) {
      lo |= std::uint32_t{p[b] & 0xFu} << (8 * b);
      hi |= std::uint32_t{static_cast<std::uint32_t>(p[b] >> 4)} << (8 * b);
    }
  }
  static ivec dot8(ivec acc, wvec lo, wvec hi, const std::int8_t* a) noexcept {
    for (unsigned b = 0; b < 4; ++b) {
      acc += static_cast<std::int32_t>((lo >> (8 * b)) & 0xFFu) * std::int32_t{a[b]};
      acc += static_cast<std::int32_t>((hi >> (8 * b)) & 0xFFu) * std::int32_t{a[4 + b]};
    }
    return acc;
  }
  static void fold(float* c, const float* s, ivec acc) noexcept {
    *c = std::fma(static_cast<float>(acc), *s, *c);
  }
};

/// The INT4 GEMM ops of a tag without a SIMD set of its own (the ISA files overload this).
template <bool Vnni>
std::type_identity<scalar_int4_ops> int4_ops(base_tag) noexcept;  // decltype only

/// The quantise ops (detail/quant_kernels.hpp) of a tag without raw-intrinsics helpers: none (void),
/// the kernels then use xsimd alone. Any tag, simd::scalar_arch included (the ISA files overload it).
template <class = void>
std::type_identity<void> quant_ops(...) noexcept;  // decltype only

}  // namespace
}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_ARCH_SCALAR_HPP
