// singlequant/detail/working_set.hpp - the calibration rows the ART/URT builders rotate as they go.
#ifndef SINGLEQUANT_DETAIL_WORKING_SET_HPP
#define SINGLEQUANT_DETAIL_WORKING_SET_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <memory>
#include <vector>

#include "../config.hpp"
#include "moment_kernels.hpp"
#include "pair_moments.hpp"
#include "row_statistics.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail {

/// A copy of the statistics' row sample (rows x n, double; built by make_working_set in stats.hpp),
/// rotated in place by every rotation a builder emits, so later steps see exactly the sums of the
/// rotated channels. Stored in panels of 8 columns (panel p holds columns 8p..8p+7 of every row,
/// row after row): the builders sweep columns over all rows, which then reads contiguous memory
/// (see moment_kernels.hpp column_offset).
/// With an active weight term the weight rows follow the token rows (rows token_rows() .. rows()),
/// each scaled to unit norm and then by omega_i^(1/4) (stats.hpp weight_term_options), so every sum
/// over the rows is the joint objective's sum.
class working_set {
 public:
  /// From rows x n row-major doubles (already selected, rotated and weighted; see
  /// make_working_set); rows token_rows .. row_count are weight rows.
  working_set(const std::vector<double>& rows, std::size_t row_count, std::size_t n,
              std::size_t token_rows)
      : working_set(row_count, n, token_rows) {
    for (std::size_t t = 0; t < rows_; ++t) set_row(t, rows.data() + t * n_);
  }
  /// Storage for row_count x n, left unwritten (no zero-fill of memory set_row overwrites): every
  /// row must be set before use.
  working_set(std::size_t row_count, std::size_t n, std::size_t token_rows)
      : rows_(row_count), n_(n), token_rows_(token_rows), size_((n_ + 7) / 8 * 8 * rows_),
        y_(new double[size_]) {}

  /// Row t <- row[0 .. n) (the padding columns of the last panel <- 0).
  void set_row(std::size_t t, const double* row) noexcept {
    const std::size_t stride = panel_stride();
    double* out = y_.get() + t * 8;
    std::size_t k = 0;
    for (; k + 8 <= n_; k += 8, out += stride)
      for (std::size_t c = 0; c < 8; ++c) out[c] = row[k + c];
    if (k < n_)
      for (std::size_t c = 0; c < 8; ++c) out[c] = k + c < n_ ? row[k + c] : 0.0;
  }

  /// Rows 0 .. token_rows() are tokens, the rest weight rows.
  [[nodiscard]] std::size_t token_rows() const noexcept { return token_rows_; }
  [[nodiscard]] std::size_t rows() const noexcept { return rows_; }
  [[nodiscard]] std::size_t dim() const noexcept { return n_; }
  /// Storage for the kernels: element (t, k) at data()[t * row_stride() + column_offset(k, panel_stride())].
  [[nodiscard]] const double* data() const noexcept { return y_.get(); }
  [[nodiscard]] static constexpr std::size_t row_stride() noexcept { return 8; }
  [[nodiscard]] std::size_t panel_stride() const noexcept { return rows_ * 8; }

  /// Columns (i, j) <- (c y_i - s y_j, s y_i + c y_j): x <- x G(i, j) on every row.
  void rotate(std::size_t i, std::size_t j, double c, double s) noexcept {
    double* yi = y_.get() + column_offset(i, panel_stride());
    double* yj = y_.get() + column_offset(j, panel_stride());
    for (std::size_t t = 0; t < rows_; ++t) {
      const double a = yi[t * 8], b = yj[t * 8];
      yi[t * 8] = c * a - s * b;
      yj[t * 8] = s * a + c * b;
    }
  }

  /// The five fourth-order sums of (a, b) = (y_i, y_j) over the rows.
  [[nodiscard]] angles::pair_fourth_moments pair_moments(std::size_t i, std::size_t j) const noexcept {
    // Column i of the panel-major rows: element t at t * 8 + column_offset(i).
    const std::size_t stride = panel_stride();
    return angles::detail::accumulate_strided(y_.get() + column_offset(i, stride),
                                              y_.get() + column_offset(j, stride), rows_, 8);
  }
  /// sum_t y_ti y_tj.
  [[nodiscard]] double cross_second(std::size_t i, std::size_t j) const noexcept {
    double s = 0;
    for (std::size_t t = 0; t < rows_; ++t) s += value(t, i) * value(t, j);
    return s;
  }
  /// sum_t y_ti^4.
  [[nodiscard]] double fourth(std::size_t i) const noexcept {
    double s = 0;
    for (std::size_t t = 0; t < rows_; ++t) {
      const double a2 = value(t, i) * value(t, i);
      s += a2 * a2;
    }
    return s;
  }
  /// max_t |y_ti| over the token rows and the first row reaching it.
  [[nodiscard]] double absmax(std::size_t i, std::size_t* where = nullptr) const noexcept {
    return absmax_in(i, 0, token_rows_, where);
  }
  /// max |y_ti| over the weight rows (0 without them).
  [[nodiscard]] double weight_absmax(std::size_t i) const noexcept {
    return absmax_in(i, token_rows_, rows_, nullptr);
  }
  [[nodiscard]] bool has_weight_rows() const noexcept { return rows_ > token_rows_; }
  /// token[k] = absmax(k) and, with weight rows, weight[k] = weight_absmax(k) for every column, in
  /// one sweep of the panels (the same comparisons per column, so the same values).
  void column_absmax(std::vector<double>& token, std::vector<double>& weight) const {
    token.assign(n_, 0.0);
    if (has_weight_rows()) weight.assign(n_, 0.0);
    for (std::size_t k0 = 0; k0 < n_; k0 += 8) {
      const double* panel = y_.get() + column_offset(k0, panel_stride());
      const std::size_t width = std::min<std::size_t>(8, n_ - k0);
      const auto sweep = [&](std::size_t first, std::size_t last, double* out) {
        double peak[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
        for (std::size_t t = first; t < last; ++t)
          for (std::size_t c = 0; c < 8; ++c) peak[c] = std::max(peak[c], std::fabs(panel[t * 8 + c]));
        for (std::size_t c = 0; c < width; ++c) out[k0 + c] = std::max(peak[c], 0.0);
      };
      sweep(0, token_rows_, token.data());
      if (has_weight_rows()) sweep(token_rows_, rows_, weight.data());
    }
  }
  /// max |y_ti| over rows first .. last and the first row reaching it.
  [[nodiscard]] double absmax_in(std::size_t i, std::size_t first, std::size_t last,
                                 std::size_t* where) const noexcept {
    double peak = -1;
    std::size_t row = first;
    for (std::size_t t = first; t < last; ++t) {
      const double a = std::fabs(value(t, i));
      if (a > peak) {
        peak = a;
        row = t;
      }
    }
    if (where != nullptr) *where = row;
    return std::max(peak, 0.0);
  }
  [[nodiscard]] double value(std::size_t t, std::size_t i) const noexcept {
    return y_[t * 8 + column_offset(i, panel_stride())];
  }

  /// (sum_t sum_k y_tk^4)^(1/4) (padding columns are zero).
  [[nodiscard]] double l4() const noexcept {
    double s = 0;
    for (std::size_t e = 0; e < size_; ++e) s += (y_[e] * y_[e]) * (y_[e] * y_[e]);
    return std::sqrt(std::sqrt(s));
  }
  /// mean over the token rows of max_k |y_tk| / rms(y_t).
  /// As mean_max_over_rms on the row-major token rows (the same operations in the same order per
  /// row), swept panel by panel: no row-major copy (226 MB for 2048 tokens of 13824).
  [[nodiscard]] double max_over_rms() const {
    if (token_rows_ == 0 || n_ == 0) return 0;
    std::vector<double> peak(token_rows_, 0.0), energy(token_rows_, 0.0);
    for (std::size_t k0 = 0; k0 < n_; k0 += 8) {
      const double* panel = y_.get() + column_offset(k0, panel_stride());
      const std::size_t width = std::min<std::size_t>(8, n_ - k0);
      for (std::size_t t = 0; t < token_rows_; ++t)
        for (std::size_t c = 0; c < width; ++c) {
          const double v = panel[t * 8 + c];
          peak[t] = std::max(peak[t], std::fabs(v));
          energy[t] += v * v;
        }
    }
    double total = 0;
    for (std::size_t t = 0; t < token_rows_; ++t)
      total += energy[t] > 0 ? peak[t] / std::sqrt(energy[t] / static_cast<double>(n_)) : 1.0;
    return total / static_cast<double>(token_rows_);
  }

 private:
  std::size_t rows_, n_, token_rows_ = 0, size_;
  std::unique_ptr<double[]> y_;
};

/// Median of a copy of v (the lower middle for even sizes, deterministic).
inline double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  const auto middle = v.begin() + static_cast<std::ptrdiff_t>((v.size() - 1) / 2);
  std::nth_element(v.begin(), middle, v.end());
  return *middle;
}

}  // namespace detail
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_WORKING_SET_HPP
