// singlequant/detail/arch/avx.hpp - 256-bit register helpers for kernels of wider architectures.
//
// ymm_vector<T, Arch>: one 256-bit register of T as a column tile, for the parts of an AVX-512
// kernel narrower than a 512-bit register (an 8-float block). Raw intrinsics templated on the
// caller's Arch, always inlined, for the reason given in sse2.hpp (ODR: xsimd's batch<T, avx2>
// functions are plain inline templates shared by every translation unit). Every operation is the
// IEEE one of the scalar code (one rounding each).
#ifndef SINGLEQUANT_DETAIL_ARCH_AVX_HPP
#define SINGLEQUANT_DETAIL_ARCH_AVX_HPP

#include <cstddef>

#include "../simd_core.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail::arch {

template <class T, class Arch>
struct ymm_vector;  // defined for float and double when the translation unit has AVX

#if XSIMD_WITH_AVX
template <class Arch>
struct ymm_vector<float, Arch> {
  static constexpr std::size_t size = 8;
  __m256 v;
  static SINGLEQUANT_INLINE ymm_vector load(const float* p) noexcept { return {_mm256_loadu_ps(p)}; }
  static SINGLEQUANT_INLINE void store(float* p, ymm_vector x) noexcept { _mm256_storeu_ps(p, x.v); }
  static SINGLEQUANT_INLINE ymm_vector broadcast(float s) noexcept { return {_mm256_set1_ps(s)}; }
  /// Exact negation (sign-bit flip, -0 for +0).
  static SINGLEQUANT_INLINE ymm_vector negate(ymm_vector x) noexcept {
    return {_mm256_xor_ps(x.v, _mm256_set1_ps(-0.0f))};
  }
  /// x y + z, fused where the translation unit has FMA (as xsimd::fma on the wider batches).
  static SINGLEQUANT_INLINE ymm_vector fma(ymm_vector x, ymm_vector y, ymm_vector z) noexcept {
#  ifdef __FMA__
    return {_mm256_fmadd_ps(x.v, y.v, z.v)};
#  else
    return {_mm256_add_ps(_mm256_mul_ps(x.v, y.v), z.v)};
#  endif
  }
  friend SINGLEQUANT_INLINE ymm_vector operator+(ymm_vector a, ymm_vector b) noexcept {
    return {_mm256_add_ps(a.v, b.v)};
  }
  friend SINGLEQUANT_INLINE ymm_vector operator-(ymm_vector a, ymm_vector b) noexcept {
    return {_mm256_sub_ps(a.v, b.v)};
  }
  friend SINGLEQUANT_INLINE ymm_vector operator*(ymm_vector a, ymm_vector b) noexcept {
    return {_mm256_mul_ps(a.v, b.v)};
  }
  SINGLEQUANT_INLINE ymm_vector& operator+=(ymm_vector b) noexcept { return *this = *this + b; }
};

template <class Arch>
struct ymm_vector<double, Arch> {
  static constexpr std::size_t size = 4;
  __m256d v;
  static SINGLEQUANT_INLINE ymm_vector load(const double* p) noexcept { return {_mm256_loadu_pd(p)}; }
  static SINGLEQUANT_INLINE void store(double* p, ymm_vector x) noexcept { _mm256_storeu_pd(p, x.v); }
  static SINGLEQUANT_INLINE ymm_vector broadcast(double s) noexcept { return {_mm256_set1_pd(s)}; }
  static SINGLEQUANT_INLINE ymm_vector negate(ymm_vector x) noexcept {
    return {_mm256_xor_pd(x.v, _mm256_set1_pd(-0.0))};
  }
  static SINGLEQUANT_INLINE ymm_vector fma(ymm_vector x, ymm_vector y, ymm_vector z) noexcept {
#  ifdef __FMA__
    return {_mm256_fmadd_pd(x.v, y.v, z.v)};
#  else
    return {_mm256_add_pd(_mm256_mul_pd(x.v, y.v), z.v)};
#  endif
  }
  friend SINGLEQUANT_INLINE ymm_vector operator+(ymm_vector a, ymm_vector b) noexcept {
    return {_mm256_add_pd(a.v, b.v)};
  }
  friend SINGLEQUANT_INLINE ymm_vector operator-(ymm_vector a, ymm_vector b) noexcept {
    return {_mm256_sub_pd(a.v, b.v)};
  }
  friend SINGLEQUANT_INLINE ymm_vector operator*(ymm_vector a, ymm_vector b) noexcept {
    return {_mm256_mul_pd(a.v, b.v)};
  }
  SINGLEQUANT_INLINE ymm_vector& operator+=(ymm_vector b) noexcept { return *this = *this + b; }
};
#endif

}  // namespace detail::arch
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_ARCH_AVX_HPP
