// singlequant/detail/arch/sse2.hpp - 128-bit register helpers for kernels of wider architectures.
//
// xmm_vector<T, Arch>: one 128-bit register of T as a column tile, for the parts of a kernel that
// are narrower than Arch's own registers (a 4-float block on AVX2 or AVX-512). Raw intrinsics, not
// xsimd::batch<T, sse2>: xsimd's functions are plain inline templates of the batch's arch, so an
// AVX-512 translation unit's copy of batch<float, sse2>::operator+ could be the one the linker keeps
// for the SSE2 kernels. These wrappers are templated on the caller's Arch (per-ISA symbols) and
// always inlined. Every operation is the IEEE one of the scalar code (one rounding each).
#ifndef SINGLEQUANT_DETAIL_ARCH_SSE2_HPP
#define SINGLEQUANT_DETAIL_ARCH_SSE2_HPP

#include <cstddef>

#include "../simd_core.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail::arch {

template <class T, class Arch>
struct xmm_vector;  // defined for float and double when the translation unit has SSE2

#if XSIMD_WITH_SSE2
template <class Arch>
struct xmm_vector<float, Arch> {
  static constexpr std::size_t size = 4;
  __m128 v;
  static SINGLEQUANT_INLINE xmm_vector load(const float* p) noexcept { return {_mm_loadu_ps(p)}; }
  static SINGLEQUANT_INLINE void store(float* p, xmm_vector x) noexcept { _mm_storeu_ps(p, x.v); }
  static SINGLEQUANT_INLINE xmm_vector broadcast(float s) noexcept { return {_mm_set1_ps(s)}; }
  /// Exact negation (sign-bit flip, -0 for +0).
  static SINGLEQUANT_INLINE xmm_vector negate(xmm_vector x) noexcept {
    return {_mm_xor_ps(x.v, _mm_set1_ps(-0.0f))};
  }
  /// x y + z, fused where the translation unit has FMA (as xsimd::fma on the wider batches).
  static SINGLEQUANT_INLINE xmm_vector fma(xmm_vector x, xmm_vector y, xmm_vector z) noexcept {
#  ifdef __FMA__
    return {_mm_fmadd_ps(x.v, y.v, z.v)};
#  else
    return {_mm_add_ps(_mm_mul_ps(x.v, y.v), z.v)};
#  endif
  }
  friend SINGLEQUANT_INLINE xmm_vector operator+(xmm_vector a, xmm_vector b) noexcept {
    return {_mm_add_ps(a.v, b.v)};
  }
  friend SINGLEQUANT_INLINE xmm_vector operator-(xmm_vector a, xmm_vector b) noexcept {
    return {_mm_sub_ps(a.v, b.v)};
  }
  friend SINGLEQUANT_INLINE xmm_vector operator*(xmm_vector a, xmm_vector b) noexcept {
    return {_mm_mul_ps(a.v, b.v)};
  }
  SINGLEQUANT_INLINE xmm_vector& operator+=(xmm_vector b) noexcept { return *this = *this + b; }
};

template <class Arch>
struct xmm_vector<double, Arch> {
  static constexpr std::size_t size = 2;
  __m128d v;
  static SINGLEQUANT_INLINE xmm_vector load(const double* p) noexcept { return {_mm_loadu_pd(p)}; }
  static SINGLEQUANT_INLINE void store(double* p, xmm_vector x) noexcept { _mm_storeu_pd(p, x.v); }
  static SINGLEQUANT_INLINE xmm_vector broadcast(double s) noexcept { return {_mm_set1_pd(s)}; }
  static SINGLEQUANT_INLINE xmm_vector negate(xmm_vector x) noexcept {
    return {_mm_xor_pd(x.v, _mm_set1_pd(-0.0))};
  }
  static SINGLEQUANT_INLINE xmm_vector fma(xmm_vector x, xmm_vector y, xmm_vector z) noexcept {
#  ifdef __FMA__
    return {_mm_fmadd_pd(x.v, y.v, z.v)};
#  else
    return {_mm_add_pd(_mm_mul_pd(x.v, y.v), z.v)};
#  endif
  }
  friend SINGLEQUANT_INLINE xmm_vector operator+(xmm_vector a, xmm_vector b) noexcept {
    return {_mm_add_pd(a.v, b.v)};
  }
  friend SINGLEQUANT_INLINE xmm_vector operator-(xmm_vector a, xmm_vector b) noexcept {
    return {_mm_sub_pd(a.v, b.v)};
  }
  friend SINGLEQUANT_INLINE xmm_vector operator*(xmm_vector a, xmm_vector b) noexcept {
    return {_mm_mul_pd(a.v, b.v)};
  }
  SINGLEQUANT_INLINE xmm_vector& operator+=(xmm_vector b) noexcept { return *this = *this + b; }
};
#endif

}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_ARCH_SSE2_HPP
