#include <singlequant/stats.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "test_support.hpp"

namespace sq = singlequant;

namespace {

// Brute-force sums of a tokens x n row-major matrix.
struct brute_sums {
  std::size_t n;
  std::vector<double> absmax, s2, s4, c22, c31, s11;
  brute_sums(const std::vector<double>& x, std::size_t tokens, std::size_t n_)
      : n(n_), absmax(n_), s2(n_), s4(n_), c22(n_ * n_), c31(n_ * n_), s11(n_ * n_) {
    for (std::size_t t = 0; t < tokens; ++t)
      for (std::size_t i = 0; i < n; ++i) {
        const double a = x[t * n + i];
        absmax[i] = std::max(absmax[i], std::fabs(a));
        s2[i] += a * a;
        s4[i] += a * a * a * a;
        for (std::size_t j = 0; j < n; ++j) {
          const double b = x[t * n + j];
          c22[i * n + j] += a * a * b * b;
          c31[i * n + j] += a * a * a * b;
          s11[i * n + j] += a * b;
        }
      }
  }
};

std::vector<double> heavy_rows(std::size_t tokens, std::size_t n, std::uint64_t seed) {
  auto x = sq_test::random_normal<double>(tokens * n, seed);
  for (std::size_t t = 0; t < tokens; ++t) x[t * n + (t % n)] *= 8.0;  // some spikes
  return x;
}

}  // namespace

TEST_CASE("stats: per-channel and dense all-pairs sums equal brute force") {
  const std::size_t n = 37, tokens = 150;  // odd width: SIMD tails; > one 64-row chunk
  const auto x = heavy_rows(tokens, n, 11);
  const brute_sums ref(x, tokens, n);
  sq::stats_options options;
  options.cross = sq::cross_moments::dense;
  sq::activation_stats stats(n, options);
  stats.accumulate(sq::matrix_view<const double>(x, tokens, n));
  REQUIRE(stats.tokens() == tokens);
  REQUIRE(stats.has_dense_cross_moments());
  for (std::size_t i = 0; i < n; ++i) {
    CHECK(stats.absmax(i) == ref.absmax[i]);
    CHECK(sq_test::close(stats.second_moment(i), ref.s2[i], 1e-12));
    CHECK(sq_test::close(stats.fourth_moment(i), ref.s4[i], 1e-12));
    for (std::size_t j = 0; j < n; ++j) {
      CHECK(sq_test::close(stats.cross_second(i, j), ref.s11[i * n + j], 1e-12));
      if (i == j) continue;
      const auto m = stats.pair_moments(i, j);
      CHECK(sq_test::close(m.s40, ref.s4[i], 1e-12));
      CHECK(sq_test::close(m.s04, ref.s4[j], 1e-12));
      CHECK(sq_test::close(m.s22, ref.c22[i * n + j], 1e-12));
      CHECK(sq_test::close(m.s31, ref.c31[i * n + j], 1e-12));
      CHECK(sq_test::close(m.s13, ref.c31[j * n + i], 1e-12));
    }
  }
}

TEST_CASE("stats: sampled pair sums equal the dense ones while the sample holds every row") {
  const std::size_t n = 20, tokens = 90;
  const auto x = heavy_rows(tokens, n, 12);
  sq::stats_options dense_options, sampled_options;
  dense_options.cross = sq::cross_moments::dense;
  sampled_options.cross = sq::cross_moments::sampled;
  sq::activation_stats dense(n, dense_options), sampled(n, sampled_options);
  dense.accumulate(sq::matrix_view<const double>(x, tokens, n));
  sampled.accumulate(sq::matrix_view<const double>(x, tokens, n));
  CHECK_FALSE(sampled.has_dense_cross_moments());
  CHECK(sampled.sample_is_complete());
  CHECK(sampled.sample().rows() == tokens);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      CHECK(sq_test::close(sampled.cross_second(i, j), dense.cross_second(i, j), 1e-12));
      if (i == j) continue;
      const auto a = dense.pair_moments(i, j), b = sampled.pair_moments(i, j);
      CHECK(sq_test::close(a.s22, b.s22, 1e-12));
      CHECK(sq_test::close(a.s31, b.s31, 1e-12));
      CHECK(sq_test::close(a.s13, b.s13, 1e-12));
    }
}

TEST_CASE("stats: automatic mode is dense up to dense_max_width, sampled above") {
  sq::stats_options options;
  options.dense_max_width = 16;
  CHECK(sq::activation_stats(16, options).has_dense_cross_moments());
  CHECK_FALSE(sq::activation_stats(17, options).has_dense_cross_moments());
  // The sample is bounded by bytes at wide sites: 14336 channels, 256 MiB -> 2340 rows.
  CHECK(sq::activation_stats(14336).sample_capacity() == (std::size_t(256) << 20) / (8 * 14336));
}

TEST_CASE("stats: merging accumulators fed disjoint batches equals one fed both") {
  const std::size_t n = 19, tokens_a = 70, tokens_b = 45;
  const auto xa = heavy_rows(tokens_a, n, 21);
  const auto xb = heavy_rows(tokens_b, n, 22);
  for (auto mode : {sq::cross_moments::dense, sq::cross_moments::sampled}) {
    sq::stats_options options;
    options.cross = mode;
    options.outlier_tokens = 5;
    sq::activation_stats a(n, options), b(n, options), both(n, options);
    a.accumulate(sq::matrix_view<const double>(xa, tokens_a, n));
    b.accumulate(sq::matrix_view<const double>(xb, tokens_b, n));
    both.accumulate(sq::matrix_view<const double>(xa, tokens_a, n));
    both.accumulate(sq::matrix_view<const double>(xb, tokens_b, n));
    a.merge(b);
    CHECK(a.tokens() == both.tokens());
    for (std::size_t i = 0; i < n; ++i) {
      CHECK(a.absmax(i) == both.absmax(i));
      CHECK(sq_test::close(a.second_moment(i), both.second_moment(i), 1e-13));
      CHECK(sq_test::close(a.fourth_moment(i), both.fourth_moment(i), 1e-13));
      for (std::size_t j = 0; j < n; ++j) {
        if (i == j) continue;
        const auto m1 = a.pair_moments(i, j), m2 = both.pair_moments(i, j);
        CHECK(sq_test::close(m1.s22, m2.s22, 1e-12));
        CHECK(sq_test::close(m1.s31, m2.s31, 1e-12));
        CHECK(sq_test::close(m1.s13, m2.s13, 1e-12));
        CHECK(sq_test::close(a.cross_second(i, j), both.cross_second(i, j), 1e-12));
      }
    }
    // The row sample holds every row in the same order; the outlier log is the same.
    REQUIRE(a.sample().rows() == both.sample().rows());
    for (std::size_t t = 0; t < a.sample().rows(); ++t)
      for (std::size_t k = 0; k < n; ++k) CHECK(a.sample()(t, k) == both.sample()(t, k));
    REQUIRE(a.outlier_rows().rows() == 5);
    for (std::size_t t = 0; t < 5; ++t) CHECK(a.outlier_peaks()[t] == both.outlier_peaks()[t]);
  }
}

TEST_CASE("stats: the reservoir is bounded, seeded, deterministic, and draws input rows") {
  const std::size_t n = 6, tokens = 500;
  std::vector<float> x(tokens * n);
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t k = 0; k < n; ++k) x[t * n + k] = static_cast<float>(t);  // row t is all t
  auto run = [&](std::uint64_t seed) {
    sq::stats_options options;
    options.max_sample_rows = 64;
    options.seed = seed;
    sq::activation_stats stats(n, options);
    for (std::size_t r0 = 0; r0 < tokens; r0 += 100)
      stats.accumulate(sq::matrix_view<const float>(x.data() + r0 * n, 100, n));
    std::vector<double> firsts;
    for (std::size_t t = 0; t < stats.sample().rows(); ++t) firsts.push_back(stats.sample()(t, 0));
    CHECK_FALSE(stats.sample_is_complete());
    return firsts;
  };
  const auto a = run(1), b = run(1), c = run(2);
  CHECK(a.size() == 64);
  CHECK(a == b);
  CHECK(a != c);
  double mean = 0;
  for (double v : a) mean += v / 64.0;
  CHECK(mean > 150.0);  // a uniform draw over 0..499 (expected 249.5), not the first 64 rows
  CHECK(mean < 350.0);
  std::vector<double> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());  // distinct rows
}

TEST_CASE("stats: the outlier log keeps the top tokens by max |x|") {
  const std::size_t n = 8, tokens = 200;
  const auto x = sq_test::random_normal<double>(tokens * n, 31);
  sq::stats_options options;
  options.outlier_tokens = 7;
  sq::activation_stats stats(n, options);
  stats.accumulate(sq::matrix_view<const double>(x, tokens, n));
  std::vector<double> peaks(tokens);
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t k = 0; k < n; ++k) peaks[t] = std::max(peaks[t], std::fabs(x[t * n + k]));
  std::vector<double> sorted = peaks;
  std::sort(sorted.rbegin(), sorted.rend());
  REQUIRE(stats.outlier_rows().rows() == 7);
  for (std::size_t r = 0; r < 7; ++r) {
    CHECK(stats.outlier_peaks()[r] == sorted[r]);
    const auto t = static_cast<std::size_t>(std::find(peaks.begin(), peaks.end(), sorted[r]) - peaks.begin());
    CHECK(stats.outlier_rows()(r, 0) == x[t * n]);
  }
}

TEST_CASE("stats: bad input is reported and leaves the statistics unchanged") {
  const std::size_t n = 4;
  sq::activation_stats stats(n);
  std::vector<float> good(3 * n, 1.0f);
  stats.accumulate(sq::matrix_view<const float>(good, 3, n));
  std::vector<float> bad(3 * n, 2.0f);
  bad[2 * n + 1] = std::numeric_limits<float>::quiet_NaN();
  SQ_CHECK_ERROR_CONTAINS(stats.accumulate(sq::matrix_view<const float>(bad, 3, n)),
                          "activation_stats::accumulate", "non-finite", "row 2", "channel 1");
  bad[2 * n + 1] = std::numeric_limits<float>::infinity();
  SQ_CHECK_ERROR_CONTAINS(stats.accumulate(sq::matrix_view<const float>(bad, 3, n)), "non-finite");
  CHECK(stats.tokens() == 3);
  CHECK(stats.absmax(0) == 1.0);
  CHECK(stats.sample().rows() == 3);
  SQ_CHECK_ERROR_CONTAINS(stats.accumulate(sq::matrix_view<const float>(good, 2, 6)),
                          "6 channels", "statistics 4");
  SQ_CHECK_ERROR_CONTAINS(sq::activation_stats(0), "dimension 0 is not in [1, 1048576]");
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(stats.absmax(4)), "activation_stats::absmax", "out of range");
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(stats.pair_moments(1, 1)), "i == j");
  sq::activation_stats other(5);
  SQ_CHECK_ERROR_CONTAINS(stats.merge(other), "dimensions differ");
  SQ_CHECK_ERROR_CONTAINS(sq::activation_stats(n).check_buildable("build_art"), "zero tokens");
  // Overflowing fourth powers are non-finite statistics, caught when building.
  sq::activation_stats huge(n);
  std::vector<double> big(n, 1e100);
  huge.accumulate(sq::matrix_view<const double>(big, 1, n));
  SQ_CHECK_ERROR_CONTAINS(huge.check_buildable("build_art"), "singlequant::build_art", "non-finite statistics");
}

TEST_CASE("weight_stats: rows are sampled evenly over the stacked matrices, in double, checked") {
  const std::size_t n = 4;
  std::vector<float> a(5 * n), b(3 * n);
  for (std::size_t e = 0; e < a.size(); ++e) a[e] = static_cast<float>(e / n);        // rows 0..4
  for (std::size_t e = 0; e < b.size(); ++e) b[e] = static_cast<float>(10 + e / n);   // rows 10..12
  const sq::matrix_view<const float> views[] = {sq::matrix_view<const float>(a, 5, n),
                                                sq::matrix_view<const float>(b, 3, n)};
  // 8 rows, 3 kept: global rows 0, 8/3 = 2, 16/3 = 5 (b's first row).
  const auto sample = sq::detail::sample_weight_rows<float>(views, n, 3, "test");
  REQUIRE(sample.rows == 3);
  CHECK(sample.row(0)[0] == 0.0);
  CHECK(sample.row(1)[3] == 2.0);
  CHECK(sample.row(2)[1] == 10.0);
  const auto all = sq::detail::sample_weight_rows<float>(views, n, 0, "test");
  CHECK(all.rows == 8);
  CHECK(all.row(7)[0] == 12.0);
  sq::weight_stats stats(n);
  CHECK(!stats.active());
  stats.add_rows(sq::matrix_view<const double>(sample.values, sample.rows, n));
  CHECK(stats.active());
  CHECK(stats.rows().rows() == 3);
  CHECK(stats.rows()(2, 1) == 10.0);
  sq::weight_term_options off;
  off.lambda = 0;
  sq::weight_stats inactive(n, off);
  inactive.add_rows(sq::matrix_view<const double>(sample.values, sample.rows, n));
  CHECK(!inactive.active());
  std::vector<double> bad(2 * n, 1.0);
  bad[n + 2] = std::numeric_limits<double>::infinity();
  SQ_CHECK_ERROR_CONTAINS(stats.add_rows(sq::matrix_view<const double>(bad, 2, n)), "weight_stats::add_rows",
                          "row 1", "column 2");
  CHECK(stats.rows().rows() == 3);  // nothing added
  SQ_CHECK_ERROR_CONTAINS(stats.add_rows(sq::matrix_view<const double>(bad, 2, 3)), "3 columns");
  SQ_CHECK_ERROR_CONTAINS(sq::weight_stats(n, sq::weight_term_options{-1.0}), "lambda");
  const sq::matrix_view<const float> wrong[] = {sq::matrix_view<const float>(b, 4, 3)};
  SQ_CHECK_ERROR_CONTAINS(sq::detail::sample_weight_rows<float>(wrong, n, 0, "caller"), "caller",
                          "3 columns");
}

TEST_CASE("issue 14 - activation_stats and weight_stats: huge widths and bad enums are singlequant errors") {
  // Before: std::length_error (dense cross moments of 2^62 doubles) or std::bad_alloc.
  // Widths are bounded by max_site_width; below it, dense cross moments by the allocation limit.
  for (const std::size_t n : {std::size_t{1} << 31, (std::size_t{1} << 20) + 1, ~std::size_t{0}})
    SQ_CHECK_ERROR_CONTAINS(sq::activation_stats(n), "activation_stats", "is not in [1, 1048576]");
  sq::stats_options dense;
  dense.cross = sq::cross_moments::dense;
  SQ_CHECK_ERROR_CONTAINS(sq::activation_stats(std::size_t{1} << 20, dense), "activation_stats",
                          "dense cross moments", "allocation limit");
  SQ_CHECK_ERROR_CONTAINS(sq::weight_stats(std::size_t{1} << 31), "weight_stats", "is not in [1, 1048576]");
  sq::stats_options bad;
  bad.cross = static_cast<sq::cross_moments>(3);
  SQ_CHECK_ERROR_CONTAINS(sq::activation_stats(8, bad), "activation_stats", "stats_options::cross has no enumerator of value 3");
  sq::weight_term_options bad_rows;
  bad_rows.weighting = static_cast<sq::weight_row_weighting>(2);
  SQ_CHECK_ERROR_CONTAINS(sq::weight_stats(8, bad_rows), "weight_stats", "weighting has no enumerator of value 2");
}
