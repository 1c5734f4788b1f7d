#include <singlequant/urt.hpp>

#include <algorithm>
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

TEST_CASE("urt greedy: budget_per_channel scales the default budget with the width; bad values are errors") {
  const std::size_t n = 16, tokens = 200;
  const sq_test::llm_like_activations gen(n, 27);
  const auto x = gen.draw(tokens, 28);
  const auto stats = stats_of(x, tokens, n);
  sq::urt_options options;
  options.min_relative_gain = 0;
  options.budget_per_channel = 2.0;
  const auto scaled = sq::build_urt(stats, options);
  CHECK(scaled.report.rotations == 2 * n);
  options.budget_per_channel = 0.5;
  options.budget = 2 * n;  // an explicit budget wins and gives the same sequence
  const auto explicit_budget = sq::build_urt(stats, options);
  CHECK(flatten(explicit_budget.rotations).size() == flatten(scaled.rotations).size());
  CHECK(explicit_budget.report.l4_after == scaled.report.l4_after);
  options.budget = 0;
  options.budget_per_channel = 1e6;  // capped at the n (n - 1) / 2 planes
  CHECK(sq::build_urt(stats, options).report.rotations == n * (n - 1) / 2);
  options.budget_per_channel = -1;
  SQ_CHECK_ERROR_CONTAINS(sq::build_urt(stats, options), "build_urt", "budget_per_channel");
  options.budget_per_channel = std::numeric_limits<double>::quiet_NaN();
  SQ_CHECK_ERROR_CONTAINS(sq::build_urt(stats, options), "build_urt", "budget_per_channel");
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
    sq_test::check_same_rotations(sq::build_urt(stats_of(x, tokens, n), options).rotations,
                                  sq::build_urt(stats_of(x, tokens, n), options).rotations);
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

namespace {

// Weight rows with outlier input channels: m x n, Gaussian, columns 3, 11 and 20 twenty times larger.
std::vector<double> weights_with_outlier_columns(std::size_t m, std::size_t n, std::uint64_t seed) {
  auto w = sq_test::random_normal<double>(m * n, seed, 0.05);
  for (std::size_t r = 0; r < m; ++r)
    for (const std::size_t c : {std::size_t{3}, std::size_t{11}, std::size_t{20}}) w[r * n + c] *= 20.0;
  return w;
}

// The joint rows the objective sums over, built independently of the builder: unit-norm tokens,
// then unit-norm weight rows scaled by (lambda T / N)^(1/4) (unit weighting), stacked.
std::vector<double> joint_rows(std::vector<double> x, std::size_t tokens, const std::vector<double>& w,
                               std::size_t m, std::size_t n, double lambda) {
  auto unit = [n](double* row) {
    double energy = 0;
    for (std::size_t k = 0; k < n; ++k) energy += row[k] * row[k];
    for (std::size_t k = 0; k < n; ++k) row[k] /= std::sqrt(energy);
  };
  for (std::size_t t = 0; t < tokens; ++t) unit(x.data() + t * n);
  const double scale = std::pow(lambda * static_cast<double>(tokens) / static_cast<double>(m), 0.25);
  for (std::size_t r = 0; r < m; ++r) {
    std::vector<double> row(w.begin() + static_cast<std::ptrdiff_t>(r * n),
                            w.begin() + static_cast<std::ptrdiff_t>((r + 1) * n));
    unit(row.data());
    for (const double v : row) x.push_back(v * scale);
  }
  return x;
}

}  // namespace

TEST_CASE("urt joint: the greedy sweep never raises the joint l4 of tokens and weight rows") {
  const std::size_t n = 24, tokens = 100, m = 40;
  const sq_test::llm_like_activations gen(n, 41);
  const auto x = gen.draw(tokens, 42);
  const auto w = weights_with_outlier_columns(m, n, 43);
  const auto stats = stats_of(x, tokens, n);
  for (const double lambda : {0.5, 1.0, 4.0}) {
    CAPTURE(lambda);
    sq::weight_term_options term;
    term.lambda = lambda;
    sq::weight_stats weights(n, term);
    weights.add_rows(sq::matrix_view<const double>(w, m, n));
    sq::urt_options options;
    options.min_relative_gain = 0;
    const auto urt = sq::build_urt(stats, weights, sq::givens_sequence<double>(n), options);
    REQUIRE(urt.report.rotations == n / 2);
    auto rows = joint_rows(x, tokens, w, m, n, lambda);
    CHECK(sq_test::close(std::pow(sq_test::fourth_power_sum(rows), 0.25), urt.report.l4_before, 1e-12));
    const double l4 = apply_checking_l4_never_rises(urt.rotations, rows, tokens + m, n);
    CHECK(sq_test::close(std::pow(l4, 0.25), urt.report.l4_after, 1e-12));
    CHECK(urt.report.l4_after < urt.report.l4_before);
    // The weight rows are part of the objective: the activation-only sweep leaves a larger joint l4.
    const auto activation_only = sq::build_urt(stats, options);
    auto rows_a = joint_rows(x, tokens, w, m, n, lambda);
    activation_only.rotations.apply_rows(sq::matrix_view<double>(rows_a, tokens + m, n));
    CHECK(std::pow(sq_test::fourth_power_sum(rows_a), 0.25) > urt.report.l4_after);
  }
}

TEST_CASE("urt joint: lambda = 0 or no weight rows builds today's rotation bit for bit") {
  const std::size_t n = 40, tokens = 150, m = 30;
  const sq_test::llm_like_activations gen(n, 44);
  const auto x = gen.draw(tokens, 45);
  const auto w = weights_with_outlier_columns(m, n, 46);
  for (const auto weighting : {sq::token_weighting::unit_norm, sq::token_weighting::raw}) {
    for (const auto mode : {sq::urt_mode::greedy_l4, sq::urt_mode::energy, sq::urt_mode::chain}) {
      const auto stats = stats_of(x, tokens, n, sq::cross_moments::dense);
      sq::urt_options options;
      options.weighting = weighting;
      options.mode = mode;
      const auto today = sq::build_urt(stats, options);
      sq::weight_term_options off;
      off.lambda = 0;
      sq::weight_stats zero(n, off);
      zero.add_rows(sq::matrix_view<const double>(w, m, n));
      sq::weight_stats empty(n);
      for (const sq::weight_stats* weights : {&zero, &empty}) {
        const auto joint = sq::build_urt(stats, *weights, sq::givens_sequence<double>(n), options);
        REQUIRE(joint.rotations.rotation_count() == today.rotations.rotation_count());
        sq_test::check_same_rotations(today.rotations, joint.rotations);
        CHECK(std::memcmp(&today.report.l4_after, &joint.report.l4_after, sizeof(double)) == 0);
      }
    }
  }
}

TEST_CASE("urt joint: weight rows of another width are refused") {
  const std::size_t n = 16, tokens = 20;
  const auto x = sq_test::random_normal<double>(tokens * n, 47);
  const auto stats = stats_of(x, tokens, n);
  const sq::weight_stats weights(n + 1);
  SQ_CHECK_ERROR_CONTAINS(sq::build_urt(stats, weights, sq::givens_sequence<double>(n)), "build_urt",
                          "17");
}

TEST_CASE("issue 14 - build_urt: budget SIZE_MAX with min_relative_gain 0 stops after n (n - 1) / 2 rotations") {
  const std::size_t n = 16, tokens = 200;
  const sq_test::llm_like_activations gen(n, 90);
  const auto x = gen.draw(tokens, 91);
  const auto stats = stats_of(x, tokens, n);
  sq::urt_options options;
  options.budget = std::numeric_limits<std::size_t>::max();
  options.min_relative_gain = 0;  // before: millions of rotations at n = 16 (still running after 20 s)
  const auto unlimited = sq::build_urt(stats, options);
  CHECK(unlimited.report.rotations == n * (n - 1) / 2);
  options.budget = n * (n - 1) / 2;
  const auto capped = sq::build_urt(stats, options);
  CHECK(flatten(unlimited.rotations).size() == flatten(capped.rotations).size());
  CHECK(unlimited.report.l4_after == capped.report.l4_after);
  // Gain 0 counts as the noise floor.
  options.min_relative_gain = sq::greedy_l4_noise_floor;
  CHECK(sq::build_urt(stats, options).report.l4_after == capped.report.l4_after);
}

TEST_CASE("issue 14 - build_urt: out-of-range enum values are errors") {
  const std::size_t n = 16, tokens = 40;
  const sq_test::llm_like_activations gen(n, 92);
  const auto stats = stats_of(gen.draw(tokens, 93), tokens, n);
  sq::urt_options bad_mode;
  bad_mode.mode = static_cast<sq::urt_mode>(4);
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::build_urt(stats, bad_mode)), "build_urt",
                          "urt_options::mode has no enumerator of value 4");
  sq::urt_options bad_weighting;
  bad_weighting.weighting = static_cast<sq::token_weighting>(2);
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::build_urt(stats, bad_weighting)), "build_urt",
                          "urt_options::weighting has no enumerator of value 2");
}

TEST_CASE("urt greedy blocked: each step is the best pair of any block of consecutive channels") {
  // search_block 8 on 40 channels: blocks [0, 8), [8, 16), ...; every rotation stays inside one
  // block and picks the largest gain over every block's pairs (brute force on the rotated rows).
  const std::size_t n = 40, tokens = 150, block = 8;
  const sq_test::llm_like_activations gen(n, 61);
  auto x = gen.draw(tokens, 62);
  const auto stats = stats_of(x, tokens, n);
  sq::urt_options options;
  options.weighting = sq::token_weighting::raw;
  options.search_block = block;
  options.budget = 30;
  options.min_relative_gain = 0;
  const auto urt = sq::build_urt(stats, options);
  const auto rotations = flatten(urt.rotations);
  REQUIRE(rotations.size() == 30);
  std::vector<std::size_t> block_of(n);
  for (std::size_t k = 0; k < n; ++k) block_of[k] = k / block;
  double l4 = sq_test::fourth_power_sum(x);
  for (const auto& g : rotations) {
    CHECK(block_of[g.i] == block_of[g.j]);
    double best = -1;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = i + 1; j < n; ++j)
        if (block_of[i] == block_of[j]) best = std::max(best, pair_decrease(x, tokens, n, i, j));
    const double chosen = pair_decrease(x, tokens, n, g.i, g.j);
    CHECK(chosen >= best * (1 - 1e-9));
    sq::givens_sequence<double> single(n);
    single.push_back(g);
    single.apply_rows(sq::matrix_view<double>(x, tokens, n));
    const double after = sq_test::fourth_power_sum(x);
    CHECK(sq_test::close(l4 - after, chosen, 1e-8 * l4));  // the predicted decrease happened
    l4 = after;
  }
  CHECK(sq_test::close(std::pow(l4, 0.25), urt.report.l4_after, 1e-12));
}

TEST_CASE("urt greedy blocked: a block of n or more is the exact greedy, bit for bit") {
  const std::size_t n = 40, tokens = 100;
  const sq_test::llm_like_activations gen(n, 63);
  const auto x = gen.draw(tokens, 64);
  const auto stats = stats_of(x, tokens, n);
  sq::urt_options exact;
  sq::urt_options wide;
  wide.search_block = n;
  sq_test::check_same_rotations(sq::build_urt(stats, exact).rotations,
                                sq::build_urt(stats, wide).rotations);
  wide.search_block = 1000;
  sq_test::check_same_rotations(sq::build_urt(stats, exact).rotations,
                                sq::build_urt(stats, wide).rotations);
  CHECK(sq::greedy_l4_search_block(n) == n);  // the automatic block is exact at this width
  CHECK(sq::greedy_l4_search_block(362) == 362);
  CHECK(sq::greedy_l4_search_block(1024) == 128);
  CHECK(sq::greedy_l4_search_block(5120) == 24);
  CHECK(sq::greedy_l4_search_block(13824) == 8);
  // Blocked builds are deterministic too, and blocks of 14 channels are rounded to whole panels.
  sq::urt_options blocked;
  blocked.search_block = 16;
  sq::urt_options rounded;
  rounded.search_block = 14;  // 40 / 14: 3 blocks, of ceil(40 / 3) = 14 -> 16 channels
  sq_test::check_same_rotations(sq::build_urt(stats, blocked).rotations,
                                sq::build_urt(stats, rounded).rotations);
  sq_test::check_same_rotations(sq::build_urt(stats, blocked).rotations,
                                sq::build_urt(stats, blocked).rotations);
}
