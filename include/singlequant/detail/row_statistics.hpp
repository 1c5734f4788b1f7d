// singlequant/detail/row_statistics.hpp - per-row peak and energy of a contiguous double matrix.
#ifndef SINGLEQUANT_DETAIL_ROW_STATISTICS_HPP
#define SINGLEQUANT_DETAIL_ROW_STATISTICS_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "../config.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail {

/// mean over rows of max_k |y_k| / rms(y) (1 for all-zero rows); 0 for no rows.
inline double mean_max_over_rms(const double* y, std::size_t rows, std::size_t cols) noexcept {
  if (rows == 0 || cols == 0) return 0;
  double total = 0;
  for (std::size_t t = 0; t < rows; ++t) {
    double peak = 0, energy = 0;
    for (std::size_t k = 0; k < cols; ++k) {
      const double v = y[t * cols + k];
      peak = std::max(peak, std::fabs(v));
      energy += v * v;
    }
    total += energy > 0 ? peak / std::sqrt(energy / static_cast<double>(cols)) : 1.0;
  }
  return total / static_cast<double>(rows);
}

}  // namespace detail
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_ROW_STATISTICS_HPP
