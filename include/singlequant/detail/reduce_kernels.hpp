// singlequant/detail/reduce_kernels.hpp - absmax and dot-product kernels (the pattern every kernel follows).
#ifndef SINGLEQUANT_DETAIL_REDUCE_KERNELS_HPP
#define SINGLEQUANT_DETAIL_REDUCE_KERNELS_HPP

#include <cmath>
#include <cstddef>

#include "simd_core.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail {

/// max_i |x_i| over the non-NaN elements (0 for an empty or all-NaN input; Inf counts).
template <class T, class Arch>
T absmax_impl(const T* x, std::size_t n) noexcept {
  T best = T(0);
  std::size_t i = 0;
  if constexpr (!simd::is_scalar_v<Arch>) {
    using batch = xsimd::batch<T, Arch>;
    constexpr std::size_t lanes = batch::size;
    batch acc(T(0));
    for (; i + lanes <= n; i += lanes) {
      const batch a = xsimd::abs(batch::load_unaligned(x + i));
      acc = xsimd::select(a > acc, a, acc);  // a > acc is false for NaN, so NaN never wins
    }
    best = simd::reduce_max(acc);
  }
  for (; i < n; ++i) {
    const T a = std::fabs(x[i]);
    if (a > best) best = a;
  }
  return best;
}

/// sum_i x_i y_i accumulated in T (lane-parallel partial sums on SIMD paths).
template <class T, class Arch>
T dot_impl(const T* x, const T* y, std::size_t n) noexcept {
  T sum = T(0);
  std::size_t i = 0;
  if constexpr (!simd::is_scalar_v<Arch>) {
    using batch = xsimd::batch<T, Arch>;
    constexpr std::size_t lanes = batch::size;
    batch acc0(T(0)), acc1(T(0));
    for (; i + 2 * lanes <= n; i += 2 * lanes) {
      acc0 = xsimd::fma(batch::load_unaligned(x + i), batch::load_unaligned(y + i), acc0);
      acc1 = xsimd::fma(batch::load_unaligned(x + i + lanes), batch::load_unaligned(y + i + lanes), acc1);
    }
    sum = simd::reduce_add(acc0 + acc1);
  }
  for (; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

template <class Arch>
struct reduce_kernel {
  static float absmax(const float* x, std::size_t n) noexcept;
  static double absmax(const double* x, std::size_t n) noexcept;
  static float dot(const float* x, const float* y, std::size_t n) noexcept;
  static double dot(const double* x, const double* y, std::size_t n) noexcept;
};

template <class Arch>
float reduce_kernel<Arch>::absmax(const float* x, std::size_t n) noexcept {
  return absmax_impl<float, Arch>(x, n);
}
template <class Arch>
double reduce_kernel<Arch>::absmax(const double* x, std::size_t n) noexcept {
  return absmax_impl<double, Arch>(x, n);
}
template <class Arch>
float reduce_kernel<Arch>::dot(const float* x, const float* y, std::size_t n) noexcept {
  return dot_impl<float, Arch>(x, y, n);
}
template <class Arch>
double reduce_kernel<Arch>::dot(const double* x, const double* y, std::size_t n) noexcept {
  return dot_impl<double, Arch>(x, y, n);
}

SINGLEQUANT_EXTERN_KERNEL(reduce_kernel)

}  // namespace detail
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_REDUCE_KERNELS_HPP
