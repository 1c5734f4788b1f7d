#include <singlequant/detail/reduce_kernels.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "../test_support.hpp"
#include "arch_test.hpp"

using singlequant::detail::reduce_kernel;
using sq_test::scalar_arch;
using sq_test::test_arch;

TEST_CASE_TEMPLATE("absmax: SIMD path equals the scalar path bit for bit", T, float, double) {
  for (std::size_t n = 0; n < 80; ++n) {
    auto x = sq_test::random_normal<T>(n, 100 + n, 3.0);
    if (n > 5) x[n / 2] = std::numeric_limits<T>::quiet_NaN();
    CHECK(reduce_kernel<test_arch>::absmax(x.data(), n) == reduce_kernel<scalar_arch>::absmax(x.data(), n));
  }
}

TEST_CASE_TEMPLATE("dot: SIMD path equals the scalar path to rounding", T, float, double) {
  for (std::size_t n : {0u, 1u, 15u, 16u, 17u, 255u, 4096u}) {
    auto x = sq_test::random_normal<T>(n, 7 + n);
    auto y = sq_test::random_normal<T>(n, 9 + n);
    double magnitude = 0;
    for (std::size_t i = 0; i < n; ++i) magnitude += std::fabs(double(x[i]) * double(y[i]));
    const double eps = std::numeric_limits<T>::epsilon();
    const double simd = reduce_kernel<test_arch>::dot(x.data(), y.data(), n);
    const double scalar = reduce_kernel<scalar_arch>::dot(x.data(), y.data(), n);
    // Both are sums of the same n products in different orders: |difference| <= 2 n eps sum |x_i y_i|.
    CHECK(std::fabs(simd - scalar) <= 2.0 * double(n) * eps * magnitude + 1e-30);
  }
}
