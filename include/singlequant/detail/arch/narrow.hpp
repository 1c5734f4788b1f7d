// singlequant/detail/arch/narrow.hpp - the registers narrower than Arch's own that a kernel of Arch
// may use for a short part of its data (a block of 4 or 8 floats inside a 16-lane AVX-512 kernel),
// so that such shapes stay vectorised instead of falling back to scalar code, and the one adapter
// through which the kernels use them (the block product of fwht_kernels.hpp, the combine of
// kronecker_kernels.hpp, the channel lines of givens_kernels.hpp).
#ifndef SINGLEQUANT_DETAIL_ARCH_NARROW_HPP
#define SINGLEQUANT_DETAIL_ARCH_NARROW_HPP

#include <cstddef>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "../../config.hpp"
#include "avx2.hpp"
#include "sse2.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail::arch {

/// The register of `Bytes` bytes (16 or 32) a kernel of Arch uses for parts narrower than its own
/// batches: ymm_vector on AVX-512, xmm_vector on AVX and AVX-512; void where there is none (the
/// scalar path, registers no wider than Bytes, or a translation unit without the instructions).
template <class T, class Arch, std::size_t Bytes>
struct narrow_vector {
  using type = void;
};

#if XSIMD_WITH_AVX512F
template <class T, class Arch>
  requires std::is_base_of_v<xsimd::avx512f, Arch>
struct narrow_vector<T, Arch, 32> {
  using type = ymm_vector<T, Arch>;
};
#endif
#if XSIMD_WITH_AVX
template <class T, class Arch>
  requires std::is_base_of_v<xsimd::avx, Arch> || std::is_base_of_v<xsimd::avx512f, Arch>
struct narrow_vector<T, Arch, 16> {
  using type = xmm_vector<T, Arch>;
};
#endif

template <class T, class Arch, std::size_t Bytes>
using narrow_vector_t = typename narrow_vector<T, Arch, Bytes>::type;

/// The register operations of a column tile in a narrow register V (xmm_vector or ymm_vector):
/// the interface the kernels' tile code is written against, which their own batch tiles share:
///   type, size                 the register type and its lanes
///   load(p), store(p, v)       unaligned
///   broadcast(s)               every lane s
///   negate(v)                  exact (sign-bit flip, -0 for +0)
///   fma(x, y, z), fms(x, y, z) x y + z and x y - z, fused where the translation unit has FMA
/// and +, -, * (one rounding each) on type.
template <class V>
struct narrow_ops {
  using type = V;
  static constexpr std::size_t size = V::size;
  template <class T>
  static SINGLEQUANT_INLINE type load(const T* p) noexcept { return V::load(p); }
  template <class T>
  static SINGLEQUANT_INLINE void store(T* p, const type& v) noexcept { V::store(p, v); }
  template <class T>
  static SINGLEQUANT_INLINE type broadcast(T s) noexcept { return V::broadcast(s); }
  static SINGLEQUANT_INLINE type negate(const type& v) noexcept { return V::negate(v); }
  static SINGLEQUANT_INLINE type fma(const type& x, const type& y, const type& z) noexcept {
    return V::fma(x, y, z);
  }
  static SINGLEQUANT_INLINE type fms(const type& x, const type& y, const type& z) noexcept {
    return V::fms(x, y, z);
  }
};

/// narrow_ops of the Bytes-wide register of Arch, or void where there is none.
template <class T, class Arch, std::size_t Bytes>
using narrow_ops_t = typename std::conditional_t<std::is_void_v<narrow_vector_t<T, Arch, Bytes>>,
                                                 std::type_identity<void>,
                                                 std::type_identity<narrow_ops<narrow_vector_t<T, Arch, Bytes>>>>::type;

}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_ARCH_NARROW_HPP
