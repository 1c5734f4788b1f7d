#include <singlequant/hadamard.hpp>
#include <singlequant/kronecker.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "test_support.hpp"

namespace sq = singlequant;

namespace {
/// The dense Kronecker product (R1 (x) R2)[p b + q][s b + t] = R1[p][s] R2[q][t] (docs/method.md section 8).
std::vector<double> dense_kronecker(const std::vector<double>& r1, std::size_t a,
                                    const std::vector<double>& r2, std::size_t b) {
  const std::size_t n = a * b;
  std::vector<double> k(n * n);
  for (std::size_t p = 0; p < a; ++p)
    for (std::size_t q = 0; q < b; ++q)
      for (std::size_t s = 0; s < a; ++s)
        for (std::size_t t = 0; t < b; ++t) k[(p * b + q) * n + s * b + t] = r1[p * a + s] * r2[q * b + t];
  return k;
}
}  // namespace

// Lane factor first (3 x 5 .. 5 x 67) and row factor first (6 x 1, 37 x 6, 172 x 8 = 1376).
TEST_CASE_TEMPLATE("kronecker_apply equals the dense Kronecker product, row by row", T, float, double) {
  struct shape {
    std::size_t a, b;
  };
  for (const shape factors :
       {shape{3, 5}, shape{4, 8}, shape{1, 7}, shape{6, 1}, shape{12, 32}, shape{5, 67}, shape{37, 6},
        shape{172, 8}}) {
    const std::size_t a = factors.a, b = factors.b;
    const auto r1 = sq_test::random_normal<T>(a * a, a);
    const auto r2 = sq_test::random_normal<T>(b * b, 100 + b);
    const auto dense = dense_kronecker(std::vector<double>(r1.begin(), r1.end()), a,
                                       std::vector<double>(r2.begin(), r2.end()), b);
    const std::size_t n = a * b, rows = 3, stride = n + 2;
    auto x = sq_test::random_normal<T>(rows * stride, n);
    const auto original = x;
    sq::kronecker_apply<T>(sq::matrix_view<const T>(r1, a, a), sq::matrix_view<const T>(r2, b, b),
                           sq::matrix_view<T>(x, rows, n, stride));
    for (std::size_t r = 0; r < rows; ++r) {
      for (std::size_t j = 0; j < n; ++j) {
        double ref = 0, magnitude = 0;
        for (std::size_t i = 0; i < n; ++i) {
          ref += double(original[r * stride + i]) * dense[i * n + j];
          magnitude += std::fabs(double(original[r * stride + i]) * dense[i * n + j]);
        }
        INFO("a = " << a << " b = " << b << " row " << r << " column " << j);
        CHECK(std::fabs(ref - double(x[r * stride + j])) <=
              double(std::numeric_limits<T>::epsilon()) * 4 * double(a + b) * (magnitude + 1));
      }
      for (std::size_t j = n; j < stride; ++j) CHECK(x[r * stride + j] == original[r * stride + j]);
    }
    // The vector overload agrees with the batch.
    std::vector<T> v(original.begin(), original.begin() + long(n));
    sq::kronecker_apply<T>(sq::matrix_view<const T>(r1, a, a), sq::matrix_view<const T>(r2, b, b),
                           sq::vector_view<T>(v));
    for (std::size_t j = 0; j < n; ++j) CHECK(v[j] == x[j]);
  }
}

TEST_CASE("kronecker_apply with Hadamard factors is the hadamard_transform of the product order") {
  // R1 = H_172 / sqrt(172), R2 = H_64 / 8: x (R1 (x) R2) is the 11008 transform (same convention).
  const auto split = sq::hadamard_kronecker_split(11008);
  REQUIRE(split.has_value());
  const std::size_t a = split->a, b = split->b;
  std::vector<float> r1(a * a), r2(b * b);
  const auto h1 = sq::hadamard_matrix(a), h2 = sq::hadamard_matrix(b);
  for (std::size_t i = 0; i < a * a; ++i) r1[i] = float(h1[i] / std::sqrt(double(a)));
  for (std::size_t i = 0; i < b * b; ++i) r2[i] = float(h2[i] / std::sqrt(double(b)));
  auto x = sq_test::random_normal<float>(11008, 1);
  auto y = x;
  sq::kronecker_apply<float>(sq::matrix_view<const float>(r1, a, a), sq::matrix_view<const float>(r2, b, b),
                             sq::vector_view<float>(x));
  sq::hadamard_transform<float>(11008).apply(y);
  for (std::size_t j = 0; j < 11008; ++j) CHECK(x[j] == doctest::Approx(y[j]).epsilon(1e-4).scale(1.0));
}

TEST_CASE("kronecker_apply: bad shapes and aliasing are errors that write nothing") {
  std::vector<float> r1(9, 1.0f), r2(16, 1.0f), x(2 * 10, 1.0f);
  const sq::matrix_view<const float> f1(r1, 3, 3), f2(r2, 4, 4);
  SQ_CHECK_ERROR_CONTAINS(sq::kronecker_apply<float>(f1, f2, sq::matrix_view<float>(x, 2, 10)),
                          "kronecker_apply", "row length 10", "3 x 4 = 12", "2 rows");
  SQ_CHECK_ERROR_CONTAINS(sq::kronecker_apply<float>(sq::matrix_view<const float>(r2, 2, 8), f2,
                                                     sq::matrix_view<float>(x, 1, 8)),
                          "row factor R_a is 2 x 8");
  SQ_CHECK_ERROR_CONTAINS(sq::kronecker_apply<float>(f1, sq::matrix_view<const float>(r1, 1, 9),
                                                     sq::matrix_view<float>(x, 1, 3)),
                          "lane factor R_b is 1 x 9");
  std::vector<float> shared(9 + 12, 1.0f);
  SQ_CHECK_ERROR_CONTAINS(
      sq::kronecker_apply<float>(sq::matrix_view<const float>(shared.data(), 3, 3), f2,
                                 sq::matrix_view<float>(shared.data() + 8, 1, 12)),
      "overlaps");
  CHECK(std::all_of(x.begin(), x.end(), [](float v) { return v == 1.0f; }));
  CHECK(std::all_of(shared.begin(), shared.end(), [](float v) { return v == 1.0f; }));
}

TEST_CASE("hadamard_kronecker_split: Hadamard factors, b a power of two, smallest a + b") {
  struct expected {
    std::size_t n, a, b;
  };
  for (auto e : {expected{11008, 172, 64}, expected{13824, 108, 128}, expected{4096, 64, 64},
                 expected{8192, 128, 64}, expected{896, 28, 32}, expected{14336, 112, 128},
                 expected{29568, 924, 32}, expected{36864, 144, 256}, expected{12, 12, 1},
                 expected{1, 1, 1}}) {
    const auto split = sq::hadamard_kronecker_split(e.n);
    REQUIRE_MESSAGE(split.has_value(), e.n);
    CHECK_MESSAGE(split->a == e.a, e.n);
    CHECK_MESSAGE(split->b == e.b, e.n);
    CHECK(sq::is_hadamard_order_supported(split->a));
  }
  CHECK(!sq::hadamard_kronecker_split(14).has_value());
  CHECK(!sq::hadamard_kronecker_split(0).has_value());
}

TEST_CASE("issue 14 - hadamard_kronecker_split: the largest widths neither divide by zero nor loop") {
  // Before: 2^63 doubled b past 2^63 to 0 and computed n % 0 (SIGFPE).
  const auto top = sq::hadamard_kronecker_split(std::size_t{1} << 63);
  REQUIRE(top.has_value());
  CHECK(top->a * top->b == std::size_t{1} << 63);
  const auto largest_odd = sq::hadamard_kronecker_split(~std::size_t{0});
  CHECK_FALSE(largest_odd.has_value());
  const auto three_times = sq::hadamard_kronecker_split(std::size_t{3} << 62);
  if (three_times) CHECK(three_times->a * three_times->b == std::size_t{3} << 62);
}
