// singlequant/detail/working_set.hpp - the calibration rows the ART/URT builders rotate as they go.
#ifndef SINGLEQUANT_DETAIL_WORKING_SET_HPP
#define SINGLEQUANT_DETAIL_WORKING_SET_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "../angles.hpp"
#include "../givens.hpp"
#include "../stats.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail {

/// A copy of the statistics' row sample (rows x n, row-major, double), rotated in place by every
/// rotation a builder emits, so later steps see exactly the sums of the rotated channels.
class working_set {
 public:
  working_set(const activation_stats& stats, const givens_sequence<double>* already_applied,
              token_weighting weighting)
      : rows_(stats.sample().rows()), n_(stats.dim()) {
    const auto sample = stats.sample();
    y_.assign(sample.data(), sample.data() + rows_ * n_);
    if (already_applied != nullptr && already_applied->rotation_count() > 0)
      already_applied->apply_rows(matrix_view<double>(y_.data(), rows_, n_));
    if (weighting == token_weighting::unit_norm) {
      for (std::size_t t = 0; t < rows_; ++t) {
        double* r = y_.data() + t * n_;
        double energy = 0;
        for (std::size_t k = 0; k < n_; ++k) energy += r[k] * r[k];
        if (energy == 0) continue;
        const double inverse = 1.0 / std::sqrt(energy);
        for (std::size_t k = 0; k < n_; ++k) r[k] *= inverse;
      }
    }
  }

  [[nodiscard]] std::size_t rows() const noexcept { return rows_; }
  [[nodiscard]] std::size_t dim() const noexcept { return n_; }
  [[nodiscard]] const double* data() const noexcept { return y_.data(); }

  /// Columns (i, j) <- (c y_i - s y_j, s y_i + c y_j): x <- x G(i, j) on every row.
  void rotate(const givens<double>& g) noexcept {
    for (std::size_t t = 0; t < rows_; ++t) {
      double* r = y_.data() + t * n_;
      const double a = r[g.i], b = r[g.j];
      r[g.i] = g.c * a - g.s * b;
      r[g.j] = g.s * a + g.c * b;
    }
  }

  /// The five fourth-order sums of (a, b) = (y_i, y_j) over the rows.
  [[nodiscard]] angles::pair_fourth_moments pair_moments(std::size_t i, std::size_t j) const noexcept {
    angles::pair_fourth_moments m;
    for (std::size_t t = 0; t < rows_; ++t) {
      const double a = y_[t * n_ + i], b = y_[t * n_ + j];
      const double a2 = a * a, b2 = b * b;
      m.s40 += a2 * a2;
      m.s31 += a2 * a * b;
      m.s22 += a2 * b2;
      m.s13 += a * b2 * b;
      m.s04 += b2 * b2;
    }
    return m;
  }
  /// sum_t y_ti y_tj.
  [[nodiscard]] double cross_second(std::size_t i, std::size_t j) const noexcept {
    double s = 0;
    for (std::size_t t = 0; t < rows_; ++t) s += y_[t * n_ + i] * y_[t * n_ + j];
    return s;
  }
  /// sum_t y_ti^4.
  [[nodiscard]] double fourth(std::size_t i) const noexcept {
    double s = 0;
    for (std::size_t t = 0; t < rows_; ++t) {
      const double a2 = y_[t * n_ + i] * y_[t * n_ + i];
      s += a2 * a2;
    }
    return s;
  }
  /// max_t |y_ti| and the first row reaching it.
  [[nodiscard]] double absmax(std::size_t i, std::size_t* at = nullptr) const noexcept {
    double peak = -1;
    std::size_t where = 0;
    for (std::size_t t = 0; t < rows_; ++t) {
      const double a = std::fabs(y_[t * n_ + i]);
      if (a > peak) {
        peak = a;
        where = t;
      }
    }
    if (at != nullptr) *at = where;
    return std::max(peak, 0.0);
  }
  [[nodiscard]] double value(std::size_t t, std::size_t i) const noexcept { return y_[t * n_ + i]; }

  /// (sum_t sum_k y_tk^4)^(1/4).
  [[nodiscard]] double l4() const noexcept {
    double s = 0;
    for (const double v : y_) s += (v * v) * (v * v);
    return std::sqrt(std::sqrt(s));
  }
  [[nodiscard]] double max_over_rms() const noexcept { return mean_max_over_rms(y_.data(), rows_, n_); }

 private:
  std::size_t rows_, n_;
  std::vector<double> y_;
};

/// Median of a copy of v (the lower middle for even sizes, deterministic).
inline double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  const auto middle = v.begin() + static_cast<std::ptrdiff_t>((v.size() - 1) / 2);
  std::nth_element(v.begin(), middle, v.end());
  return *middle;
}

inline void report_before(rotation_report& report, const working_set& ws) {
  report.l4_before = ws.l4();
  report.max_over_rms_before = ws.max_over_rms();
}
inline void report_after(rotation_report& report, const working_set& ws) {
  report.l4_after = ws.l4();
  report.max_over_rms_after = ws.max_over_rms();
}

}  // namespace detail
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_WORKING_SET_HPP
