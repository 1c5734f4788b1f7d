#include <singlequant/urt.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "synthetic_layer.hpp"
#include "test_support.hpp"

namespace sq = singlequant;

namespace {

sq::activation_stats stats_of(const std::vector<double>& x, std::size_t tokens, std::size_t n,
                              sq::cross_moments mode = sq::cross_moments::sampled) {
  sq::stats_options options;
  options.cross = mode;
  sq::activation_stats stats(n, options);
  stats.accumulate(sq::matrix_view<const double>(x, tokens, n));
  return stats;
}

std::vector<sq::givens<double>> flatten(const sq::givens_sequence<double>& seq) {
  std::vector<sq::givens<double>> out;
  for (const auto& stage : seq.stages())
    for (const auto& g : stage.rotations()) out.push_back(g);
  return out;
}

// Applies seq to the rows of x one rotation at a time, checking that sum x^4 never rises (each
// step is exact coordinate descent); returns the final sum.
double apply_checking_l4_never_rises(const sq::givens_sequence<double>& seq, std::vector<double>& x,
                                     std::size_t tokens, std::size_t n) {
  double l4 = sq_test::fourth_power_sum(x);
  for (const auto& g : flatten(seq)) {
    sq::givens_sequence<double> single(n);
    single.push_back(g);
    single.apply_rows(sq::matrix_view<double>(x, tokens, n));
    const double after = sq_test::fourth_power_sum(x);
    CHECK(after <= l4 * (1 + 1e-14));
    l4 = after;
  }
  return l4;
}

// Brute force: the closed-form l4 decrease of the pair (i, j) of x.
double pair_decrease(const std::vector<double>& x, std::size_t tokens, std::size_t n, std::size_t i,
                     std::size_t j) {
  sq::angles::pair_fourth_moments m;
  for (std::size_t t = 0; t < tokens; ++t) {
    const double a = x[t * n + i], b = x[t * n + j];
    m.s40 += a * a * a * a;
    m.s31 += a * a * a * b;
    m.s22 += a * a * b * b;
    m.s13 += a * b * b * b;
    m.s04 += b * b * b * b;
  }
  return sq::angles::l4_optimal(m).decrease;
}

}  // namespace

TEST_CASE("urt greedy: every step picks the best pair and never raises the l4") {
  const std::size_t n = 24, tokens = 120;
  const sq_test::llm_like_activations gen(n, 21);
  auto x = gen.draw(tokens, 22);
  const auto stats = stats_of(x, tokens, n);
  sq::urt_options options;
  options.budget = 30;
  options.min_relative_gain = 0;
  options.weighting = sq::token_weighting::raw;
  const auto urt = sq::build_urt(stats, options);
  const auto rotations = flatten(urt.rotations);
  REQUIRE(rotations.size() == 30);
  CHECK(urt.report.rotations == 30);
  // regrouped() keeps the product, not necessarily the order: replay the builder's order, which is
  // the order of a sequential greedy; compare the chosen pair with the brute-force best pair.
  double l4 = sq_test::fourth_power_sum(x);
  CHECK(sq_test::close(std::pow(l4, 0.25), urt.report.l4_before, 1e-12));
  std::size_t best_matches = 0;
  for (const auto& g : rotations) {
    double best = -1;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = i + 1; j < n; ++j) best = std::max(best, pair_decrease(x, tokens, n, i, j));
    const double chosen = pair_decrease(x, tokens, n, g.i, g.j);
    if (chosen >= best * (1 - 1e-9)) ++best_matches;
    sq::givens_sequence<double> single(n);
    single.push_back(g);
    single.apply_rows(sq::matrix_view<double>(x, tokens, n));
    const double after = sq_test::fourth_power_sum(x);
    CHECK(after <= l4 * (1 + 1e-14));
    CHECK(sq_test::close(l4 - after, chosen, 1e-8 * l4));  // the predicted decrease happened
    l4 = after;
  }
  CHECK(best_matches == rotations.size());
  CHECK(sq_test::close(std::pow(l4, 0.25), urt.report.l4_after, 1e-12));
  CHECK(urt.report.l4_after < urt.report.l4_before);
}

TEST_CASE("urt greedy: with unit-norm tokens (default) the l4 of the scaled rows never rises") {
  const std::size_t n = 24, tokens = 100;
  const sq_test::llm_like_activations gen(n, 29);
  auto x = gen.draw(tokens, 30);
  const auto stats = stats_of(x, tokens, n);
  const auto urt = sq::build_urt(stats);
  REQUIRE(urt.report.rotations > 0);
  for (std::size_t t = 0; t < tokens; ++t) {
    double energy = 0;
    for (std::size_t k = 0; k < n; ++k) energy += x[t * n + k] * x[t * n + k];
    for (std::size_t k = 0; k < n; ++k) x[t * n + k] /= std::sqrt(energy);
  }
  CHECK(sq_test::close(std::pow(sq_test::fourth_power_sum(x), 0.25), urt.report.l4_before, 1e-12));
  const double l4 = apply_checking_l4_never_rises(urt.rotations, x, tokens, n);
  CHECK(sq_test::close(std::pow(l4, 0.25), urt.report.l4_after, 1e-12));
}

TEST_CASE("urt greedy: dense starting gains and gains from the rows build the same pairs") {
  const std::size_t n = 33, tokens = 90;
  const sq_test::llm_like_activations gen(n, 23);
  const auto x = gen.draw(tokens, 24);
  sq::urt_options options;
  options.budget = 20;
  options.weighting = sq::token_weighting::raw;  // the dense start needs raw sums
  const auto a = flatten(sq::build_urt(stats_of(x, tokens, n, sq::cross_moments::dense), options).rotations);
  const auto b = flatten(sq::build_urt(stats_of(x, tokens, n, sq::cross_moments::sampled), options).rotations);
  REQUIRE(a.size() == b.size());
  for (std::size_t r = 0; r < a.size(); ++r) {
    CHECK(a[r].i == b[r].i);
    CHECK(a[r].j == b[r].j);
    CHECK(sq_test::close(a[r].c, b[r].c, 1e-9));
  }
}

TEST_CASE("urt greedy: after ART it sees the rotated channels (never raises the l4 either)") {
  const std::size_t n = 32, tokens = 100;
  const sq_test::llm_like_activations gen(n, 25);
  auto x = gen.draw(tokens, 26);
  const auto stats = stats_of(x, tokens, n, sq::cross_moments::dense);
  sq::givens_sequence<double> before(n);
  before.push_back(sq::givens<double>::from_angle(1, 5, 0.7));
  before.push_back(sq::givens<double>::from_angle(17, 3, -0.2));
  sq::urt_options options;
  options.budget = 16;
  options.weighting = sq::token_weighting::raw;
  const auto urt = sq::build_urt(stats, before, options);
  before.apply_rows(sq::matrix_view<double>(x, tokens, n));
  const double start = sq_test::fourth_power_sum(x);
  CHECK(sq_test::close(std::pow(start, 0.25), urt.report.l4_before, 1e-12));
  const double l4 = apply_checking_l4_never_rises(urt.rotations, x, tokens, n);
  CHECK(l4 < start);
}

TEST_CASE("urt greedy: budget n/2 by default, stops when the best gain is negligible") {
  const std::size_t n = 16, tokens = 200;
  const sq_test::llm_like_activations gen(n, 27);
  const auto x = gen.draw(tokens, 28);
  const auto stats = stats_of(x, tokens, n);
  sq::urt_options options;
  options.min_relative_gain = 0;
  CHECK(sq::build_urt(stats, options).report.rotations == n / 2);
  options.min_relative_gain = 10;  // no rotation gains 10x the total
  CHECK(sq::build_urt(stats, options).report.rotations == 0);
  options.mode = sq::urt_mode::none;
  CHECK(sq::build_urt(stats, options).rotations.rotation_count() == 0);
}

TEST_CASE("urt energy: constant channel energy, trace preserved, at most n - 1 rotations") {
  const std::size_t n = 29, tokens = 150;
  const sq_test::llm_like_activations gen(n, 31);
  auto x = gen.draw(tokens, 32);
  const auto stats = stats_of(x, tokens, n);
  sq::urt_options options;
  options.mode = sq::urt_mode::energy;
  options.weighting = sq::token_weighting::raw;
  const auto urt = sq::build_urt(stats, options);
  CHECK(urt.report.rotations <= n - 1);
  CHECK(urt.report.rotations >= 1);
  std::vector<double> before(n, 0.0), after(n, 0.0);
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t k = 0; k < n; ++k) before[k] += x[t * n + k] * x[t * n + k];
  urt.rotations.apply_rows(sq::matrix_view<double>(x, tokens, n));
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t k = 0; k < n; ++k) after[k] += x[t * n + k] * x[t * n + k];
  double trace_before = 0, trace_after = 0;
  for (std::size_t k = 0; k < n; ++k) {
    trace_before += before[k];
    trace_after += after[k];
  }
  CHECK(sq_test::close(trace_before, trace_after, 1e-12 * trace_before));
  const double mu = trace_before / static_cast<double>(n);
  for (std::size_t k = 0; k < n; ++k) CHECK(std::fabs(after[k] - mu) <= 1e-9 * mu);
}

TEST_CASE("urt chain: a spike becomes the flat vector of its block (predetermined angles)") {
  const std::size_t n = 32, b = 8, tokens = 64;
  std::vector<double> x = sq_test::random_normal<double>(tokens * n, 41, 0.1);
  for (std::size_t t = 0; t < tokens; ++t) x[t * n + 11] = 5.0;  // nominal outlier in block 1
  const auto stats = stats_of(x, tokens, n);
  sq::urt_options options;
  options.mode = sq::urt_mode::chain;
  options.chain_block = b;
  const auto urt = sq::build_urt(stats, options);
  CHECK(urt.report.outliers == 1);
  CHECK(urt.report.rotations == b - 1);
  std::vector<double> e(n, 0.0);
  e[11] = 1.0;
  urt.rotations.apply(sq::vector_view<double>(e));
  for (std::size_t k = 0; k < n; ++k) {
    const bool in_block = k >= 8 && k < 16;
    CHECK(e[k] == doctest::Approx(in_block ? 1.0 / std::sqrt(double(b)) : 0.0).epsilon(1e-12));
  }
}

TEST_CASE("urt: same statistics, same rotations, bit for bit") {
  const std::size_t n = 40, tokens = 80;
  const sq_test::llm_like_activations gen(n, 51);
  const auto x = gen.draw(tokens, 52);
  for (auto mode : {sq::urt_mode::greedy_l4, sq::urt_mode::energy, sq::urt_mode::chain}) {
    sq::urt_options options;
    options.mode = mode;
    const auto a = flatten(sq::build_urt(stats_of(x, tokens, n), options).rotations);
    const auto b = flatten(sq::build_urt(stats_of(x, tokens, n), options).rotations);
    REQUIRE(a.size() == b.size());
    for (std::size_t r = 0; r < a.size(); ++r) {
      CHECK(a[r].i == b[r].i);
      CHECK(a[r].j == b[r].j);
      CHECK(std::memcmp(&a[r].c, &b[r].c, sizeof(double)) == 0);
      CHECK(std::memcmp(&a[r].s, &b[r].s, sizeof(double)) == 0);
    }
  }
}

TEST_CASE("urt: max_rows builds on an evenly strided subset of the calibration rows") {
  const std::size_t n = 16, tokens = 120;
  const sq_test::llm_like_activations gen(n, 53);
  const auto x = gen.draw(tokens, 54);
  std::vector<double> subset;
  for (std::size_t t = 0; t < 40; ++t) subset.insert(subset.end(), x.begin() + static_cast<std::ptrdiff_t>(t * 3 * n), x.begin() + static_cast<std::ptrdiff_t>((t * 3 + 1) * n));
  sq::urt_options options;
  options.max_rows = 40;
  const auto a = flatten(sq::build_urt(stats_of(x, tokens, n), options).rotations);
  options.max_rows = 0;
  const auto b = flatten(sq::build_urt(stats_of(subset, 40, n), options).rotations);
  REQUIRE(a.size() == b.size());
  for (std::size_t r = 0; r < a.size(); ++r) {
    CHECK(a[r].i == b[r].i);
    CHECK(a[r].j == b[r].j);
    CHECK(a[r].c == b[r].c);
  }
}

TEST_CASE("urt: bad input is reported") {
  sq::activation_stats empty(8);
  SQ_CHECK_ERROR_CONTAINS(sq::build_urt(empty), "singlequant::build_urt", "zero tokens");
  std::vector<double> x(16, 1.0);
  sq::activation_stats stats(8);
  stats.accumulate(sq::matrix_view<const double>(x, 2, 8));
  SQ_CHECK_ERROR_CONTAINS(sq::build_urt(stats, sq::givens_sequence<double>(9)), "dimension 9");
  sq::urt_options bad;
  bad.min_relative_gain = std::numeric_limits<double>::quiet_NaN();
  SQ_CHECK_ERROR_CONTAINS(sq::build_urt(stats, bad), "min_relative_gain");
}
