// singlequant/detail/arch/narrow.hpp - the registers narrower than Arch's own that a kernel of Arch
// may use for a short part of its data (a block of 4 or 8 floats inside a 16-lane AVX-512 kernel),
// so that such shapes stay vectorised instead of falling back to scalar code.
#ifndef SINGLEQUANT_DETAIL_ARCH_NARROW_HPP
#define SINGLEQUANT_DETAIL_ARCH_NARROW_HPP

#include <cstddef>
#include <type_traits>

#include "../simd_core.hpp"
#include "avx.hpp"
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

}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_ARCH_NARROW_HPP
