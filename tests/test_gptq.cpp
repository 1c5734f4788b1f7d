#include <singlequant/gptq.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "test_support.hpp"

namespace sq = singlequant;

namespace {

// Rows x n inputs with strongly correlated channels: x = z A, A = 0.1 I + N(0, 1) / sqrt(n).
std::vector<float> correlated_inputs(std::size_t rows, std::size_t n, std::uint64_t seed) {
  const auto z = sq_test::random_normal<double>(rows * n, seed);
  auto a = sq_test::random_normal<double>(n * n, seed + 1, 1.0 / std::sqrt(static_cast<double>(n)));
  for (std::size_t k = 0; k < n; ++k) a[k * n + k] += 0.1;
  std::vector<float> x(rows * n);
  for (std::size_t t = 0; t < rows; ++t)
    for (std::size_t j = 0; j < n; ++j) {
      double s = 0;
      for (std::size_t k = 0; k < n; ++k) s += z[t * n + k] * a[k * n + j];
      x[t * n + j] = static_cast<float>(s);
    }
  return x;
}

// Plain-loop X^T X in double (full symmetric matrix).
std::vector<double> gram(const std::vector<float>& x, std::size_t rows, std::size_t n) {
  std::vector<double> h(n * n, 0.0);
  for (std::size_t t = 0; t < rows; ++t)
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < n; ++j)
        h[i * n + j] += static_cast<double>(x[t * n + i]) * static_cast<double>(x[t * n + j]);
  return h;
}

std::vector<double> identity(std::size_t n) {
  std::vector<double> h(n * n, 0.0);
  for (std::size_t k = 0; k < n; ++k) h[k * n + k] = 1.0;
  return h;
}

// ||X (W - Q)^T||_F^2 in double, Q dequantised from the packed tensor.
double output_error(const std::vector<float>& x, std::size_t rows, const std::vector<float>& w,
                    const sq::packed_int4& q) {
  const std::size_t m = q.rows(), n = q.cols();
  double total = 0;
  for (std::size_t t = 0; t < rows; ++t)
    for (std::size_t i = 0; i < m; ++i) {
      double s = 0;
      for (std::size_t k = 0; k < n; ++k)
        s += static_cast<double>(x[t * n + k]) * (static_cast<double>(w[i * n + k]) - static_cast<double>(q.value(i, k)));
      total += s * s;
    }
  return total;
}

bool same_tensor(const sq::packed_int4& a, const sq::packed_int4& b) {
  const auto same = [](auto x, auto y) {
    return x.size() == y.size() && (x.empty() || std::memcmp(x.data(), y.data(), x.size_bytes()) == 0);
  };
  return a.rows() == b.rows() && a.cols() == b.cols() && same(a.codes(), b.codes()) &&
         same(a.scales(), b.scales()) && same(a.zero_points(), b.zero_points());
}

// Classic GPTQ, written straightforwardly in double: (H + lambda I)^-1 by Gauss-Jordan, its upper
// Cholesky factor U, then column by column w~_k -= e_j U_jk with e_j = (w~_j - q_j) / U_jj, scales
// of a group from the current values when its first column is reached (grid -7..7, symmetric or
// asymmetric, clip 1). Returns the dequantised weights and their codes.
struct reference_result {
  std::vector<double> values;
  std::vector<int> codes;
};
reference_result reference_gptq(const std::vector<double>& w, std::size_t m, std::size_t n,
                                std::vector<double> h, std::size_t group_size, bool asymmetric) {
  double mean = 0;
  for (std::size_t k = 0; k < n; ++k) mean += h[k * n + k];
  mean /= static_cast<double>(n);
  for (std::size_t k = 0; k < n; ++k) h[k * n + k] += 0.01 * mean;
  std::vector<double> inv = identity(n);
  for (std::size_t c = 0; c < n; ++c) {  // Gauss-Jordan (H + lambda I is positive definite)
    const double pivot = h[c * n + c];
    for (std::size_t k = 0; k < n; ++k) {
      h[c * n + k] /= pivot;
      inv[c * n + k] /= pivot;
    }
    for (std::size_t r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = h[r * n + c];
      for (std::size_t k = 0; k < n; ++k) {
        h[r * n + k] -= f * h[c * n + k];
        inv[r * n + k] -= f * inv[c * n + k];
      }
    }
  }
  std::vector<double> u(n * n, 0.0);  // inv = U^T U
  for (std::size_t i = 0; i < n; ++i) {
    double d = inv[i * n + i];
    for (std::size_t k = 0; k < i; ++k) d -= u[k * n + i] * u[k * n + i];
    u[i * n + i] = std::sqrt(d);
    for (std::size_t j = i + 1; j < n; ++j) {
      double s = inv[i * n + j];
      for (std::size_t k = 0; k < i; ++k) s -= u[k * n + i] * u[k * n + j];
      u[i * n + j] = s / u[i * n + i];
    }
  }
  reference_result out{std::vector<double>(m * n), std::vector<int>(m * n)};
  for (std::size_t r = 0; r < m; ++r) {
    std::vector<double> cur(w.begin() + static_cast<std::ptrdiff_t>(r * n),
                            w.begin() + static_cast<std::ptrdiff_t>((r + 1) * n));
    float scale = 0;
    int zero = 0;
    for (std::size_t j = 0; j < n; ++j) {
      if (j % group_size == 0) {
        double lo = 0, hi = 0;
        for (std::size_t k = j; k < j + group_size; ++k) {
          lo = std::min(lo, cur[k]);
          hi = std::max(hi, cur[k]);
        }
        scale = static_cast<float>(asymmetric ? (hi - lo) / 14.0 : std::max(hi, -lo) / 7.0);
        zero = asymmetric ? static_cast<int>(std::nearbyint(std::clamp(-7.0 - lo / static_cast<double>(scale), -7.0, 7.0))) : 0;
      }
      const int qmin = -7;
      const double y = cur[j] * (1.0 / static_cast<double>(scale));
      const int code = static_cast<int>(std::nearbyint(std::clamp(y, double(qmin - zero), double(7 - zero)))) + zero;
      const double value = static_cast<double>(code - zero) * static_cast<double>(scale);
      out.codes[r * n + j] = code;
      out.values[r * n + j] = value;
      const double e = (cur[j] - value) / u[j * n + j];
      for (std::size_t k = j + 1; k < n; ++k) cur[k] -= e * u[j * n + k];
    }
  }
  return out;
}

// d_i (H + lambda I) d_i^T per row in double (H full symmetric, no dead columns), d = W - Q.
std::vector<double> damped_row_errors(const std::vector<float>& w, const std::vector<double>& h, double lambda,
                                      const sq::packed_int4& q) {
  const std::size_t m = q.rows(), n = q.cols();
  std::vector<double> out(m, 0.0);
  for (std::size_t i = 0; i < m; ++i) {
    std::vector<double> d(n);
    for (std::size_t k = 0; k < n; ++k) d[k] = static_cast<double>(w[i * n + k]) - static_cast<double>(q.value(i, k));
    for (std::size_t a = 0; a < n; ++a)
      for (std::size_t b = 0; b < n; ++b) out[i] += d[a] * (h[a * n + b] + (a == b ? lambda : 0.0)) * d[b];
  }
  return out;
}

bool same_row(const sq::packed_int4& a, const sq::packed_int4& b, std::size_t i) {
  const std::size_t groups = a.scale_count() / a.rows();
  bool same = std::memcmp(a.row_codes(i).data(), b.row_codes(i).data(), a.row_codes(i).size()) == 0;
  for (std::size_t g = 0; g < groups; ++g) {
    same = same && std::memcmp(&a.scales()[i * groups + g], &b.scales()[i * groups + g], sizeof(float)) == 0;
    if (a.has_zero_points()) same = same && a.zero_points()[i * groups + g] == b.zero_points()[i * groups + g];
  }
  return same;
}

}  // namespace

TEST_CASE("hessian_stats: X^T X against plain loops, batches, merge, any thread count") {
  const std::size_t n = 203, rows = 300;
  const auto x = correlated_inputs(rows, n, 11);
  const auto expected = gram(x, rows, n);
  sq::hessian_stats whole(n, {.threads = 1});
  whole.accumulate(sq::matrix_view<const float>(x.data(), rows, n));
  CHECK(whole.tokens() == rows);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = i; j < n; ++j) REQUIRE(sq_test::close(whole(i, j), expected[i * n + j], 1e-12));
  CHECK(whole(5, 2) == whole(2, 5));
  const auto full = whole.dense();
  CHECK(full[7 * n + 3] == full[3 * n + 7]);

  // Two threads and three: the same bits (n = 203 uses several tiles, 256 + 44 tokens two chunks).
  for (std::size_t threads : {2u, 3u}) {
    sq::hessian_stats other(n, {.threads = threads});
    other.accumulate(sq::matrix_view<const float>(x.data(), rows, n));
    bool same = true;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = i; j < n; ++j) same = same && other(i, j) == whole(i, j);
    CHECK(same);
  }
  // Split batches and a merge give the same sums to rounding.
  sq::hessian_stats first(n), second(n);
  first.accumulate(sq::matrix_view<const float>(x.data(), 100, n));
  second.accumulate(sq::matrix_view<const float>(x.data() + 100 * n, rows - 100, n));
  first.merge(second);
  CHECK(first.tokens() == rows);
  for (std::size_t i = 0; i < n; i += 7)
    for (std::size_t j = i; j < n; j += 5) CHECK(sq_test::close(first(i, j), expected[i * n + j], 1e-12));
}

TEST_CASE("hessian_stats: change_basis gives the matrix of the rotated rows") {
  const std::size_t n = 12, rows = 40;
  const auto x = correlated_inputs(rows, n, 3);
  // R: a product of two plane rotations (any matrix works: H <- R^T H R).
  std::vector<double> r = identity(n);
  const double c = std::cos(0.3), s = std::sin(0.3);
  r[1 * n + 1] = c, r[1 * n + 4] = -s, r[4 * n + 1] = s, r[4 * n + 4] = c;
  r[0 * n + 7] = 0.5;
  const auto apply = [&](sq::matrix_view<double> m) {
    std::vector<double> out(m.rows() * n, 0.0);
    for (std::size_t i = 0; i < m.rows(); ++i)
      for (std::size_t j = 0; j < n; ++j)
        for (std::size_t k = 0; k < n; ++k) out[i * n + j] += m(i, k) * r[k * n + j];
    for (std::size_t i = 0; i < m.rows(); ++i)
      for (std::size_t j = 0; j < n; ++j) m(i, j) = out[i * n + j];
  };
  std::vector<double> rotated(rows * n);
  for (std::size_t e = 0; e < rotated.size(); ++e) rotated[e] = x[e];
  apply(sq::matrix_view<double>(rotated.data(), rows, n));
  sq::hessian_stats raw(n), direct(n);
  raw.accumulate(sq::matrix_view<const float>(x.data(), rows, n));
  direct.accumulate(sq::matrix_view<const double>(rotated.data(), rows, n));
  raw.change_basis(apply);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = i; j < n; ++j) CHECK(sq_test::close(raw(i, j), direct(i, j), 1e-12));
}

TEST_CASE("hessian_stats: bad input") {
  sq::hessian_stats h(4);
  std::vector<float> x(8, 1.0f);
  SQ_CHECK_ERROR_CONTAINS(h.accumulate(sq::matrix_view<const float>(x.data(), 2, 3)), "hessian_stats::accumulate", "3");
  x[6] = std::numeric_limits<float>::quiet_NaN();
  SQ_CHECK_ERROR_CONTAINS(h.accumulate(sq::matrix_view<const float>(x.data(), 2, 4)), "non-finite", "row 1", "channel 2");
  CHECK(h.tokens() == 0);
  CHECK(h(0, 0) == 0.0);
  SQ_CHECK_ERROR_CONTAINS(sq::hessian_stats(0), "hessian_stats", "dimension");
  SQ_CHECK_ERROR_CONTAINS(h.merge(sq::hessian_stats(5)), "hessian_stats::merge", "4", "5");
  SQ_CHECK_ERROR_CONTAINS(h(4, 0), "hessian_stats", "out of range");
}

TEST_CASE("gptq: with H = I the result is quantize()'s, bit for bit") {
  const std::size_t m = 9, n = 96;
  const auto wf = sq_test::random_normal<float>(m * n, 21);
  std::vector<double> wd(wf.begin(), wf.end());
  const auto h = identity(n);
  const sq::matrix_view<const double> hv(h.data(), n, n);
  for (const auto grid : {sq::int4_grid::symmetric7, sq::int4_grid::full8})
    for (const bool asymmetric : {false, true})
      for (const bool search : {false, true})
        for (const std::size_t group : {std::size_t(0), std::size_t(32), std::size_t(48)})
          for (const bool act_order : {false, true}) {
            sq::gptq_options options;
            options.quant.grid = grid;
            options.quant.asymmetric = asymmetric;
            options.quant.mse_clip_search = search;
            options.quant.clip_ratio = search ? 1.0 : 0.9;
            options.quant.gran = group == 0 ? sq::granularity::per_row : sq::granularity::per_group;
            options.quant.group_size = group;
            options.block_size = 40;  // blocks end early where a group of 48 would straddle them
            options.act_order = act_order;
            CAPTURE(asymmetric);
            CAPTURE(search);
            CAPTURE(group);
            CAPTURE(act_order);
            sq::gptq_report report;
            const auto qf = sq::gptq(sq::matrix_view<const float>(wf.data(), m, n), hv, options, &report);
            CHECK(same_tensor(qf, sq::quantize(sq::matrix_view<const float>(wf.data(), m, n), options.quant)));
            const auto qd = sq::gptq(sq::matrix_view<const double>(wd.data(), m, n), hv, options);
            CHECK(same_tensor(qd, sq::quantize(sq::matrix_view<const double>(wd.data(), m, n), options.quant)));
            CHECK(report.dead_columns == 0);
            CHECK(report.cholesky_attempts == 1);
            CHECK(report.damping == doctest::Approx(0.01));
            CHECK(report.quant.scale_count == qf.scale_count());
          }
}

TEST_CASE("gptq: lower layer-output error than round-to-nearest on correlated inputs") {
  const std::size_t n = 128, m = 48, rows = 1024;
  const auto x = correlated_inputs(rows, n, 5);
  const auto w = sq_test::random_normal<float>(m * n, 6);
  sq::hessian_stats h(n);
  h.accumulate(sq::matrix_view<const float>(x.data(), rows, n));
  const sq::matrix_view<const float> wv(w.data(), m, n);
  for (const std::size_t group : {std::size_t(0), std::size_t(32)})
    for (const bool act_order : {false, true})
      for (const bool search : {false, true}) {
        sq::gptq_options options;
        options.quant.gran = group == 0 ? sq::granularity::per_row : sq::granularity::per_group;
        options.quant.group_size = group;
        options.quant.mse_clip_search = search;
        options.act_order = act_order;
        options.block_size = 48;
        sq::gptq_report report;
        const auto q = sq::gptq(wv, h, options, &report);
        const double gptq_error = output_error(x, rows, w, q);
        const double rtn_error = output_error(x, rows, w, sq::quantize(wv, options.quant));
        CAPTURE(group);
        CAPTURE(act_order);
        CAPTURE(search);
        CHECK(gptq_error < 0.8 * rtn_error);
        // The report's error is the same quantity, from the algorithm's own sums.
        CHECK(report.output_error == doctest::Approx(gptq_error).epsilon(1e-3));
        CHECK(report.damped_error > report.output_error);
      }
}

TEST_CASE("gptq: agrees with a plain-loop implementation of classic GPTQ") {
  const std::size_t n = 48, m = 6, rows = 200;
  const auto x = correlated_inputs(rows, n, 8);
  const auto h = gram(x, rows, n);
  const auto wf = sq_test::random_normal<float>(m * n, 9);
  const std::vector<double> w(wf.begin(), wf.end());
  for (const std::size_t group : {std::size_t(48), std::size_t(16)})
    for (const bool asymmetric : {false, true})
      for (const std::size_t block : {std::size_t(128), std::size_t(16), std::size_t(5)}) {
        sq::gptq_options options;
        options.quant.gran = group == n ? sq::granularity::per_row : sq::granularity::per_group;
        options.quant.group_size = group == n ? 0 : group;
        options.quant.asymmetric = asymmetric;
        options.block_size = block;
        options.threads = 2;
        const auto q = sq::gptq(sq::matrix_view<const double>(w.data(), m, n), sq::matrix_view<const double>(h.data(), n, n), options);
        const auto expected = reference_gptq(w, m, n, h, group, asymmetric);
        std::size_t same = 0;
        double worst = 0;
        for (std::size_t i = 0; i < m; ++i)
          for (std::size_t j = 0; j < n; ++j) {
            same += q.code(i, j) == expected.codes[i * n + j] ? 1u : 0u;
            worst = std::max(worst, std::fabs(static_cast<double>(q.value(i, j)) - expected.values[i * n + j]));
          }
        CAPTURE(group);
        CAPTURE(asymmetric);
        CAPTURE(block);
        CHECK(same == m * n);  // double precision both: no code lands on a different side of a tie
        CHECK(worst < 1e-6);
      }
}

TEST_CASE("gptq: the same bits for any thread count") {
  const std::size_t n = 300, m = 70, rows = 400;
  const auto x = correlated_inputs(rows, n, 12);
  const auto w = sq_test::random_normal<float>(m * n, 13);
  sq::hessian_stats h(n);
  h.accumulate(sq::matrix_view<const float>(x.data(), rows, n));
  sq::gptq_options options;
  options.quant.gran = sq::granularity::per_group;
  options.quant.group_size = 60;
  options.act_order = true;
  options.block_size = 64;
  options.threads = 1;
  const sq::matrix_view<const float> wv(w.data(), m, n);
  const auto reference = sq::gptq(wv, h, options);
  for (std::size_t threads : {2u, 3u, 5u}) {
    options.threads = threads;
    CHECK(same_tensor(sq::gptq(wv, h, options), reference));
  }
}

TEST_CASE("gptq: rank-deficient and dead-column H are damped and reported, never NaN") {
  const std::size_t n = 64, m = 8;
  const auto w = sq_test::random_normal<float>(m * n, 31);
  const sq::matrix_view<const float> wv(w.data(), m, n);
  const auto check_finite = [](const sq::packed_int4& q) {
    for (const float s : q.scales()) REQUIRE(std::isfinite(s));
  };
  SUBCASE("rank 5 of 64") {
    const auto x = correlated_inputs(5, n, 32);
    sq::hessian_stats h(n);
    h.accumulate(sq::matrix_view<const float>(x.data(), 5, n));
    sq::gptq_report report;
    const auto q = sq::gptq(wv, h, {}, &report);
    check_finite(q);
    CHECK(report.cholesky_attempts == 1);
    CHECK(report.damping > 0);
    CHECK(std::isfinite(report.output_error));
    CHECK(output_error(x, 5, w, q) < output_error(x, 5, w, sq::quantize(wv, sq::quant_options{})));
  }
  SUBCASE("undamped singular H: the damping is raised") {
    const auto x = correlated_inputs(5, n, 33);
    sq::hessian_stats h(n);
    h.accumulate(sq::matrix_view<const float>(x.data(), 5, n));
    sq::gptq_options options;
    options.damping = 0;
    sq::gptq_report report;
    check_finite(sq::gptq(wv, h, options, &report));
    CHECK(report.cholesky_attempts > 1);
    CHECK(report.damping_fraction > 0);
  }
  SUBCASE("dead columns round to nearest, the others get the feedback") {
    auto x = correlated_inputs(200, n, 34);
    for (std::size_t t = 0; t < 200; ++t)
      for (std::size_t k : {3u, 17u, 40u}) x[t * n + k] = 0;
    sq::hessian_stats h(n);
    h.accumulate(sq::matrix_view<const float>(x.data(), 200, n));
    sq::gptq_report report;
    const auto q = sq::gptq(wv, h, {}, &report);
    check_finite(q);
    CHECK(report.dead_columns == 3);
    CHECK(report.output_error == doctest::Approx(output_error(x, 200, w, q)).epsilon(1e-3));
  }
  SUBCASE("H = 0: every column dead, the result is round-to-nearest") {
    const std::vector<double> zero(n * n, 0.0);
    sq::gptq_report report;
    const auto q = sq::gptq(wv, sq::matrix_view<const double>(zero.data(), n, n), {}, &report);
    CHECK(report.dead_columns == n);
    CHECK(report.output_error == 0);
    CHECK(same_tensor(q, sq::quantize(wv, sq::quant_options{})));
  }
}

TEST_CASE("gptq: bad input") {
  const std::size_t n = 8, m = 2;
  auto w = sq_test::random_normal<float>(m * n, 41);
  auto h = identity(n);
  const sq::matrix_view<const double> hv(h.data(), n, n);
  const sq::matrix_view<const float> wv(w.data(), m, n);
  SQ_CHECK_ERROR_CONTAINS(sq::gptq(wv, sq::matrix_view<const double>(h.data(), 4, 4)), "gptq", "4 x 4", "8 columns");
  sq::gptq_options options;
  options.quant.gran = sq::granularity::per_column;
  SQ_CHECK_ERROR_CONTAINS(sq::gptq(wv, hv, options), "gptq", "per_row or per_group");
  options.quant.gran = sq::granularity::per_group;
  options.quant.group_size = 3;
  SQ_CHECK_ERROR_CONTAINS(sq::gptq(wv, hv, options), "gptq", "group size 3");
  options = {};
  options.block_size = 0;
  SQ_CHECK_ERROR_CONTAINS(sq::gptq(wv, hv, options), "gptq", "block size");
  options = {};
  options.damping = -1;
  SQ_CHECK_ERROR_CONTAINS(sq::gptq(wv, hv, options), "gptq", "damping");
  options.damping = std::numeric_limits<double>::quiet_NaN();
  SQ_CHECK_ERROR_CONTAINS(sq::gptq(wv, hv, options), "gptq", "damping");
  w[5] = std::numeric_limits<float>::infinity();
  SQ_CHECK_ERROR_CONTAINS(sq::gptq(wv, hv), "gptq", "weight (0, 5)");
  w[5] = 0;
  h[2 * n + 6] = std::numeric_limits<double>::quiet_NaN();
  SQ_CHECK_ERROR_CONTAINS(sq::gptq(wv, hv), "gptq", "H(2, 6)");
  h[2 * n + 6] = 0;
  h[3 * n + 3] = -1;
  SQ_CHECK_ERROR_CONTAINS(sq::gptq(wv, hv), "gptq", "H(3, 3)", "negative");
  h[3 * n + 3] = 1;
  h[0 * n + 1] = 1e7;  // indefinite far beyond what damping can fix
  SQ_CHECK_ERROR_CONTAINS(sq::gptq(wv, hv), "gptq", "not positive definite");
  h[0 * n + 1] = 0;
  // Empty weights: an empty tensor.
  const auto empty = sq::gptq(sq::matrix_view<const float>(w.data(), 0, n), hv);
  CHECK(empty.rows() == 0);
}

TEST_CASE("gptq: clip_search = output keeps per row the best of the single-clip runs, bit for bit") {
  const std::size_t n = 64, m = 12, rows = 400;
  const auto x = correlated_inputs(rows, n, 51);
  const auto w = sq_test::random_normal<float>(m * n, 52);
  const auto h = gram(x, rows, n);
  const sq::matrix_view<const double> hv(h.data(), n, n);
  const sq::matrix_view<const float> wv(w.data(), m, n);
  for (const std::size_t group : {std::size_t(0), std::size_t(16)})
    for (const bool asymmetric : {false, true})
      for (const bool act_order : {false, true}) {
        CAPTURE(group);
        CAPTURE(asymmetric);
        CAPTURE(act_order);
        sq::gptq_options options;
        options.quant.gran = group == 0 ? sq::granularity::per_row : sq::granularity::per_group;
        options.quant.group_size = group;
        options.quant.asymmetric = asymmetric;
        options.quant.mse_clip_search = true;  // ignored by the output search
        options.act_order = act_order;
        options.block_size = 24;
        options.clip_search = sq::gptq_clip_search::output;
        options.output_clip_min = 0.6;
        options.output_clip_step = 0.1;
        sq::gptq_report report;
        const auto best = sq::gptq(wv, hv, options, &report);
        // The separate runs: every group of every row clipped by one fixed ratio.
        const double ratios[] = {1.0, 0.9, 0.8, 0.7, 0.6};
        std::vector<sq::packed_int4> runs;
        std::vector<std::vector<double>> errors;
        for (const double ratio : ratios) {
          sq::gptq_options single = options;
          single.clip_search = sq::gptq_clip_search::weight;
          single.quant.mse_clip_search = false;
          single.quant.clip_ratio = ratio;
          runs.push_back(sq::gptq(wv, hv, single));
          errors.push_back(damped_row_errors(w, h, report.damping, runs.back()));
        }
        double chosen_total = 0, ratio_total = 0;
        for (std::size_t i = 0; i < m; ++i) {
          double least = std::numeric_limits<double>::infinity();
          for (const auto& e : errors) least = std::min(least, e[i]);
          std::size_t match = runs.size();
          for (std::size_t k = 0; k < runs.size() && match == runs.size(); ++k)
            if (same_row(best, runs[k], i)) match = k;
          CAPTURE(i);
          REQUIRE(match < runs.size());  // the row is one candidate's row, bit for bit
          CHECK(errors[match][i] <= least * (1 + 1e-9));  // and the least damped error's
          chosen_total += errors[match][i];
          ratio_total += ratios[match] * static_cast<double>(best.scale_count() / m);
        }
        CHECK(report.damped_error == doctest::Approx(chosen_total).epsilon(1e-6));
        CHECK(report.quant.clip_ratio_sum == doctest::Approx(ratio_total));
        CHECK(report.quant.scale_count == best.scale_count());
      }
}

TEST_CASE("gptq: refine_passes reach a coordinate minimum, never raise the error, keep H = I results") {
  const std::size_t n = 48, m = 10, rows = 300;
  const auto x = correlated_inputs(rows, n, 61);
  const auto w = sq_test::random_normal<float>(m * n, 62);
  const auto h = gram(x, rows, n);
  const sq::matrix_view<const double> hv(h.data(), n, n);
  const sq::matrix_view<const float> wv(w.data(), m, n);
  for (const std::size_t group : {std::size_t(0), std::size_t(16)})
    for (const bool asymmetric : {false, true}) {
      CAPTURE(group);
      CAPTURE(asymmetric);
      sq::gptq_options options;
      options.quant.gran = group == 0 ? sq::granularity::per_row : sq::granularity::per_group;
      options.quant.group_size = group;
      options.quant.asymmetric = asymmetric;
      options.quant.mse_clip_search = true;
      options.act_order = true;
      sq::gptq_report plain_report, report;
      const auto plain = sq::gptq(wv, hv, options, &plain_report);
      options.refine_passes = 50;
      const auto refined = sq::gptq(wv, hv, options, &report);
      const auto plain_errors = damped_row_errors(w, h, report.damping, plain);
      const auto errors = damped_row_errors(w, h, report.damping, refined);
      double total = 0;
      for (std::size_t i = 0; i < m; ++i) {
        CHECK(errors[i] <= plain_errors[i] * (1 + 1e-12));
        total += errors[i];
        // No single code change (scales kept) lowers the row's error: a coordinate minimum.
        std::vector<double> d(n);
        for (std::size_t k = 0; k < n; ++k) d[k] = static_cast<double>(w[i * n + k]) - static_cast<double>(refined.value(i, k));
        for (std::size_t j = 0; j < n; ++j) {
          double r = 0;
          for (std::size_t k = 0; k < n; ++k) r += (h[j * n + k] + (j == k ? report.damping : 0.0)) * d[k];
          const double hjj = h[j * n + j] + report.damping, scale = refined.scale(i, j);
          for (const int step : {-1, 1}) {
            const int code = refined.code(i, j) + step;
            if (code < -7 || code > 7) continue;
            const double delta = static_cast<double>(step) * scale;  // change of q_ij
            CHECK(delta * delta * hjj - 2 * delta * r >= -1e-9 * errors[i]);
          }
        }
      }
      CHECK(report.damped_error == doctest::Approx(total).epsilon(1e-9));
      CHECK(report.damped_error < plain_report.damped_error);
      CHECK(report.output_error == doctest::Approx(output_error(x, rows, w, refined)).epsilon(1e-3));
    }
  // With H = I round-to-nearest is already the coordinate minimum: still quantize()'s bits.
  const auto eye = identity(n);
  sq::gptq_options options;
  options.quant.mse_clip_search = true;
  options.refine_passes = 3;
  CHECK(same_tensor(sq::gptq(wv, sq::matrix_view<const double>(eye.data(), n, n), options), sq::quantize(wv, options.quant)));
}

TEST_CASE("gptq: rescale_passes never raise a row's damped error and report it exactly") {
  const std::size_t n = 48, m = 16, rows = 300;
  const auto x = correlated_inputs(rows, n, 81);
  const auto w = sq_test::random_normal<float>(m * n, 82);
  const auto h = gram(x, rows, n);
  const sq::matrix_view<const double> hv(h.data(), n, n);
  const sq::matrix_view<const float> wv(w.data(), m, n);
  for (const std::size_t group : {std::size_t(0), std::size_t(16)})
    for (const bool asymmetric : {false, true}) {
      CAPTURE(group);
      CAPTURE(asymmetric);
      sq::gptq_options options;
      options.quant.gran = group == 0 ? sq::granularity::per_row : sq::granularity::per_group;
      options.quant.group_size = group;
      options.quant.asymmetric = asymmetric;
      options.quant.mse_clip_search = true;
      options.act_order = true;
      sq::gptq_report plain_report, report;
      const auto plain = sq::gptq(wv, hv, options, &plain_report);
      options.rescale_passes = 2;
      const auto rescaled = sq::gptq(wv, hv, options, &report);
      const auto plain_errors = damped_row_errors(w, h, report.damping, plain);
      const auto errors = damped_row_errors(w, h, report.damping, rescaled);
      double total = 0;
      std::size_t changed = 0;
      for (std::size_t i = 0; i < m; ++i) {
        CAPTURE(i);
        CHECK(errors[i] <= plain_errors[i] * (1 + 1e-9));
        changed += same_row(plain, rescaled, i) ? 0u : 1u;
        total += errors[i];
      }
      CHECK(changed > 0);  // the refit scales win on some rows of a correlated problem
      CHECK(report.damped_error == doctest::Approx(total).epsilon(1e-6));
      CHECK(report.damped_error < plain_report.damped_error);
      CHECK(report.output_error == doctest::Approx(output_error(x, rows, w, rescaled)).epsilon(1e-3));
      CHECK(report.quant.scale_count == rescaled.scale_count());
      // Refinement after rescaling still only lowers it.
      options.refine_passes = 4;
      sq::gptq_report both_report;
      static_cast<void>(sq::gptq(wv, hv, options, &both_report));
      CHECK(both_report.damped_error <= report.damped_error * (1 + 1e-12));
    }
}

TEST_CASE("gptq: bad clip-search and refine options") {
  const std::size_t n = 8, m = 2;
  const auto w = sq_test::random_normal<float>(m * n, 71);
  const auto h = identity(n);
  const sq::matrix_view<const double> hv(h.data(), n, n);
  const sq::matrix_view<const float> wv(w.data(), m, n);
  sq::gptq_options options;
  options.clip_search = static_cast<sq::gptq_clip_search>(7);
  SQ_CHECK_ERROR_CONTAINS(sq::gptq(wv, hv, options), "gptq", "clip_search");
  options.clip_search = sq::gptq_clip_search::output;
  options.output_clip_min = 0;
  SQ_CHECK_ERROR_CONTAINS(sq::gptq(wv, hv, options), "gptq", "output clip search");
  options.output_clip_min = 0.5;
  options.output_clip_step = 0;
  SQ_CHECK_ERROR_CONTAINS(sq::gptq(wv, hv, options), "gptq", "output clip search");
  options.output_clip_step = 0.5;
  CHECK(sq::gptq(wv, hv, options).rows() == m);  // candidates 1 and 0.5
}
