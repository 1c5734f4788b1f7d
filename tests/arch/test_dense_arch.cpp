#include <singlequant/detail/dense_kernels.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "../test_support.hpp"
#include "arch_test.hpp"

using singlequant::detail::dense_kernel;
using sq_test::scalar_arch;
using sq_test::test_arch;

TEST_CASE_TEMPLATE("dense kernels: multiply_add and axpy against the scalar path and plain sums", T, float, double) {
  const double tolerance = std::is_same_v<T, float> ? 1e-5 : 1e-13;
  for (std::size_t rows : {1u, 3u, 8u, 13u})
    for (std::size_t cols : {1u, 5u, 16u, 37u, 70u})
      for (std::size_t depth : {0u, 1u, 9u, 64u})
        for (const bool subtract : {false, true}) {
          const std::size_t lda = rows + 2, ldb = cols + 3, ldc = cols + 1;
          const auto a = sq_test::random_normal<T>(std::max<std::size_t>(depth, 1) * lda, 1 + rows);
          const auto b = sq_test::random_normal<T>(std::max<std::size_t>(depth, 1) * ldb, 2 + cols);
          const auto c0 = sq_test::random_normal<T>(rows * ldc, 3 + depth);
          auto c_simd = c0, c_scalar = c0;
          dense_kernel<T, test_arch>::multiply_add(a.data(), lda, b.data(), ldb, depth, c_simd.data(), ldc, rows, cols, subtract);
          dense_kernel<T, scalar_arch>::multiply_add(a.data(), lda, b.data(), ldb, depth, c_scalar.data(), ldc, rows, cols, subtract);
          // The same call on column and row pieces gives the same bits (callers split into tasks).
          auto c_split = c0;
          const std::size_t half_rows = rows / 2, half_cols = cols / 2;
          // Pieces [0, half) and [half, end) of the rows and of the columns (a piece may be empty).
          for (const bool upper_rows : {false, true})
            for (const bool upper_cols : {false, true}) {
              const std::size_t r0 = upper_rows ? half_rows : 0, r1 = upper_rows ? rows : half_rows;
              const std::size_t j0 = upper_cols ? half_cols : 0, j1 = upper_cols ? cols : half_cols;
              if (r0 == r1 || j0 == j1) continue;
              dense_kernel<T, test_arch>::multiply_add(a.data() + r0, lda, b.data() + j0, ldb, depth,
                                                       c_split.data() + r0 * ldc + j0, ldc, r1 - r0, j1 - j0, subtract);
            }
          CHECK(std::memcmp(c_split.data(), c_simd.data(), c_simd.size() * sizeof(T)) == 0);
          for (std::size_t r = 0; r < rows; ++r)
            for (std::size_t j = 0; j < cols; ++j) {
              double sum = 0;
              for (std::size_t k = 0; k < depth; ++k)
                sum += static_cast<double>(a[k * lda + r]) * static_cast<double>(b[k * ldb + j]);
              const double expected = static_cast<double>(c0[r * ldc + j]) + (subtract ? -sum : sum);
              REQUIRE(sq_test::close(c_simd[r * ldc + j], expected, tolerance * (1 + static_cast<double>(depth))));
              REQUIRE(sq_test::close(c_scalar[r * ldc + j], expected, tolerance * (1 + static_cast<double>(depth))));
            }
          CHECK(c_simd[cols] == c0[cols]);  // the padding column is untouched
        }
  for (std::size_t n : {0u, 1u, 7u, 33u}) {
    const auto x = sq_test::random_normal<T>(n + 1, 4);
    auto y_simd = sq_test::random_normal<T>(n + 1, 5), y_scalar = y_simd;
    const T last = y_simd[n];
    dense_kernel<T, test_arch>::axpy(T(0.75), x.data(), y_simd.data(), n);
    dense_kernel<T, scalar_arch>::axpy(T(0.75), x.data(), y_scalar.data(), n);
    for (std::size_t j = 0; j < n; ++j) CHECK(sq_test::close(y_simd[j], y_scalar[j], tolerance));
    CHECK(y_simd[n] == last);
  }
}
