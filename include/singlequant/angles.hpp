// singlequant/angles.hpp - closed-form Givens angles from pair statistics
// (docs/method.md section 3).
//
// Every function returns theta for the rotation convention of givens.hpp (row vector, counter-
// clockwise): x_i' = c x_i - s x_j, x_j' = s x_i + c x_j, i.e. z = x_i + i x_j becomes e^{i theta} z.
// Inputs are statistics in double; NaN or Inf input is an error naming the function. Each angle
// is reduced to a documented canonical range, so equal statistics give bit-identical angles.
// Degenerate inputs (every angle optimal) give theta = 0, the identity.
#ifndef SINGLEQUANT_ANGLES_HPP
#define SINGLEQUANT_ANGLES_HPP

#include <cmath>
#include <complex>
#include <cstddef>
#include <initializer_list>
#include <numbers>

#include "config.hpp"
#include "detail/pair_moments.hpp"
#include "view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace angles {

namespace detail {
// remainder() is exact, so these reductions are deterministic; the half-open ends make the
// representative unique.
/// theta reduced to (-pi/4, pi/4] (angles defined modulo pi/2).
[[nodiscard]] inline double reduce_quarter_turn(double theta) noexcept {
  constexpr double period = std::numbers::pi / 2;
  double r = std::remainder(theta, period);
  if (r <= -period / 2) r += period;
  return r;
}
/// theta reduced to (-pi/2, pi/2] (angles defined modulo pi).
[[nodiscard]] inline double reduce_half_turn(double theta) noexcept {
  constexpr double period = std::numbers::pi;
  double r = std::remainder(theta, period);
  if (r <= -period / 2) r += period;
  return r;
}
/// theta reduced to (-pi, pi].
[[nodiscard]] inline double reduce_full_turn(double theta) noexcept {
  constexpr double period = 2 * std::numbers::pi;
  double r = std::remainder(theta, period);
  if (r <= -period / 2) r += period;
  return r;
}
[[nodiscard]] inline bool all_finite(std::initializer_list<double> values) noexcept {
  for (double v : values)
    if (!std::isfinite(v)) return false;
  return true;
}
}  // namespace detail

/// Classic Givens: the angle that zeroes x_j of the pair (x_i, x_j) = (a, b) and leaves
/// x_i' = +sqrt(a^2 + b^2): theta = -atan2(b, a), in (-pi, pi]; 0 when a = b = 0.
[[nodiscard]] inline double zero_entry(double a, double b) {
  singlequant::detail::check(detail::all_finite({a, b}), "angles::zero_entry", "non-finite input a = ", a,
                             ", b = ", b);
  if (a == 0 && b == 0) return 0.0;
  return detail::reduce_full_turn(-std::atan2(b, a));
}

/// L-infinity alignment of one pair (a, b) (docs/method.md section 3.2): max(|x_i'|, |x_j'|) is
/// minimal, sqrt(a^2 + b^2) / sqrt(2), when the point lies on a diagonal:
/// theta = pi/4 - atan2(b, a), modulo pi/2, reduced to (-pi/4, pi/4]; 0 when a = b = 0.
[[nodiscard]] inline double align_linf(double a, double b) {
  singlequant::detail::check(detail::all_finite({a, b}), "angles::align_linf", "non-finite input a = ", a,
                             ", b = ", b);
  if (a == 0 && b == 0) return 0.0;
  return detail::reduce_quarter_turn(std::numbers::pi / 4 - std::atan2(b, a));
}

/// The fourth-order sums of the token columns a (channel i) and b (channel j), accumulated in
/// double. Sizes must match.
[[nodiscard]] inline pair_fourth_moments accumulate_pair_moments(vector_view<const float> a,
                                                                 vector_view<const float> b) {
  singlequant::detail::check(a.size() == b.size(), "angles::accumulate_pair_moments", "sizes differ: ",
                             a.size(), " vs ", b.size());
  return detail::accumulate_strided(a.data(), b.data(), a.size(), 1);
}
[[nodiscard]] inline pair_fourth_moments accumulate_pair_moments(vector_view<const double> a,
                                                                 vector_view<const double> b) {
  singlequant::detail::check(a.size() == b.size(), "angles::accumulate_pair_moments", "sizes differ: ",
                             a.size(), " vs ", b.size());
  return detail::accumulate_strided(a.data(), b.data(), a.size(), 1);
}
/// The fourth-order sums of columns i and j of x (tokens x channels).
[[nodiscard]] inline pair_fourth_moments accumulate_pair_moments(matrix_view<const float> x, std::size_t i,
                                                                 std::size_t j) {
  singlequant::detail::check(i < x.cols() && j < x.cols(), "angles::accumulate_pair_moments", "channels (",
                             i, ", ", j, ") outside ", x.cols(), " columns");
  if (x.rows() == 0) return {};
  return detail::accumulate_strided(x.data() + i, x.data() + j, x.rows(), x.row_stride());
}
[[nodiscard]] inline pair_fourth_moments accumulate_pair_moments(matrix_view<const double> x, std::size_t i,
                                                                 std::size_t j) {
  singlequant::detail::check(i < x.cols() && j < x.cols(), "angles::accumulate_pair_moments", "channels (",
                             i, ", ", j, ") outside ", x.cols(), " columns");
  if (x.rows() == 0) return {};
  return detail::accumulate_strided(x.data() + i, x.data() + j, x.rows(), x.row_stride());
}

/// The pair's l4 objective after rotating by theta, in closed form (docs/method.md section 3.3):
/// sum_t x_ti'^4 + x_tj'^4 = (3/4) (s40 + 2 s22 + s04) + (1/4) Re(e^{4 i theta} Z4).
[[nodiscard]] inline double l4_at(const pair_fourth_moments& m, double theta) {
  singlequant::detail::check(detail::all_finite({m.s40, m.s31, m.s22, m.s13, m.s04, theta}), "angles::l4_at",
                             "non-finite moments or angle ", theta);
  const std::complex<double> z = m.z4();
  return 0.75 * (m.s40 + 2 * m.s22 + m.s04) +
         0.25 * (std::cos(4 * theta) * z.real() - std::sin(4 * theta) * z.imag());
}

/// An l4 coordinate-descent step: the angle and the l4 decrease it achieves (>= 0).
struct l4_step {
  double theta = 0;     ///< radians, in (-pi/4, pi/4]
  double decrease = 0;  ///< sum over both channels of x^4, before minus after
};

/// The multi-token l4 optimum of a pair (docs/method.md section 3.3): theta = (pi - arg Z4) / 4
/// modulo pi/2, reduced to (-pi/4, pi/4]; decrease = (1/4)(Re Z4 + |Z4|), the score for ranking
/// candidate pairs.
/// The l4 never increases. Z4 = 0 (every angle equal) gives theta = 0, decrease = 0.
[[nodiscard]] inline l4_step l4_optimal(const pair_fourth_moments& m) {
  singlequant::detail::check(detail::all_finite({m.s40, m.s31, m.s22, m.s13, m.s04}), "angles::l4_optimal",
                             "non-finite moments s40 = ", m.s40, ", s31 = ", m.s31, ", s22 = ", m.s22,
                             ", s13 = ", m.s13, ", s04 = ", m.s04);
  // Scaled by the largest sum so that Re Z4 and |Z4| cannot overflow (the angle is scale-free).
  const double scale = std::fmax(std::fmax(std::fmax(std::fabs(m.s40), std::fabs(m.s31)),
                                           std::fmax(std::fabs(m.s22), std::fabs(m.s13))),
                                 std::fabs(m.s04));
  if (scale == 0) return {};
  const double re = m.s40 / scale - 6 * (m.s22 / scale) + m.s04 / scale;
  const double im = 4 * (m.s31 / scale - m.s13 / scale);
  const double magnitude = std::hypot(re, im);
  if (magnitude == 0) return {};
  return {detail::reduce_quarter_turn((std::numbers::pi - std::atan2(im, re)) / 4),
          0.25 * (re + magnitude) * scale};
}

/// Second-moment equalisation (docs/method.md section 3.4): the rotated energies
/// E[x_i'^2] - E[x_j'^2] = cos 2theta (s_ii - s_jj) - 2 sin 2theta s_ij vanish at
/// tan 2theta = (s_ii - s_jj) / (2 s_ij): theta = atan2(s_ii - s_jj, 2 s_ij) / 2 modulo pi/2, in
/// (-pi/4, pi/4]; both energies become (s_ii + s_jj) / 2. (Not the decorrelating Jacobi angle.)
/// 0 when already equal and uncorrelated.
[[nodiscard]] inline double equalize_second_moment(double s_ii, double s_jj, double s_ij) {
  singlequant::detail::check(detail::all_finite({s_ii, s_jj, s_ij}), "angles::equalize_second_moment",
                             "non-finite statistics s_ii = ", s_ii, ", s_jj = ", s_jj, ", s_ij = ", s_ij);
  const double scale = std::fmax(std::fmax(std::fabs(s_ii), std::fabs(s_jj)), std::fabs(s_ij));
  if (scale == 0) return 0.0;
  const double difference = s_ii / scale - s_jj / scale, cross = 2 * (s_ij / scale);
  if (difference == 0 && cross == 0) return 0.0;
  return detail::reduce_quarter_turn(0.5 * std::atan2(difference, cross));
}

/// Sets channel i's rotated energy to mu (docs/method.md section 3.5, the Davies-Higham step):
/// c^2 s_ii - 2 c s s_ij + s^2 s_jj = mu, i.e. with t = tan theta,
/// (s_jj - mu) t^2 - 2 s_ij t + (s_ii - mu) = 0; the root of smaller |t| (stable form
/// t = (s_ii - mu) / (s_ij + sign(s_ij) sqrt(s_ij^2 - (s_jj - mu)(s_ii - mu)))), as theta in
/// (-pi/2, pi/2]. Channel j becomes s_ii + s_jj - mu. Precondition: mu between s_ii and s_jj
/// (inclusive), which makes the root real.
[[nodiscard]] inline double energy_to_target(double s_ii, double s_jj, double s_ij, double mu) {
  singlequant::detail::check(detail::all_finite({s_ii, s_jj, s_ij, mu}), "angles::energy_to_target",
                             "non-finite statistics s_ii = ", s_ii, ", s_jj = ", s_jj, ", s_ij = ", s_ij,
                             ", mu = ", mu);
  singlequant::detail::check(std::fmin(s_ii, s_jj) <= mu && mu <= std::fmax(s_ii, s_jj),
                             "angles::energy_to_target", "target mu = ", mu, " is not between s_ii = ",
                             s_ii, " and s_jj = ", s_jj);
  const double scale =
      std::fmax(std::fmax(std::fabs(s_ii), std::fabs(s_jj)), std::fmax(std::fabs(s_ij), std::fabs(mu)));
  if (scale == 0) return 0.0;
  const double a = s_jj / scale - mu / scale, c = s_ii / scale - mu / scale, b = s_ij / scale;
  const double discriminant = std::fmax(b * b - a * c, 0.0);  // >= 0 since a c <= 0
  const double q = b + std::copysign(std::sqrt(discriminant), b);
  // t = c / q; atan2 also covers q = 0 (then theta = pi/2: the channels swap).
  return detail::reduce_half_turn(std::atan2(c, q));
}

/// The predetermined uniformising chain (docs/method.md section 3.6, DuQuant lineage): rotating the
/// planes (p_0, p_1), (p_1, p_2), ..., (p_{b-2}, p_{b-1}) of a block of size b in that order, each
/// with i = p_k (the carrier) and j = p_{k+1}, by theta_k with cos theta_k = 1 / sqrt(b - k), maps
/// e_{p_0} to the flat vector (1/sqrt(b)) (1, ..., 1) on the block. theta_k = atan(sqrt(b - k - 1)),
/// in [pi/4, pi/2); k = 0 .. b-2 (the last one is pi/4). Requires b >= 2.
[[nodiscard]] inline double chain_angle(std::size_t b, std::size_t k) {
  singlequant::detail::check(b >= 2 && k + 2 <= b, "angles::chain_angle", "a chain on a block of size b = ",
                             b, " has steps k = 0 .. b - 2; got k = ", k);
  return std::atan(std::sqrt(static_cast<double>(b - k - 1)));
}

}  // namespace angles
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_ANGLES_HPP
