#include <singlequant/hadamard.hpp>
#include <singlequant/kronecker.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace sq = singlequant;

namespace {

/// H H^T == n I exactly, +-1 entries, first row and column +1. Rows are bit-packed, so every pair
/// is an exact integer dot product n - 2 popcount(row_i xor row_j). With sampled_rows > 0 only that
/// many rows (first, last and evenly spaced) are checked against every other row.
bool is_normalized_hadamard(const std::vector<std::int8_t>& h, std::size_t n,
                            std::size_t sampled_rows = 0) {
  if (h.size() != n * n) return false;
  const std::size_t words = (n + 63) / 64;
  std::vector<std::uint64_t> bits(n * words, 0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      const std::int8_t v = h[i * n + j];
      if (v != 1 && v != -1) return false;
      if (v < 0) bits[i * words + j / 64] |= std::uint64_t{1} << (j % 64);
    }
  for (std::size_t j = 0; j < n; ++j)
    if (h[j] != 1 || h[j * n] != 1) return false;
  std::vector<std::size_t> rows;
  for (std::size_t i = 0; i < n; ++i)
    if (sampled_rows == 0 || i == 1 || i == n - 1 || i % (n / sampled_rows) == 0) rows.push_back(i);
  for (std::size_t i : rows)
    for (std::size_t j = sampled_rows == 0 ? i + 1 : 0; j < n; ++j) {
      if (j == i) continue;
      std::size_t differ = 0;
      for (std::size_t w = 0; w < words; ++w)
        differ += static_cast<std::size_t>(std::popcount(bits[i * words + w] ^ bits[j * words + w]));
      if (2 * differ != n) return false;  // dot = n - 2 differ = 0
    }
  return true;
}

int sylvester_entry(std::size_t i, std::size_t j) { return std::popcount(i & j) % 2 == 0 ? 1 : -1; }

/// y = x (H_K (x) H_m) in double, straight from the definition with the library's H_K and the
/// Sylvester H_m (independent of the fast paths): y[s m + v] = sum_{p, u} x[p m + u] H_K[p][s] H_m[u][v].
std::vector<double> kronecker_reference(const std::vector<double>& x, std::size_t k, std::size_t m,
                                        bool transpose_k) {
  const std::vector<std::int8_t> hk =
      k == 1 ? std::vector<std::int8_t>{1} : sq::detail::build_hadamard(k);
  std::vector<double> z(k * m, 0.0), y(k * m, 0.0);
  for (std::size_t p = 0; p < k; ++p)  // Z = X H_m
    for (std::size_t v = 0; v < m; ++v)
      for (std::size_t u = 0; u < m; ++u) z[p * m + v] += x[p * m + u] * sylvester_entry(u, v);
  for (std::size_t s = 0; s < k; ++s)  // Y = H_K^T Z (or H_K Z for the transpose)
    for (std::size_t p = 0; p < k; ++p) {
      const int c = transpose_k ? hk[s * k + p] : hk[p * k + s];
      for (std::size_t v = 0; v < m; ++v) y[s * m + v] += c * z[p * m + v];
    }
  return y;
}

template <class T>
std::vector<double> to_double(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

template <class T>
double tolerance() {
  return std::is_same_v<T, float> ? 2e-5 : 1e-12;
}

}  // namespace

TEST_CASE("hadamard_matrix: every constructed order up to 1024 satisfies H H^T = n I exactly") {
  // All row pairs up to order 256; above, 12 sampled rows against every row (keeps ASan runs short).
  std::size_t constructed = 0;
  for (std::size_t n = 1; n <= 1024; ++n) {
    if (!sq::is_hadamard_order_supported(n)) continue;
    ++constructed;
    INFO("order " << n);
    CHECK(is_normalized_hadamard(sq::hadamard_matrix(n), n, n <= 256 ? 0 : 12));
  }
  CHECK(constructed >= 200);
}

TEST_CASE("hadamard_matrix: the orders LLM widths need, and the constructions behind them") {
  // 172 and 156: Goethals-Seidel; 148, 76, 924: Paley II; 108, 140: Paley I; 28: Paley I over
  // GF(3^3); 52: Paley II over GF(5^2).
  for (std::size_t n : {172u, 156u, 148u, 108u, 140u, 76u, 924u, 28u, 52u}) {
    INFO("order " << n);
    REQUIRE(sq::factor_hadamard_size(n).has_value());
    CHECK(sq::factor_hadamard_size(n)->base == n);  // built directly, no Kronecker split
    CHECK(is_normalized_hadamard(sq::hadamard_matrix(n), n));
  }
  CHECK(sq::detail::direct_construction_of(172) == sq::detail::direct_construction::goethals_seidel);
  CHECK(sq::detail::direct_construction_of(156) == sq::detail::direct_construction::goethals_seidel);
  CHECK(sq::detail::direct_construction_of(28) == sq::detail::direct_construction::paley_one);
  CHECK(sq::detail::direct_construction_of(52) == sq::detail::direct_construction::paley_two);
  // Prime-power fields with larger degree: GF(7^3) (order 344), GF(3^4) (order 164), GF(3^5) (244).
  auto paley_one_344 = sq::detail::paley_one(7, 3);
  CHECK(is_normalized_hadamard(paley_one_344, 344));
  CHECK(is_normalized_hadamard(sq::detail::paley_two(3, 4), 164));
  CHECK(is_normalized_hadamard(sq::detail::paley_one(3, 5), 244));
}

TEST_CASE("hadamard_matrix: Sylvester order and Kronecker structure of non-power-of-two orders") {
  const auto h8 = sq::hadamard_matrix(8);
  for (std::size_t i = 0; i < 8; ++i)
    for (std::size_t j = 0; j < 8; ++j) CHECK(h8[i * 8 + j] == sylvester_entry(i, j));
  // 2752 = 172 x 16: H[p 16 + u][s 16 + v] = H_172[p][s] H_16[u][v].
  const auto h172 = sq::hadamard_matrix(172);
  const std::size_t n = 2752;
  const auto big = sq::hadamard_matrix(n);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; j += 7)
      if (big[i * n + j] != h172[(i / 16) * 172 + j / 16] * sylvester_entry(i % 16, j % 16))
        FAIL("entry " << i << ", " << j);
  // Sampled rows are orthogonal to sampled others (exact integers).
  for (std::size_t i : {0u, 1000u, 2751u})
    for (std::size_t j = 0; j < n; j += 13) {
      long dot = 0;
      for (std::size_t c = 0; c < n; ++c) dot += big[i * n + c] * big[j * n + c];
      if (dot != (i == j ? long(n) : 0)) FAIL("rows " << i << " and " << j << " not orthogonal");
    }
}

TEST_CASE("is_hadamard_order_supported and factor_hadamard_size") {
  for (std::size_t n : {1u, 2u, 4u, 12u, 96u, 172u, 156u, 896u, 4864u, 5120u, 11008u, 13824u, 14336u,
                        18944u, 28672u, 29568u, 8960u, 17920u, 27648u, 36864u, 1u << 20})
    CHECK_MESSAGE(sq::is_hadamard_order_supported(n), n);
  for (std::size_t n : {0u, 3u, 6u, 10u, 14u, 30u, 92u, 86u, 43u})
    CHECK_MESSAGE(!sq::is_hadamard_order_supported(n), n);
  struct expected {
    std::size_t n, base, pow2;
  };
  for (auto e : {expected{11008, 172, 64}, expected{13824, 108, 128}, expected{4096, 1, 4096},
                 expected{12, 12, 1}, expected{24, 12, 2}, expected{29568, 924, 32},
                 expected{14336, 28, 512}, expected{4864, 76, 64}, expected{1, 1, 1}}) {
    const auto f = sq::factor_hadamard_size(e.n);
    REQUIRE_MESSAGE(f.has_value(), e.n);
    CHECK(f->base == e.base);
    CHECK(f->pow2 == e.pow2);
  }
  CHECK(!sq::factor_hadamard_size(14).has_value());
  CHECK(!sq::factor_hadamard_size(0).has_value());
}

TEST_CASE("hadamard_matrix and hadamard_transform: unsupported orders are clear errors") {
  SQ_CHECK_ERROR_CONTAINS(sq::hadamard_matrix(14), "hadamard_matrix", "14", "12 and 16");
  SQ_CHECK_ERROR_CONTAINS(sq::hadamard_matrix(30), "30", "28 and 32");
  SQ_CHECK_ERROR_CONTAINS(sq::hadamard_matrix(92), "92", "88 and 96");
  SQ_CHECK_ERROR_CONTAINS(sq::hadamard_matrix(0), "0", "nearest supported order: 1");
  SQ_CHECK_ERROR_CONTAINS(sq::hadamard_matrix(32768), "32768", "dense limit");
  SQ_CHECK_ERROR_CONTAINS(sq::hadamard_transform<float>(14), "hadamard_transform", "14", "12 and 16");
  SQ_CHECK_ERROR_CONTAINS(sq::hadamard_transform<float>(92), "92", "88 and 96");
  SQ_CHECK_ERROR_CONTAINS(sq::hadamard_transform<float>(232), "232", "228 and 240");
  SQ_CHECK_ERROR_CONTAINS(sq::hadamard_transform<float>(0), "size 0");
  SQ_CHECK_ERROR_CONTAINS(sq::hadamard_transform<float>(96, {.block_size = 14}), "block size 14",
                          "does not divide", "96");
  SQ_CHECK_ERROR_CONTAINS(sq::hadamard_transform<float>(84, {.block_size = 14}), "block size 14",
                          "12 and 16");
}

TEST_CASE_TEMPLATE("fwht equals the dense Sylvester product for every k <= 12", T, float, double) {
  for (std::size_t k = 0; k <= 12; ++k) {
    const std::size_t n = std::size_t{1} << k;
    const auto x = sq_test::random_normal<T>(n, 10 + k);
    for (auto norm : {sq::normalization::none, sq::normalization::orthonormal}) {
      auto y = x;
      sq::fwht(y, norm);
      const double scale = norm == sq::normalization::none ? 1.0 : 1.0 / std::sqrt(double(n));
      double worst = 0;
      for (std::size_t j = 0; j < n; ++j) {
        double ref = 0;
        for (std::size_t i = 0; i < n; ++i) ref += double(x[i]) * sylvester_entry(i, j);
        worst = std::max(worst, std::fabs(ref * scale - double(y[j])) / std::sqrt(double(n)));
      }
      INFO("n = " << n);
      CHECK(worst <= tolerance<T>() * (1 + double(k)));
    }
  }
}

TEST_CASE_TEMPLATE("fwht of large sizes: sampled outputs against the definition, round trip", T, float,
                   double) {
  for (std::size_t k : {13u, 14u, 15u, 17u, 19u, 20u}) {
    const std::size_t n = std::size_t{1} << k;
    const auto x = sq_test::random_normal<T>(n, 100 + k);
    auto y = x;
    sq::fwht(y);
    for (std::size_t j : {std::size_t{0}, std::size_t{1}, n / 3, n / 2 + 5, n - 1}) {
      double ref = 0;
      for (std::size_t i = 0; i < n; ++i) ref += double(x[i]) * sylvester_entry(i, j);
      ref /= std::sqrt(double(n));
      INFO("n = " << n << " j = " << j);
      CHECK(std::fabs(ref - double(y[j])) <= tolerance<T>() * 4 * double(k));
    }
    sq::fwht(y);  // orthonormal Sylvester H is its own inverse
    double worst = 0;
    for (std::size_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(double(y[i]) - double(x[i])));
    CHECK(worst <= tolerance<T>() * 4 * double(k));
  }
}

TEST_CASE("fwht_rows transforms every row, keeps the padding, and checks the row length") {
  const std::size_t rows = 5, n = 256, stride = 260;
  auto data = sq_test::random_normal<float>(rows * stride, 3);
  const auto original = data;
  sq::fwht_rows(sq::matrix_view<float>(data, rows, n, stride), sq::normalization::none);
  for (std::size_t r = 0; r < rows; ++r) {
    std::vector<float> expected(original.begin() + long(r * stride), original.begin() + long(r * stride + n));
    sq::fwht(expected, sq::normalization::none);
    for (std::size_t j = 0; j < n; ++j) CHECK(data[r * stride + j] == expected[j]);
    for (std::size_t j = n; j < stride; ++j) CHECK(data[r * stride + j] == original[r * stride + j]);
  }
  std::vector<float> bad(3 * 12);
  SQ_CHECK_ERROR_CONTAINS(sq::fwht_rows(sq::matrix_view<float>(bad, 3, 12)), "fwht_rows", "12",
                          "8 and 16");
  std::vector<float> empty;
  SQ_CHECK_ERROR_CONTAINS(sq::fwht(empty), "fwht", "length 0");
  std::vector<double> huge(std::size_t{1} << 21);
  SQ_CHECK_ERROR_CONTAINS(sq::fwht(huge), "2097152", "2^20");
}

TEST_CASE_TEMPLATE("hadamard_transform equals x H_K (x) H_2^k and inverts", T, float, double) {
  for (std::size_t n : {1u, 2u, 12u, 24u, 96u, 172u, 156u * 2, 108u * 4, 20u * 16, 172u * 8, 28u * 64,
                        76u * 64, 11008u, 13824u, 4096u}) {
    const auto f = sq::factor_hadamard_size(n);
    REQUIRE(f.has_value());
    const sq::hadamard_transform<T> h(n);
    CHECK(h.size() == n);
    const auto x = sq_test::random_normal<T>(n, n);
    const auto ref = kronecker_reference(to_double(x), f->base, f->pow2, false);
    auto y = x;
    h.apply(y);
    double worst = 0;
    for (std::size_t j = 0; j < n; ++j)
      worst = std::max(worst, std::fabs(ref[j] / std::sqrt(double(n)) - double(y[j])));
    INFO("n = " << n);
    CHECK(worst <= tolerance<T>() * 8);
    // The inverse is x H^T = x (H_K^T (x) H_m).
    auto z = x;
    h.apply_inverse(z);
    const auto ref_t = kronecker_reference(to_double(x), f->base, f->pow2, true);
    worst = 0;
    for (std::size_t j = 0; j < n; ++j)
      worst = std::max(worst, std::fabs(ref_t[j] / std::sqrt(double(n)) - double(z[j])));
    CHECK(worst <= tolerance<T>() * 8);
    h.apply_inverse(y);
    worst = 0;
    for (std::size_t j = 0; j < n; ++j) worst = std::max(worst, std::fabs(double(y[j]) - double(x[j])));
    CHECK(worst <= tolerance<T>() * 8);
  }
}

TEST_CASE("hadamard_transform: to_dense is hadamard_matrix / sqrt(n), times D when randomized") {
  for (std::size_t n : {12u, 64u, 344u, 96u}) {
    const auto h = sq::hadamard_matrix(n);
    const auto dense = sq::hadamard_transform<float>(n).to_dense();
    for (std::size_t i = 0; i < n * n; ++i) CHECK(dense[i] == doctest::Approx(h[i] / std::sqrt(double(n))));
    // Randomized: R = D H / sqrt(n), d_i from splitmix64 (the reference constants below).
    const auto randomized = sq::hadamard_transform<float>(n, {.randomized = true, .seed = 42}).to_dense();
    std::uint64_t state = 42;
    for (std::size_t i = 0; i < n; ++i) {
      state += 0x9E3779B97F4A7C15ull;
      std::uint64_t z = state;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      const double d = (z >> 63) != 0 ? -1.0 : 1.0;
      for (std::size_t j = 0; j < n; ++j)
        CHECK(randomized[i * n + j] == doctest::Approx(d * h[i * n + j] / std::sqrt(double(n))));
    }
  }
  // The published first splitmix64 output for seed 0 (so the signs are the same everywhere).
  sq::detail::splitmix64 seed0{0};
  CHECK(seed0.next() == 0xE220A8397B1DCDAFull);
}

TEST_CASE_TEMPLATE("hadamard_transform: randomized and block-diagonal variants against to_dense", T,
                   float, double) {
  struct variant {
    std::size_t n;
    sq::hadamard_options options;
  };
  for (const auto& v : {variant{172 * 4, {.randomized = true, .seed = 7}},
                        variant{1024, {.randomized = true, .seed = 1}},
                        variant{688, {.block_size = 172}},
                        variant{96 * 3, {.randomized = true, .seed = 3, .block_size = 96}},
                        variant{512, {.block_size = 64}}, variant{36, {.block_size = 12}}}) {
    const sq::hadamard_transform<T> h(v.n, v.options);
    const auto r = h.to_dense();
    // R is orthogonal.
    for (std::size_t i = 0; i < v.n; i += 7)
      for (std::size_t j = 0; j < v.n; j += 5) {
        double dot = 0;
        for (std::size_t c = 0; c < v.n; ++c) dot += r[i * v.n + c] * r[j * v.n + c];
        CHECK(dot == doctest::Approx(i == j ? 1.0 : 0.0).epsilon(1e-12));
      }
    const auto x = sq_test::random_normal<T>(v.n, v.n + 1);
    auto y = x, z = x;
    h.apply(y);
    h.apply_inverse(z);
    double worst = 0, worst_inverse = 0;
    for (std::size_t j = 0; j < v.n; ++j) {
      double ref = 0, ref_inverse = 0;
      for (std::size_t i = 0; i < v.n; ++i) {
        ref += double(x[i]) * r[i * v.n + j];          // x R
        ref_inverse += double(x[i]) * r[j * v.n + i];  // x R^T
      }
      worst = std::max(worst, std::fabs(ref - double(y[j])));
      worst_inverse = std::max(worst_inverse, std::fabs(ref_inverse - double(z[j])));
    }
    INFO("n = " << v.n << " block " << v.options.block_size);
    CHECK(worst <= tolerance<T>() * 8);
    CHECK(worst_inverse <= tolerance<T>() * 8);
  }
}

TEST_CASE_TEMPLATE("hadamard_transform: apply_rows equals apply on every row", T, float, double) {
  for (std::size_t n : {64u, 172u * 2, 108u * 128}) {
    for (bool randomized : {false, true}) {
      const sq::hadamard_transform<T> h(n, {.randomized = randomized, .seed = 5});
      const std::size_t rows = 3, stride = n + 3;
      auto data = sq_test::random_normal<T>(rows * stride, n);
      auto expected = data;
      h.apply_rows(sq::matrix_view<T>(data, rows, n, stride));
      for (std::size_t r = 0; r < rows; ++r) {
        h.apply(sq::vector_view<T>(expected.data() + r * stride, n));
        for (std::size_t j = 0; j < stride; ++j) CHECK(data[r * stride + j] == expected[r * stride + j]);
      }
      h.apply_rows_inverse(sq::matrix_view<T>(data, rows, n, stride));
      for (std::size_t r = 0; r < rows; ++r) h.apply_inverse(sq::vector_view<T>(expected.data() + r * stride, n));
      CHECK(data == expected);
    }
  }
}

TEST_CASE("hadamard_transform: shape errors name both sizes and write nothing") {
  const sq::hadamard_transform<float> h(172);
  std::vector<float> v(171, 1.0f);
  SQ_CHECK_ERROR_CONTAINS(h.apply(v), "hadamard_transform::apply", "171", "172");
  SQ_CHECK_ERROR_CONTAINS(h.apply_inverse(v), "apply_inverse", "171", "172");
  std::vector<float> m(4 * 170, 1.0f);
  SQ_CHECK_ERROR_CONTAINS(h.apply_rows(sq::matrix_view<float>(m, 4, 170)), "apply_rows", "170", "172",
                          "4 rows");
  SQ_CHECK_ERROR_CONTAINS(h.apply_rows_inverse(sq::matrix_view<float>(m, 4, 170)),
                          "apply_rows_inverse", "170", "172");
  CHECK(std::all_of(v.begin(), v.end(), [](float x) { return x == 1.0f; }));
  CHECK(std::all_of(m.begin(), m.end(), [](float x) { return x == 1.0f; }));
}

TEST_CASE("Hadamard transforms propagate NaN and Inf without crashing") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (std::size_t n : {16u, 4096u, 11008u, 12u}) {
    const sq::hadamard_transform<float> h(n);
    std::vector<float> x(n, 1.0f);
    x[n / 2] = nan;
    h.apply(x);  // every output depends on every input
    CHECK(std::all_of(x.begin(), x.end(), [](float v) { return std::isnan(v); }));
    std::vector<float> y(n, 0.0f);
    y[1] = inf;
    h.apply(y);  // +-Inf in every output (no Inf - Inf: only one nonzero input)
    CHECK(std::all_of(y.begin(), y.end(), [](float v) { return std::isinf(v); }));
  }
  std::vector<double> zero(1024, 0.0);
  sq::fwht(zero);
  CHECK(std::all_of(zero.begin(), zero.end(), [](double v) { return v == 0.0; }));
}

namespace {

/// Line offsets (from `region`) a prefetch cursor visits, step by step, until it is exhausted.
template <class Cursor, class Step>
std::vector<std::ptrdiff_t> visited_lines(Cursor& cursor, const float* region, Step step) {
  std::vector<std::ptrdiff_t> lines;
  const auto record = [&](const char* line) {
    lines.push_back((line - reinterpret_cast<const char*>(region)) / 64);
  };
  for (std::size_t calls = 0; cursor.remaining() > 0 && calls < 100000; ++calls)
    step(cursor, record);
  return lines;
}

/// Every line of an `elements`-float region exactly once, the first line of every 4 KiB chunk
/// first (page-interleaved order).
void check_interleaved_cover(const std::vector<std::ptrdiff_t>& lines, std::size_t elements) {
  const std::size_t count = (elements * sizeof(float) + 63) / 64, chunks = (count + 63) / 64;
  std::vector<std::ptrdiff_t> sorted = lines;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::ptrdiff_t> all(count);
  for (std::size_t k = 0; k < count; ++k) all[k] = static_cast<std::ptrdiff_t>(k);
  CHECK(sorted == all);
  for (std::size_t c = 0; c < chunks && c < lines.size(); ++c)
    CHECK(lines[c] == static_cast<std::ptrdiff_t>(c * 64));
}

}  // namespace

TEST_CASE("batch prefetch: every line of the next block once, line k of every 4 KiB page first") {
  std::vector<float> buffer(3 * 16384);
  for (std::size_t elements : {1u, 15u, 16u, 100u, 1024u, 1025u, 4096u, 11008u, 13824u}) {
    for (std::size_t offset : {0u, 5u}) {
      CAPTURE(elements);
      CAPTURE(offset);
      const float* region = buffer.data() + offset;
      for (std::size_t calls : {1u, 7u, 100u}) {
        sq::detail::prefetch_cursor<float> cursor(region, elements, false);
        cursor.spread_over(calls);
        const auto lines =
            visited_lines(cursor, region, [](auto& c, auto& record) { c.visit_step(record); });
        check_interleaved_cover(lines, elements);
      }
    }
  }
  // The compile-time cursors of the FWHT passes: half the order in steps of 8 lines (the leaf pass
  // of 4096 on AVX-512), the rest in steps of 2 (part of a round of 4 or 8 chunks).
  const auto fixed = [&](auto n_tag) {
    constexpr std::size_t n = decltype(n_tag)::value;
    sq::detail::prefetch_cursor<float, n> cursor(buffer.data(), n, true);
    std::size_t first_half = 0;
    const auto lines = visited_lines(cursor, buffer.data(), [&](auto& c, auto& record) {
      if (2 * first_half++ < cursor.fixed_steps / 8)
        c.template visit_step_fixed<8>(record);
      else
        c.template visit_step_fixed<2>(record);
    });
    check_interleaved_cover(lines, n);
  };
  fixed(std::integral_constant<std::size_t, 1024>{});
  fixed(std::integral_constant<std::size_t, 4096>{});
  fixed(std::integral_constant<std::size_t, 8192>{});
  fixed(std::integral_constant<std::size_t, 16384>{});
  sq::detail::prefetch_cursor<float, 4096> none(nullptr, 4096, true);
  CHECK(none.remaining() == 0);
  sq::detail::prefetch_cursor<float> empty(nullptr, 4096, false);
  CHECK(empty.remaining() == 0);
}

TEST_CASE("Hadamard matrices are cached and built once under concurrent first use") {
  // Several threads build transforms of the same new order at once; all agree.
  const std::size_t n = 156 * 16;
  std::vector<std::vector<float>> results(4, sq_test::random_normal<float>(n, 9));
  std::vector<std::thread> threads;
  for (auto& r : results)
    threads.emplace_back([&r] { sq::hadamard_transform<float>(n, {.seed = 1}).apply(r); });
  for (auto& t : threads) t.join();
  for (const auto& r : results) CHECK(r == results[0]);
  CHECK(sq::detail::cached_hadamard(156).get() == sq::detail::cached_hadamard(156).get());
}

TEST_CASE("README: the Hadamard usage snippet runs as shown") {
  std::vector<float> x(4096, 1.0f);
  sq::fwht(x);  // x <- x H_4096 / 64, in place
  CHECK(x[0] == doctest::Approx(64.0f));
  CHECK(x[1] == 0.0f);

  sq::hadamard_transform<float> h(11008);
  std::vector<float> tokens(8 * 11008, 1.0f);
  h.apply_rows(sq::matrix_view<float>(tokens, 8, 11008));
  h.apply_rows_inverse(sq::matrix_view<float>(tokens, 8, 11008));
  CHECK(tokens[12345] == doctest::Approx(1.0f).epsilon(1e-4));

  sq::hadamard_transform<float> randomized(4096, {.randomized = true, .seed = 42});
  CHECK(randomized.size() == 4096);
  auto split = sq::hadamard_kronecker_split(11008);
  REQUIRE(split.has_value());
  CHECK(split->a == 172);
  CHECK(split->b == 64);
}

TEST_CASE("issue 14 - hadamard_transform: a base order beyond max_hadamard_base_order is an error, not 21 GB") {
  // Found by fuzzing site_transform::deserialize: a 64-byte blob of width 131104 = 65552 x 2 built the
  // dense base H_65552 (283 s, 21 GB RSS). 4097 is odd, so every base of 131104 is a multiple of it.
  SQ_CHECK_ERROR_CONTAINS(sq::hadamard_transform<float>(131104), "hadamard_transform", "base order 65552",
                          "exceeds max_hadamard_base_order (4096");
  sq::hadamard_options blocked;
  blocked.block_size = 131104 / 2;
  SQ_CHECK_ERROR_CONTAINS(sq::hadamard_transform<double>(131104, blocked), "hadamard_transform", "block size 65552");
  // The LLM widths stay supported (bases 172, 108, 924 = 4 x 231 for Qwen2's 29568).
  for (const std::size_t n : {11008u, 13824u, 29568u})
    CHECK(sq::hadamard_transform<float>(n).factorization().base <= sq::max_hadamard_base_order);
}
