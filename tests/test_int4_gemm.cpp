#include <singlequant/int4_gemm.hpp>
#include <singlequant/quant.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "int4_gemm_support.hpp"
#include "test_support.hpp"

namespace sq = singlequant;
using sq::granularity;
using sq::int4_grid;

TEST_CASE("int4_gemm: float output against dequantise-then-multiply, per-row and per-group, both grids") {
  // Quantised random normal data, so scales and codes are what quantize() produces.
  for (const int4_grid grid : {int4_grid::symmetric7, int4_grid::full8})
    for (const std::size_t group : {0u, 32u, 128u}) {
      const std::size_t m = 7, n = 45, k = 256;
      const auto x = sq_test::random_normal<float>(m * k, 11);
      const auto wf = sq_test::random_normal<float>(n * k, 12);
      const auto a = sq::quantize(sq::matrix_view<const float>(x.data(), m, k), {.grid = grid, .gran = granularity::per_row});
      const auto wq = sq::quantize(sq::matrix_view<const float>(wf.data(), n, k),
                                   {.grid = grid, .gran = group == 0 ? granularity::per_row : granularity::per_group,
                                    .group_size = group});
      std::vector<float> ad(m * k), wd(n * k);
      sq::dequantize(a, sq::matrix_view<float>(ad.data(), m, k));
      sq::dequantize(wq, sq::matrix_view<float>(wd.data(), n, k));
      const sq::int4_gemm_weights w(wq);
      std::vector<float> y(m * n);
      sq::int4_gemm(a, w, sq::matrix_view<float>(y.data(), m, n));
      for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) {
          double ref = 0, size = 0;
          for (std::size_t c = 0; c < k; ++c) {
            ref += static_cast<double>(ad[i * k + c]) * wd[j * k + c];
            size += std::abs(static_cast<double>(ad[i * k + c]) * wd[j * k + c]);
          }
          // Stated tolerance: 1e-5 of the sum of |a w| (the dequantised floats round once each).
          REQUIRE(std::abs(y[i * n + j] - ref) <= 1e-5 * size + 1e-30);
        }
    }
}

TEST_CASE("int4_gemm: bias, accumulate, row strides and bit-identical results for any thread count") {
  const std::size_t m = 70, n = 150, k = 384;
  const auto a = sq_test::random_int4(m, k, granularity::per_row, 0, int4_grid::full8, 2, 5);
  const auto wq = sq_test::random_int4(n, k, granularity::per_group, 64, int4_grid::symmetric7, 2, 6);
  const sq::int4_gemm_weights w(wq);
  const auto expected = sq_test::int4_reference(a, wq);
  const auto bias = sq_test::random_normal<float>(n, 7);
  const std::size_t ldy = n + 3;
  std::vector<float> y1(m * ldy, 0.5f);
  sq::int4_gemm(a, w, sq::matrix_view<float>(y1.data(), m, n, ldy), {.bias = bias});
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t j = 0; j < n; ++j)
      REQUIRE(sq_test::close(y1[i * ldy + j], expected[i * n + j] + bias[j], 1e-4 * (1 + std::abs(expected[i * n + j]))));
    CHECK(y1[i * ldy + n] == 0.5f);  // the stride padding is untouched
  }
  for (const std::size_t threads : {0u, 2u, 3u, 7u}) {
    std::vector<float> y(m * ldy, 0.5f);
    sq::int4_gemm(a, w, sq::matrix_view<float>(y.data(), m, n, ldy), {.bias = bias, .threads = threads});
    CHECK(std::memcmp(y.data(), y1.data(), y.size() * sizeof(float)) == 0);
  }
  std::vector<float> acc(m * n, 2.0f);
  sq::int4_gemm(a, w, sq::matrix_view<float>(acc.data(), m, n), {.accumulate = true, .threads = 2});
  for (std::size_t i = 0; i < m * n; ++i)
    REQUIRE(sq_test::close(acc[i], 2.0 + expected[i], 1e-4 * (1 + std::abs(expected[i]))));
}

TEST_CASE("int4_gemm: GEMV sizes M = 1..8 agree with the reference") {
  const std::size_t n = 100, k = 4096 + 8;
  const auto wq = sq_test::random_int4(n, k, granularity::per_row, 0, int4_grid::symmetric7, 1, 9);
  const sq::int4_gemm_weights w(wq);
  for (std::size_t m = 1; m <= 8; ++m) {
    const auto a = sq_test::random_int4(m, k, granularity::per_row, 0, int4_grid::symmetric7, 1, 10 + m);
    const auto expected = sq_test::int4_reference(a, wq);
    std::vector<float> y(m * n);
    sq::int4_gemm(a, w, sq::matrix_view<float>(y.data(), m, n));
    for (std::size_t i = 0; i < m * n; ++i) REQUIRE(static_cast<double>(y[i]) == expected[i]);  // exact: powers of two
  }
}

TEST_CASE("int4_gemm: empty shapes and bad input") {
  const auto a = sq_test::random_int4(3, 64, granularity::per_row, 0, int4_grid::symmetric7, 1, 1);
  const auto wq = sq_test::random_int4(5, 64, granularity::per_row, 0, int4_grid::symmetric7, 1, 2);
  const sq::int4_gemm_weights w(wq);
  std::vector<float> y(3 * 5);
  // Zero sizes: nothing to do (M = 0, N = 0) or y = bias (K = 0).
  const auto a0 = sq_test::random_int4(0, 64, granularity::per_row, 0, int4_grid::symmetric7, 1, 3);
  sq::int4_gemm(a0, w, sq::matrix_view<float>(y.data(), 0, 5));
  const auto ak0 = sq_test::random_int4(3, 0, granularity::per_row, 0, int4_grid::symmetric7, 1, 3);
  const sq::int4_gemm_weights wk0(sq_test::random_int4(5, 0, granularity::per_row, 0, int4_grid::symmetric7, 1, 4));
  const std::vector<float> bias{1, 2, 3, 4, 5};
  sq::int4_gemm(ak0, wk0, sq::matrix_view<float>(y.data(), 3, 5), {.bias = bias});
  CHECK(y[5 + 3] == 4.0f);
  const sq::int4_gemm_weights empty_w;
  sq::int4_gemm(sq::packed_int4{}, empty_w, sq::matrix_view<float>(y.data(), 0, 0));

  SQ_CHECK_ERROR_CONTAINS(sq::int4_gemm(a, w, sq::matrix_view<float>(y.data(), 5, 3)), "int4_gemm", "output is 5 x 3");
  const auto a_wide = sq_test::random_int4(3, 65, granularity::per_row, 0, int4_grid::symmetric7, 1, 5);
  SQ_CHECK_ERROR_CONTAINS(sq::int4_gemm(a_wide, w, sq::matrix_view<float>(y.data(), 3, 5)), "int4_gemm", "K = 65", "K = 64");
  SQ_CHECK_ERROR_CONTAINS(sq::int4_gemm(a, w, sq::matrix_view<float>(y.data(), 3, 5), {.bias = std::span<const float>(bias).first(4)}),
                          "int4_gemm", "bias has 4");
  const auto a_group = sq_test::random_int4(3, 64, granularity::per_group, 32, int4_grid::symmetric7, 1, 6);
  SQ_CHECK_ERROR_CONTAINS(sq::int4_gemm(a_group, w, sq::matrix_view<float>(y.data(), 3, 5)), "int4_gemm", "per_row or per_tensor");
  sq::packed_int4 a_zero(3, 64, granularity::per_row, 0, int4_grid::full8, true);
  SQ_CHECK_ERROR_CONTAINS(sq::int4_gemm(a_zero, w, sq::matrix_view<float>(y.data(), 3, 5)), "int4_gemm", "zero points");
  // Wrong grid: a -8 in a symmetric7 tensor (activations and weights).
  auto a_bad = a;
  a_bad.row_codes(1)[3] = 0x88;
  SQ_CHECK_ERROR_CONTAINS(sq::int4_gemm(a_bad, w, sq::matrix_view<float>(y.data(), 3, 5)), "int4_gemm", "row 1", "outside its grid");
  for (const std::uint8_t byte : {std::uint8_t{0x08}, std::uint8_t{0x80}}) {  // one nibble -8, low or high
    auto a_one = a;
    a_one.row_codes(2)[31] = byte;
    SQ_CHECK_ERROR_CONTAINS(sq::int4_gemm(a_one, w, sq::matrix_view<float>(y.data(), 3, 5)), "int4_gemm", "row 2",
                            "code -8 outside its grid");
  }
  auto w_bad = wq;
  w_bad.row_codes(4)[0] = 0x08;
  SQ_CHECK_ERROR_CONTAINS(sq::int4_gemm_weights{w_bad}, "int4_gemm_weights", "code -8 at (4, 0)", "grid");
  SQ_CHECK_ERROR_CONTAINS(sq::int4_gemm_weights(sq::packed_int4(4, 64, granularity::per_row, 0, int4_grid::full8, true)),
                          "int4_gemm_weights", "zero points");
  SQ_CHECK_ERROR_CONTAINS(sq::int4_gemm_weights(sq::packed_int4(4, 64, granularity::per_column, 0, int4_grid::full8, false)),
                          "int4_gemm_weights", "per_column");
  SQ_CHECK_ERROR_CONTAINS(sq::int4_gemm_weights(sq::packed_int4(1, std::size_t{1} << 23, granularity::per_row, 0, int4_grid::full8, false)),
                          "int4_gemm_weights", "K = 8388608", "2^23");
  auto w_nan = wq;
  w_nan.scales()[2] = std::nanf("");
  SQ_CHECK_ERROR_CONTAINS(sq::int4_gemm_weights{w_nan}, "int4_gemm_weights", "row 2", "not finite");
}
