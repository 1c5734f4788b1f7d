// singlequant/reduce.hpp - vectorised reductions shared by the statistics and quantisers.
#ifndef SINGLEQUANT_REDUCE_HPP
#define SINGLEQUANT_REDUCE_HPP

#include <type_traits>

#include "config.hpp"
#include "detail/reduce_kernels.hpp"
#include "simd.hpp"
#include "view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// max_i |x_i| ignoring NaN elements; 0 for an empty or all-NaN vector; +Inf if any |x_i| is Inf.
/// Example: absmax(std::vector<float>{1.f, -3.f, NAN}) == 3.f
template <class T>
  requires float_or_double<T>
[[nodiscard]] T absmax(vector_view<const T> x) noexcept {
  return detail::dispatch(
      [&](auto arch) { return detail::reduce_kernel<decltype(arch)>::absmax(x.data(), x.size()); });
}

/// sum_i x_i y_i; the summation order depends on the SIMD width (results agree to rounding).
template <class T>
  requires float_or_double<T>
[[nodiscard]] T dot(vector_view<const T> x, vector_view<const T> y) {
  detail::check(x.size() == y.size(), "dot", "sizes differ: ", x.size(), " vs ", y.size());
  return detail::dispatch([&](auto arch) {
    return detail::reduce_kernel<decltype(arch)>::dot(x.data(), y.data(), x.size());
  });
}

// Overloads so containers of float/double deduce T without spelling vector_view<const T>.
template <class R>
  requires float_or_double<std::ranges::range_value_t<R>>
[[nodiscard]] auto absmax(const R& x) noexcept {
  return absmax(vector_view<const std::ranges::range_value_t<R>>(x));
}
template <class R1, class R2>
  requires float_or_double<std::ranges::range_value_t<R1>> &&
           std::is_same_v<std::ranges::range_value_t<R1>, std::ranges::range_value_t<R2>>
[[nodiscard]] auto dot(const R1& x, const R2& y) {
  using T = std::ranges::range_value_t<R1>;
  return dot(vector_view<const T>(x), vector_view<const T>(y));
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_REDUCE_HPP
