#include <singlequant/art.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "synthetic_layer.hpp"
#include "test_support.hpp"

namespace sq = singlequant;

namespace {

sq::activation_stats stats_of(const std::vector<double>& x, std::size_t tokens, std::size_t n) {
  sq::activation_stats stats(n);
  stats.accumulate(sq::matrix_view<const double>(x, tokens, n));
  return stats;
}

}  // namespace

TEST_CASE("art: flags the magnitude outliers and pairs each with a quiet partner") {
  const std::size_t n = 64, tokens = 400;
  const sq_test::llm_like_activations gen(n, 3);
  const auto x = gen.draw(tokens, 4);
  const auto stats = stats_of(x, tokens, n);
  sq::art_options options;
  options.tau_mag = 8.0;
  options.max_levels = 3;
  options.weighting = sq::token_weighting::raw;  // flag on the raw absmax the test computes
  const auto art = sq::build_art(stats, options);
  // The massive channels (100-1000x) and the larger systematic ones are flagged; nothing else.
  std::vector<double> peak(n);
  for (std::size_t k = 0; k < n; ++k) peak[k] = stats.absmax(k);
  std::vector<double> sorted = peak;
  std::nth_element(sorted.begin(), sorted.begin() + (n - 1) / 2, sorted.end());
  const double threshold = 8.0 * sorted[(n - 1) / 2];
  std::size_t expected = 0;
  for (double p : peak) expected += p > threshold ? 1 : 0;
  CHECK(expected >= 3);
  CHECK(art.report.outliers == expected);
  CHECK(art.report.stages >= 1);
  CHECK(art.report.stages <= 3);
  CHECK(art.report.rotations == art.rotations.rotation_count());
  CHECK(art.report.rotations <= expected * 7);  // k (2^L - 1)
  // First stage: every flagged channel is in exactly one pair, its partner not flagged.
  const auto first = art.rotations.stages()[0];
  CHECK(first.size() == expected);
  for (const auto& g : first.rotations()) {
    CHECK(peak[g.i] > threshold);
    CHECK(peak[g.j] <= threshold);
  }
  CHECK(sq_test::orthogonality_error(art.rotations.to_dense(), n) <= 1e-12);
  CHECK(art.report.l4_after < art.report.l4_before);
  CHECK(art.report.max_over_rms_after < art.report.max_over_rms_before);
}

TEST_CASE("art: the l4 rule never increases the calibration l4, stage by stage") {
  const std::size_t n = 48, tokens = 300;
  const sq_test::llm_like_activations gen(n, 5);
  auto x = gen.draw(tokens, 6);
  const auto stats = stats_of(x, tokens, n);
  sq::art_options options;
  options.tau_mag = 4.0;
  options.max_levels = 4;
  options.weighting = sq::token_weighting::raw;  // the objective is the plain sum of y^4
  const auto art = sq::build_art(stats, options);
  REQUIRE(art.report.rotations > 0);
  double before = sq_test::fourth_power_sum(x);
  CHECK(sq_test::close(std::pow(before, 0.25), art.report.l4_before, 1e-12));
  for (const auto& stage : art.rotations.stages()) {
    sq::givens_sequence<double> one(n);
    one.push_back_stage(stage);
    for (const auto& g : stage.rotations()) {
      // Each rotation on its own is an exact coordinate-descent step.
      sq::givens_sequence<double> single(n);
      single.push_back(g);
      auto y = x;
      single.apply_rows(sq::matrix_view<double>(y, tokens, n));
      CHECK(sq_test::fourth_power_sum(y) <= before * (1 + 1e-14));
    }
    one.apply_rows(sq::matrix_view<double>(x, tokens, n));
    const double after = sq_test::fourth_power_sum(x);
    CHECK(after <= before * (1 + 1e-14));
    before = after;
  }
  CHECK(sq_test::close(std::pow(before, 0.25), art.report.l4_after, 1e-12));
}

TEST_CASE("art: one-token spike: the l4 and linf rules halve it per two levels") {
  // A spike of 64 in channel 0 over a faint background: level 1 gives two coordinates of
  // 64/sqrt(2), level 2 four of 32.
  const std::size_t n = 16, tokens = 1;
  std::vector<double> x(n, 0.0);
  for (std::size_t k = 0; k < n; ++k) x[k] = 1e-3 * static_cast<double>(k + 1);
  x[0] = 64.0;
  const auto stats = stats_of(x, tokens, n);
  for (auto rule : {sq::angle_rule::l4, sq::angle_rule::linf}) {
    sq::art_options options;
    options.tau_mag = 100.0;  // median ~ 8.5e-3: threshold 0.85
    options.max_levels = 2;
    options.rule = rule;
    const auto art = sq::build_art(stats, options);
    CHECK(art.report.outliers == 1);
    CHECK(art.report.stages == 2);
    CHECK(art.report.rotations == 3);
    auto y = x;
    art.rotations.apply_rows(sq::matrix_view<double>(y, tokens, n));
    double peak = 0;
    for (double v : y) peak = std::max(peak, std::fabs(v));
    CHECK(peak == doctest::Approx(32.0).epsilon(1e-3));
  }
}

TEST_CASE("art: the energy rule equalises the pair's second moments") {
  const std::size_t n = 32, tokens = 200;
  const sq_test::llm_like_activations gen(n, 8);
  auto x = gen.draw(tokens, 9);
  const auto stats = stats_of(x, tokens, n);
  sq::art_options options;
  options.rule = sq::angle_rule::energy;
  options.weighting = sq::token_weighting::raw;
  options.tau_mag = 6.0;
  options.max_levels = 1;
  const auto art = sq::build_art(stats, options);
  REQUIRE(art.report.rotations > 0);
  art.rotations.apply_rows(sq::matrix_view<double>(x, tokens, n));
  for (const auto& g : art.rotations.stages()[0].rotations()) {
    double si = 0, sj = 0;
    for (std::size_t t = 0; t < tokens; ++t) {
      si += x[t * n + g.i] * x[t * n + g.i];
      sj += x[t * n + g.j] * x[t * n + g.j];
    }
    CHECK(sq_test::close(si, sj, 1e-10 * (si + sj)));
  }
}

TEST_CASE("art: nothing flagged, nothing built; levels 0 builds nothing") {
  const std::size_t n = 16, tokens = 100;
  const auto x = sq_test::random_normal<double>(tokens * n, 10);
  const auto stats = stats_of(x, tokens, n);
  const auto art = sq::build_art(stats);  // tau 16: Gaussian channels are never 16x the median
  CHECK(art.report.outliers == 0);
  CHECK(art.rotations.rotation_count() == 0);
  CHECK(art.report.l4_after == art.report.l4_before);
  sq::art_options none;
  none.max_levels = 0;
  none.tau_mag = 0.5;
  CHECK(sq::build_art(stats, none).rotations.rotation_count() == 0);
}

TEST_CASE("art: same statistics, same rotations, bit for bit") {
  const std::size_t n = 40, tokens = 150;
  const sq_test::llm_like_activations gen(n, 12);
  const auto x = gen.draw(tokens, 13);
  sq::art_options options;
  options.tau_mag = 4.0;
  const auto a = sq::build_art(stats_of(x, tokens, n), options);
  const auto b = sq::build_art(stats_of(x, tokens, n), options);
  CHECK(a.rotations.to_dense() == b.rotations.to_dense());
}

TEST_CASE("art: bad input is reported") {
  sq::activation_stats empty(8);
  SQ_CHECK_ERROR_CONTAINS(sq::build_art(empty), "singlequant::build_art", "zero tokens");
  std::vector<double> x(8, 1.0);
  sq::activation_stats stats(8);
  stats.accumulate(sq::matrix_view<const double>(x, 1, 8));
  sq::art_options bad;
  bad.tau_mag = std::numeric_limits<double>::quiet_NaN();
  SQ_CHECK_ERROR_CONTAINS(sq::build_art(stats, bad), "tau_mag");
  bad.tau_mag = 0;
  SQ_CHECK_ERROR_CONTAINS(sq::build_art(stats, bad), "tau_mag");
  sq::stats_options no_sample;
  no_sample.max_sample_rows = 0;
  sq::activation_stats unsampled(8, no_sample);
  unsampled.accumulate(sq::matrix_view<const double>(x, 1, 8));
  SQ_CHECK_ERROR_CONTAINS(sq::build_art(unsampled), "no row sample");
  sq::activation_stats overflowing(8);
  std::vector<double> huge(8, 1e90);
  overflowing.accumulate(sq::matrix_view<const double>(huge, 1, 8));
  SQ_CHECK_ERROR_CONTAINS(sq::build_art(overflowing), "non-finite statistics");
}

TEST_CASE("art joint: a weight-side outlier is flagged, lambda = 0 builds today's rotation bit for bit") {
  // Flat tokens: nothing stands out on the activation side; the weights read input channel 7 with
  // rows 30x larger there, so only the weight side flags it.
  const std::size_t n = 32, tokens = 200, m = 48;
  const auto x = sq_test::random_normal<double>(tokens * n, 61);
  auto w = sq_test::random_normal<double>(m * n, 62, 0.05);
  for (std::size_t r = 0; r < m; ++r) w[r * n + 7] *= 30.0;
  const auto stats = stats_of(x, tokens, n);
  sq::art_options options;
  options.tau_mag = 2.5;  // unit-norm weight rows: channel 7 holds ~0.98 of each, others <= ~0.3
  const auto today = sq::build_art(stats, options);
  CHECK(today.report.outliers == 0);
  sq::weight_stats weights(n);
  weights.add_rows(sq::matrix_view<const double>(w, m, n));
  const auto joint = sq::build_art(stats, weights, options);
  CHECK(joint.report.outliers == 1);
  REQUIRE(joint.rotations.rotation_count() >= 1);
  CHECK(joint.rotations.stages()[0].rotations()[0].i == 7);
  CHECK(joint.report.l4_after < joint.report.l4_before);

  sq::weight_term_options off;
  off.lambda = 0;
  sq::weight_stats zero(n, off);
  zero.add_rows(sq::matrix_view<const double>(w, m, n));
  const auto x_outliers = sq_test::llm_like_activations(n, 63).draw(tokens, 64);
  const auto loud = stats_of(x_outliers, tokens, n);
  const auto a = sq::build_art(loud, options), b = sq::build_art(loud, zero, options);
  REQUIRE(a.rotations.rotation_count() > 0);
  REQUIRE(a.rotations.stages().size() == b.rotations.stages().size());
  sq_test::check_same_rotations(a.rotations, b.rotations);
}

TEST_CASE("issue 14 - build_art: out-of-range enum values are errors") {
  const std::size_t n = 16, tokens = 40;
  const sq_test::llm_like_activations gen(n, 94);
  const auto stats = stats_of(gen.draw(tokens, 95), tokens, n);
  sq::art_options bad_rule;
  bad_rule.rule = static_cast<sq::angle_rule>(3);
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::build_art(stats, bad_rule)), "build_art",
                          "art_options::rule has no enumerator of value 3");
  sq::art_options bad_weighting;
  bad_weighting.weighting = static_cast<sq::token_weighting>(-3);
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::build_art(stats, bad_weighting)), "build_art",
                          "art_options::weighting has no enumerator of value -3");
}
