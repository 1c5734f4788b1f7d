// singlequant/detail/pair_moments.hpp - the fourth-order sums of a channel pair (the one statistic
// the l4 angle rule needs), below angles.hpp so the builders' working set can produce them.
#ifndef SINGLEQUANT_DETAIL_PAIR_MOMENTS_HPP
#define SINGLEQUANT_DETAIL_PAIR_MOMENTS_HPP

#include <complex>
#include <cstddef>

#include "../config.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace angles {

/// The five fourth-order sums of a channel pair over tokens t, with a = x_ti, b = x_tj:
/// s40 = sum a^4, s31 = sum a^3 b, s22 = sum a^2 b^2, s13 = sum a b^3, s04 = sum b^4.
struct pair_fourth_moments {
  double s40 = 0, s31 = 0, s22 = 0, s13 = 0, s04 = 0;

  /// Z4 = sum_t (a + i b)^4 = (s40 - 6 s22 + s04) + i (4 s31 - 4 s13).
  [[nodiscard]] std::complex<double> z4() const noexcept {
    return {s40 - 6 * s22 + s04, 4 * (s31 - s13)};
  }
  /// The pair's current l4 objective: sum_t a^4 + b^4 = s40 + s04.
  [[nodiscard]] double l4() const noexcept { return s40 + s04; }
  /// Adds another batch of tokens (the sums are additive).
  pair_fourth_moments& operator+=(const pair_fourth_moments& other) noexcept {
    s40 += other.s40;
    s31 += other.s31;
    s22 += other.s22;
    s13 += other.s13;
    s04 += other.s04;
    return *this;
  }
  friend bool operator==(const pair_fourth_moments&, const pair_fourth_moments&) = default;
};

namespace detail {
template <class T>
pair_fourth_moments accumulate_strided(const T* a, const T* b, std::size_t count,
                                       std::size_t stride) noexcept {
  pair_fourth_moments m;
  for (std::size_t t = 0; t < count; ++t) {
    const double x = a[t * stride], y = b[t * stride];
    const double xx = x * x, yy = y * y, xy = x * y;  // symmetric in (x, y): a = b gives s31 == s13
    m.s40 += xx * xx;
    m.s31 += xx * xy;
    m.s22 += xx * yy;
    m.s13 += yy * xy;
    m.s04 += yy * yy;
  }
  return m;
}
}  // namespace detail

}  // namespace angles
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_PAIR_MOMENTS_HPP
