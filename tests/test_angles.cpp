// Closed-form angle solvers against brute-force searches over a fine theta grid, on random and
// adversarial statistics (zero cross term, equal energies, one channel zero, huge dynamic range,
// negative values); objectives are evaluated on the rotated data, not on the solvers' formulas.
#include <singlequant/angles.hpp>
#include <singlequant/givens.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <numbers>
#include <random>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace sq = singlequant;
namespace angles = singlequant::angles;

namespace {

constexpr double pi = std::numbers::pi;

/// (x_i', x_j') = (c a - s b, s a + c b): the convention of givens.hpp, written out independently.
std::pair<double, double> rotated(double a, double b, double theta) {
  const double c = std::cos(theta), s = std::sin(theta);
  return {c * a - s * b, s * a + c * b};
}

/// Minimum of f over `points` equally spaced angles in [lo, hi].
double grid_minimum(const std::function<double(double)>& f, double lo, double hi, int points) {
  double best = f(lo);
  for (int k = 1; k < points; ++k) best = std::min(best, f(lo + (hi - lo) * k / (points - 1)));
  return best;
}

struct pair_data {
  std::vector<double> a, b;
};

double l4_of(const pair_data& d, double theta) {
  double sum = 0;
  for (std::size_t t = 0; t < d.a.size(); ++t) {
    const auto [x, y] = rotated(d.a[t], d.b[t], theta);
    sum += x * x * x * x + y * y * y * y;
  }
  return sum;
}

std::vector<pair_data> l4_cases() {
  std::vector<pair_data> cases;
  std::mt19937_64 rng(42);
  std::normal_distribution<double> normal;
  auto make = [&](std::size_t tokens, auto&& generator) {
    pair_data d;
    for (std::size_t t = 0; t < tokens; ++t) {
      const auto [a, b] = generator(t);
      d.a.push_back(a);
      d.b.push_back(b);
    }
    cases.push_back(std::move(d));
  };
  for (int k = 0; k < 6; ++k) make(64, [&](std::size_t) { return std::pair{normal(rng), normal(rng)}; });
  // A massive outlier on channel i in a few tokens (the ART case), negative and positive.
  make(64, [&](std::size_t t) { return std::pair{normal(rng) * (t % 17 == 3 ? -60.0 : 1.0), normal(rng)}; });
  make(1, [&](std::size_t) { return std::pair{-7.0, 2.5}; });             // one token: reduces to L-inf
  make(32, [&](std::size_t) { return std::pair{normal(rng), 0.0}; });      // channel j zero
  make(32, [&](std::size_t) { const double v = normal(rng); return std::pair{v, v}; });  // on the diagonal
  make(32, [&](std::size_t) { return std::pair{normal(rng) * 1e60, normal(rng) * 1e-60}; });  // dynamic range
  make(32, [&](std::size_t) { return std::pair{normal(rng) * 1e-70, normal(rng) * 3e-70}; });  // tiny
  make(48, [&](std::size_t t) { return std::pair{t % 2 ? 1.0 : -1.0, t % 3 ? 2.0 : -2.0}; });  // signs
  return cases;
}

}  // namespace

TEST_CASE("angles::zero_entry zeroes x_j and leaves +r in x_i") {
  std::mt19937_64 rng(1);
  std::normal_distribution<double> normal;
  std::vector<std::pair<double, double>> inputs = {{0, 5}, {5, 0}, {-3, 0}, {0, -2}, {-1, -1}, {1e150, 1e-150},
                                                   {-1e-200, 3e-200}, {2, -7}};
  for (int k = 0; k < 50; ++k) inputs.emplace_back(normal(rng), normal(rng));
  for (const auto& input : inputs) {
    const double a = input.first, b = input.second;
    const double theta = angles::zero_entry(a, b);
    CHECK(theta > -pi);
    CHECK(theta <= pi);
    const double r = std::hypot(a, b);
    const auto [x, y] = rotated(a, b, theta);
    CHECK(std::fabs(y) <= 4e-16 * r);
    CHECK(std::fabs(x - r) <= 4e-16 * r);
    // Brute force: no grid angle puts more mass into x_i.
    const double most = -grid_minimum([&](double t) { return -rotated(a, b, t).first; }, -pi, pi, 20001);
    CHECK(x >= most - 1e-15 * r);
  }
  CHECK(angles::zero_entry(-3, 0) == pi);  // canonical end of (-pi, pi]
  CHECK(angles::zero_entry(0, 0) == 0.0);
  SQ_CHECK_ERROR_CONTAINS(angles::zero_entry(NAN, 1), "angles::zero_entry", "non-finite");
}

TEST_CASE("angles::align_linf minimises max(|x_i'|, |x_j'|) for one pair") {
  std::mt19937_64 rng(2);
  std::normal_distribution<double> normal;
  std::vector<std::pair<double, double>> inputs = {{1, 0}, {0, 1}, {-4, 0}, {3, 3}, {-2, 2}, {1e200, -1e-200},
                                                   {-5e-300, 0}, {26.5, -0.5}};
  for (int k = 0; k < 50; ++k) inputs.emplace_back(normal(rng) * 10, normal(rng));
  for (const auto& input : inputs) {
    const double a = input.first, b = input.second;
    const double theta = angles::align_linf(a, b);
    CHECK(theta > -pi / 4);
    CHECK(theta <= pi / 4);
    const auto peak = [&](double t) {
      const auto [x, y] = rotated(a, b, t);
      return std::max(std::fabs(x), std::fabs(y));
    };
    const double r = std::hypot(a, b);
    CHECK(peak(theta) <= grid_minimum(peak, -pi / 4, pi / 4, 20001) + 1e-14 * r);
    const auto [x, y] = rotated(a, b, theta);
    CHECK(std::fabs(std::fabs(x) - r / std::sqrt(2.0)) <= 1e-15 * r);  // both on the diagonal
    CHECK(std::fabs(std::fabs(y) - r / std::sqrt(2.0)) <= 1e-15 * r);
  }
  CHECK(angles::align_linf(1, 0) == doctest::Approx(pi / 4));  // a spike halves into a butterfly
  CHECK(angles::align_linf(0, 0) == 0.0);
  SQ_CHECK_ERROR_CONTAINS(angles::align_linf(1, INFINITY), "angles::align_linf", "non-finite");
}

TEST_CASE("angles::l4_optimal: brute-force optimum, exact decrease, never increases") {
  for (const auto& d : l4_cases()) {
    const auto m = angles::accumulate_pair_moments(d.a, d.b);
    const auto step = angles::l4_optimal(m);
    CHECK(step.theta > -pi / 4);
    CHECK(step.theta <= pi / 4);
    const double before = l4_of(d, 0.0);
    const double after = l4_of(d, step.theta);
    const double best = grid_minimum([&](double t) { return l4_of(d, t); }, -pi / 4, pi / 4, 20001);
    CHECK(after <= best * (1 + 1e-12));
    CHECK(step.decrease >= 0);
    CHECK(std::fabs(step.decrease - (before - after)) <= 1e-10 * before);
    CHECK(after <= before * (1 + 1e-14));
    for (double t : {-0.7, -0.1, 0.3, 1.9}) CHECK(angles::l4_at(m, t) == doctest::Approx(l4_of(d, t)).epsilon(1e-11));
  }
  // Channel j zero: a plain butterfly; already on the diagonal: the identity, no gain.
  const std::vector<double> a = {1, -2, 3}, zero = {0, 0, 0};
  CHECK(angles::l4_optimal(angles::accumulate_pair_moments(a, zero)).theta == doctest::Approx(pi / 4));
  const auto diagonal = angles::l4_optimal(angles::accumulate_pair_moments(a, a));
  CHECK(diagonal.theta == 0.0);
  CHECK(diagonal.decrease == 0.0);
  CHECK(angles::l4_optimal({}).theta == 0.0);
  CHECK(angles::l4_optimal({}).decrease == 0.0);

  // Never increases, over many random pairs (the coordinate-descent guarantee).
  std::mt19937_64 rng(9);
  std::student_t_distribution<double> heavy(3.0);
  for (int k = 0; k < 300; ++k) {
    std::vector<double> x(20), y(20);
    for (auto& v : x) v = heavy(rng);
    for (auto& v : y) v = heavy(rng) * 0.1;
    const auto m = angles::accumulate_pair_moments(x, y);
    const auto step = angles::l4_optimal(m);
    CHECK(angles::l4_at(m, step.theta) <= m.l4() * (1 + 1e-14));
  }

  // Matrix columns give the same sums as the column vectors; float data accumulates in double.
  const std::vector<float> tokens = {1.f, 2.f, -3.f, 0.5f, 4.f, -1.f};  // 3 tokens x 2 channels
  const auto from_matrix = angles::accumulate_pair_moments(sq::matrix_view<const float>(tokens.data(), 3, 2), 0, 1);
  const std::vector<float> column_i = {1.f, -3.f, 4.f}, column_j = {2.f, 0.5f, -1.f};
  const auto from_columns = angles::accumulate_pair_moments(column_i, column_j);
  CHECK(from_matrix == from_columns);
  CHECK(from_matrix.s31 == doctest::Approx(1.0 * 2 + -27.0 * 0.5 + 64.0 * -1));

  SQ_CHECK_ERROR_CONTAINS(angles::l4_optimal({NAN, 0, 0, 0, 1}), "angles::l4_optimal", "non-finite");
  SQ_CHECK_ERROR_CONTAINS(angles::l4_optimal({INFINITY, 0, 0, 0, 1}), "angles::l4_optimal", "non-finite");
  const std::vector<double> three(3), four(4);
  SQ_CHECK_ERROR_CONTAINS(angles::accumulate_pair_moments(three, four), "angles::accumulate_pair_moments",
                          "3 vs 4");
  SQ_CHECK_ERROR_CONTAINS(angles::accumulate_pair_moments(sq::matrix_view<const float>(tokens.data(), 3, 2), 0, 2),
                          "angles::accumulate_pair_moments", "(0, 2)", "2 columns");
}

TEST_CASE("angles::equalize_second_moment gives equal energies (not the Jacobi angle)") {
  std::vector<std::array<double, 3>> stats = {{4, 1, 0.5}, {1, 4, -0.5}, {3, 1, 0},   {1, 3, 0},   {2, 2, 0.7},
                                              {2, 2, -0.7}, {2, 2, 0},   {5, 0, 0},   {0, 0, 0},   {1e300, 1e-300, 0},
                                              {1e-300, 2e-300, 1e-301}, {9, 1, 3}};
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal;
  for (int k = 0; k < 40; ++k) {  // second moments of real data (positive semi-definite)
    double sii = 0, sjj = 0, sij = 0;
    for (int t = 0; t < 10; ++t) {
      const double a = normal(rng) * 3, b = normal(rng) + 0.5 * a;
      sii += a * a;
      sjj += b * b;
      sij += a * b;
    }
    stats.push_back({sii, sjj, sij});
  }
  for (const auto& moments : stats) {
    const double sii = moments[0], sjj = moments[1], sij = moments[2];
    const double theta = angles::equalize_second_moment(sii, sjj, sij);
    CHECK(theta > -pi / 4);
    CHECK(theta <= pi / 4);
    const auto energies = [&](double t) {  // E[x_i'^2], E[x_j'^2], E[x_i' x_j'] of the rotated pair
      const double c = std::cos(t), s = std::sin(t);
      return std::array<double, 3>{c * c * sii - 2 * c * s * sij + s * s * sjj,
                                   s * s * sii + 2 * c * s * sij + c * c * sjj,
                                   c * s * (sii - sjj) + (c * c - s * s) * sij};
    };
    const auto e = energies(theta);
    const double scale = std::max({std::fabs(sii), std::fabs(sjj), std::fabs(sij)});
    CHECK(std::fabs(e[0] - e[1]) <= 1e-14 * scale);
    CHECK(std::fabs(e[0] - (sii + sjj) / 2) <= 1e-14 * scale);
    const double gap = grid_minimum([&](double t) { const auto v = energies(t); return std::fabs(v[0] - v[1]); },
                                    -pi / 4, pi / 4, 20001);
    CHECK(std::fabs(e[0] - e[1]) <= gap + 1e-14 * scale);
    // The residual cross moment is maximal, +-(1/2) sqrt((s_ii - s_jj)^2 + 4 s_ij^2) (pitfall 6.6).
    CHECK(std::fabs(std::fabs(e[2]) - 0.5 * std::hypot(sii - sjj, 2 * sij)) <= 1e-14 * scale);
  }
  CHECK(angles::equalize_second_moment(3, 1, 0) == doctest::Approx(pi / 4));  // zero cross term
  CHECK(angles::equalize_second_moment(2, 2, 0.7) == 0.0);                    // already equal
  CHECK(angles::equalize_second_moment(2, 2, -0.7) == 0.0);
  SQ_CHECK_ERROR_CONTAINS(angles::equalize_second_moment(1, NAN, 0), "angles::equalize_second_moment",
                          "non-finite");
}

TEST_CASE("angles::energy_to_target sets channel i's energy to mu with the smallest rotation") {
  std::vector<std::array<double, 4>> cases = {{4, 1, 0.5, 2}, {1, 4, -0.5, 3.9}, {3, 1, 0, 2}, {1, 3, 0, 1},
                                              {5, 0, 0, 0}, {5, 0, 0, 5}, {2, 2, 0.3, 2}, {9, 1, 3, 5},
                                              {1e300, 1e-300, 0, 5e299}, {1e-300, 4e-300, 1e-300, 3e-300}};
  std::mt19937_64 rng(4);
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> unit(0, 1);
  for (int k = 0; k < 40; ++k) {
    double sii = 0, sjj = 0, sij = 0;
    for (int t = 0; t < 10; ++t) {
      const double a = normal(rng) * 2, b = normal(rng) - 0.3 * a;
      sii += a * a;
      sjj += b * b;
      sij += a * b;
    }
    cases.push_back({sii, sjj, sij, sii + (sjj - sii) * unit(rng)});
  }
  for (const auto& moments : cases) {
    const double sii = moments[0], sjj = moments[1], sij = moments[2], mu = moments[3];
    const double theta = angles::energy_to_target(sii, sjj, sij, mu);
    CHECK(theta > -pi / 2);
    CHECK(theta <= pi / 2);
    const auto energy_i = [&](double t) {
      const double c = std::cos(t), s = std::sin(t);
      return c * c * sii - 2 * c * s * sij + s * s * sjj;
    };
    const double scale = std::max({std::fabs(sii), std::fabs(sjj), std::fabs(sij), std::fabs(mu)});
    CHECK(std::fabs(energy_i(theta) - mu) <= 1e-14 * scale);
    const double c = std::cos(theta), s = std::sin(theta);
    const double energy_j = s * s * sii + 2 * c * s * sij + c * c * sjj;
    CHECK(std::fabs(energy_j - (sii + sjj - mu)) <= 1e-14 * scale);  // trace preserved
    // Brute force: the root of smallest |theta| in (-pi/2, pi/2] (|tan| grows with |theta|).
    const int points = 40001;
    double smallest_root = pi / 2;
    for (int k = 0; k + 1 < points; ++k) {
      const double t0 = -pi / 2 + pi * k / (points - 1), t1 = -pi / 2 + pi * (k + 1) / (points - 1);
      const double f0 = energy_i(t0) - mu, f1 = energy_i(t1) - mu;
      if (f0 == 0 || (f0 < 0) != (f1 < 0)) smallest_root = std::min(smallest_root, std::min(std::fabs(t0), std::fabs(t1)));
    }
    CHECK(std::fabs(theta) <= smallest_root + pi / (points - 1) + 1e-12);
  }
  CHECK(angles::energy_to_target(4, 1, 0.5, 4) == 0.0);            // already at the target
  CHECK(angles::energy_to_target(5, 1, 0, 1) == doctest::Approx(pi / 2));  // only a swap reaches it
  SQ_CHECK_ERROR_CONTAINS(angles::energy_to_target(4, 1, 0.5, 5), "angles::energy_to_target", "mu = 5",
                          "s_ii = 4", "s_jj = 1");
  SQ_CHECK_ERROR_CONTAINS(angles::energy_to_target(4, 1, NAN, 2), "angles::energy_to_target", "non-finite");
}

TEST_CASE("angles::chain_angle maps e_{p0} to the flat vector of its block") {
  for (std::size_t b : {2u, 3u, 5u, 8u, 64u}) {
    const std::size_t dim = b + 3;
    std::vector<std::size_t> planes(dim);  // p_0 .. p_{b-1}: a shuffled subset of the channels
    for (std::size_t k = 0; k < dim; ++k) planes[k] = k;
    std::mt19937_64 rng(b);
    std::shuffle(planes.begin(), planes.end(), rng);
    sq::givens_sequence<double> chain(dim);
    for (std::size_t k = 0; k + 1 < b; ++k)
      chain.push_back(sq::givens<double>::from_angle(planes[k], planes[k + 1], angles::chain_angle(b, k)));
    const double magnitude = -3.5;  // the spike's sign is kept
    std::vector<double> x(dim, 0.0);
    x[planes[0]] = magnitude;
    chain.apply(x);
    for (std::size_t k = 0; k < dim; ++k) {
      const bool in_block = std::find(planes.begin(), planes.begin() + static_cast<std::ptrdiff_t>(b), k) !=
                            planes.begin() + static_cast<std::ptrdiff_t>(b);
      CHECK(std::fabs(x[k] - (in_block ? magnitude / std::sqrt(double(b)) : 0.0)) <= 1e-14);
    }
    CHECK(std::cos(angles::chain_angle(b, 0)) == doctest::Approx(1 / std::sqrt(double(b))));
    CHECK(angles::chain_angle(b, b - 2) == doctest::Approx(pi / 4));
  }
  SQ_CHECK_ERROR_CONTAINS(angles::chain_angle(1, 0), "angles::chain_angle", "b = 1");
  SQ_CHECK_ERROR_CONTAINS(angles::chain_angle(4, 3), "angles::chain_angle", "b = 4", "k = 3");
}
