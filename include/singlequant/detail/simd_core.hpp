// singlequant/detail/simd_core.hpp - what every kernel needs from xsimd: the scalar tag, the
// default architecture, lane reductions and the extern-instantiation macro. The rules kernels
// follow are in simd.hpp (public: isa, dispatch); this file is the part detail/ may include.
#ifndef SINGLEQUANT_DETAIL_SIMD_CORE_HPP
#define SINGLEQUANT_DETAIL_SIMD_CORE_HPP

#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "../config.hpp"
#include "arch/generic.hpp"  // the per-ISA helpers (intrinsics live in detail/arch/ only)
#include "xsimd_compat.hpp"  // the only place that tests XSIMD_VERSION_* (needs >= 8.1)

#ifndef SINGLEQUANT_RUNTIME_DISPATCH
#  define SINGLEQUANT_RUNTIME_DISPATCH 0
#endif
// Which per-architecture kernel sets the program links (runtime dispatch only; set by the helper).
#ifndef SINGLEQUANT_DISPATCH_AVX512BW
#  define SINGLEQUANT_DISPATCH_AVX512BW 0
#endif
#ifndef SINGLEQUANT_DISPATCH_AVX2
#  define SINGLEQUANT_DISPATCH_AVX2 0
#endif
#ifndef SINGLEQUANT_DISPATCH_SSE4_2
#  define SINGLEQUANT_DISPATCH_SSE4_2 0
#endif
#ifndef SINGLEQUANT_DISPATCH_SSE2
#  define SINGLEQUANT_DISPATCH_SSE2 0
#endif

SINGLEQUANT_BEGIN_NAMESPACE

namespace simd {

/// Tag of the portable scalar reference path (no xsimd types involved).
struct scalar_arch {
  static constexpr const char* name() noexcept { return "scalar"; }
};

template <class Arch>
inline constexpr bool is_scalar_v = std::is_same_v<Arch, scalar_arch>;

#if defined(SINGLEQUANT_FORCE_SCALAR) || defined(XSIMD_NO_SUPPORTED_ARCHITECTURE)
using default_arch = scalar_arch;
#else
/// The best architecture the including translation unit is compiled for.
using default_arch = xsimd::default_arch;
#endif

/// Sum of the lanes of a batch, as a pairwise tree over the stored lanes (a fixed order for a
/// given width). Not xsimd::hadd: it was renamed reduce_add in 9.0, and GCC 12 reports a false
/// maybe-uninitialized inside its AVX-512 double version under -Werror.
template <class T, class Arch>
SINGLEQUANT_INLINE T reduce_add(const xsimd::batch<T, Arch>& x) noexcept {
  constexpr std::size_t lanes = xsimd::batch<T, Arch>::size;
  alignas(64) T v[lanes];
  x.store_aligned(v);
  for (std::size_t width = lanes / 2; width > 0; width /= 2)
    for (std::size_t i = 0; i < width; ++i) v[i] += v[i + width];
  return v[0];
}

/// x y + z with one rounding on every FMA architecture: xsimd 8.1 has no AVX-512 fma (its generic
/// x * y + z rounds twice unless the compiler happens to contract it, which -O0 and clang do not).
template <class T, class Arch>
SINGLEQUANT_INLINE xsimd::batch<T, Arch> fused_fma(const xsimd::batch<T, Arch>& x,
                                                   const xsimd::batch<T, Arch>& y,
                                                   const xsimd::batch<T, Arch>& z) noexcept {
  return detail::arch::fmadd(x, y, z, Arch{});
}

/// Largest lane of a batch (no NaN in x assumed).
template <class T, class Arch>
SINGLEQUANT_INLINE T reduce_max(const xsimd::batch<T, Arch>& x) noexcept {
  alignas(64) T lanes[xsimd::batch<T, Arch>::size];
  x.store_aligned(lanes);
  T best = lanes[0];
  for (std::size_t i = 1; i < xsimd::batch<T, Arch>::size; ++i) best = lanes[i] > best ? lanes[i] : best;
  return best;
}

}  // namespace simd

SINGLEQUANT_END_NAMESPACE

// SINGLEQUANT_EXTERN_KERNEL(Kernel, LeadingArgs...): placed after a kernel's definition. In runtime
// dispatch mode it declares the per-architecture instantiations extern, so this translation unit
// (compiled without architecture flags) only calls them; instantiate.hpp defines them.
#define SINGLEQUANT_PP_WHEN_0(...)
#define SINGLEQUANT_PP_WHEN_1(...) __VA_ARGS__
#define SINGLEQUANT_PP_WHEN_IMPL(flag, ...) SINGLEQUANT_PP_WHEN_##flag(__VA_ARGS__)
#define SINGLEQUANT_PP_WHEN(flag, ...) SINGLEQUANT_PP_WHEN_IMPL(flag, __VA_ARGS__)
#define SINGLEQUANT_EXTERN_KERNEL_FOR(ARCH, KERNEL, ...) \
  extern template struct KERNEL<__VA_ARGS__ __VA_OPT__(, ) ARCH>;
#if SINGLEQUANT_RUNTIME_DISPATCH
#  define SINGLEQUANT_EXTERN_KERNEL(KERNEL, ...)                                                  \
    SINGLEQUANT_PP_WHEN(SINGLEQUANT_DISPATCH_AVX512BW,                                            \
                        SINGLEQUANT_EXTERN_KERNEL_FOR(xsimd::avx512bw, KERNEL, __VA_ARGS__))      \
    SINGLEQUANT_PP_WHEN(SINGLEQUANT_DISPATCH_AVX2,                                                \
                        SINGLEQUANT_EXTERN_KERNEL_FOR(xsimd::fma3<xsimd::avx2>, KERNEL, __VA_ARGS__)) \
    SINGLEQUANT_PP_WHEN(SINGLEQUANT_DISPATCH_SSE4_2,                                              \
                        SINGLEQUANT_EXTERN_KERNEL_FOR(xsimd::sse4_2, KERNEL, __VA_ARGS__))        \
    SINGLEQUANT_PP_WHEN(SINGLEQUANT_DISPATCH_SSE2,                                                \
                        SINGLEQUANT_EXTERN_KERNEL_FOR(xsimd::sse2, KERNEL, __VA_ARGS__))
#else
#  define SINGLEQUANT_EXTERN_KERNEL(KERNEL, ...)
#endif

#endif  // SINGLEQUANT_DETAIL_SIMD_CORE_HPP
