// singlequant/stats.hpp - streaming calibration statistics of one transform site.
//
// activation_stats accumulates batches of activation rows (tokens x channels), in double, in the
// basis where the Givens rotations will act (after the Hadamard; transform.hpp's calibrator does
// that change of basis for you). It keeps
//   * per channel, over every token: absmax, sum x^2, sum x^4;
//   * a bounded row sample (every row while tokens <= the sample capacity, else a uniform reservoir
//     drawn with a seeded generator): the ART/URT builders work on it, because a sequence of
//     rotations needs sums of rotated channels, which no fixed set of pair sums provides (rotating
//     x_p mixes it with x_q, and sum_t (c x_p - s x_q)^2 x_k^2 needs the three-channel sum
//     sum_t x_p x_q x_k^2);
//   * optionally the dense all-pairs sums over every token (n x n each): C22[i][j] = sum x_i^2 x_j^2,
//     C31[i][j] = sum x_i^3 x_j and S[i][j] = sum x_i x_j, computed as matrix products of the
//     batch's powers (X2^T X2, X3^T X, X^T X). They answer pair queries over every token and give
//     the greedy URT its starting gains without a pass over the sample;
//   * optionally a reservoir of the top tokens by max |x| (diagnostics, docs/method.md section 4).
// hessian_stats, its sibling, keeps the full n x n second-moment matrix X^T X for GPTQ.
// Accumulators fed disjoint batches merge into the accumulator fed both (within rounding; the row
// sample is exact while it holds every row), so engines can collect on several threads.
#ifndef SINGLEQUANT_STATS_HPP
#define SINGLEQUANT_STATS_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "angles.hpp"
#include "config.hpp"
#include "detail/dense_kernels.hpp"
#include "detail/moment_kernels.hpp"
#include "detail/parallel.hpp"
#include "detail/random.hpp"
#include "detail/row_statistics.hpp"
#include "detail/working_set.hpp"
#include "givens.hpp"
#include "simd.hpp"
#include "view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// Which all-pairs sums activation_stats keeps.
enum class cross_moments {
  automatic,  ///< dense when dim() <= stats_options::dense_max_width, else sampled
  dense,      ///< n x n C22, C31 and S over every token (3 n^2 doubles, O(n^2) work per token)
  sampled,    ///< pair sums computed on demand from the row sample (memory O(sample rows x n))
};

/// Options of activation_stats. Defaults keep a 14336-wide site under ~260 MiB.
struct stats_options {
  cross_moments cross = cross_moments::automatic;
  std::size_t dense_max_width = 1024;  ///< automatic: dense up to this width
  /// Row sample capacity: min(max_sample_rows, max_sample_bytes / (8 n)) rows (0 rows: no sample;
  /// the builders then refuse the statistics).
  std::size_t max_sample_rows = 4096;
  std::size_t max_sample_bytes = std::size_t(256) << 20;
  std::size_t outlier_tokens = 0;  ///< rows of the top tokens by max |x| kept for diagnostics
  std::uint64_t seed = 0;          ///< reservoir sampling generator (used once tokens > capacity)
};

/// How the builders weight the calibration tokens in their objectives (sums over tokens).
enum class token_weighting {
  /// Every token scaled to unit l2 norm first (default). Per-token quantisers are scale-invariant,
  /// and rotations keep each token's norm, so the closed forms stay exact on the scaled rows; without
  /// it a few massive tokens dominate every fourth-order sum.
  unit_norm,
  raw,  ///< the sums of the activations as they are
};

/// How the sampled weight rows of a site count in the joint objective (weight_term_options).
enum class weight_row_weighting {
  unit,    ///< every row scaled to unit l2 norm, weight lambda M / N each (default)
  energy,  ///< unit rows weighted by their energy share: lambda M ||w_i||^2 / sum_r ||w_r||^2
};

/// The weight side of the joint objective (docs/method.md section 11). A rotation R is shared by a
/// site's activations (x R) and its weights (W R), and both are quantised; with unit-norm tokens
/// and rows the first-order W4A4 output error is (mean token peakiness) + (mean weight-row
/// peakiness), and l4 is the smooth proxy of the peak, so the builders minimise
///   sum_t sum_k y_tk^4  +  sum_i omega_i sum_k w_ik^4
/// over the token rows y_t (as token_weighting says) and the normalised weight rows w_i in the
/// rotation basis, with sum_i omega_i = lambda M, M = sum_t ||y_t||^4 (M = T for unit-norm tokens).
/// lambda = 0 (or no weight rows) is the activation-only objective, bit for bit.
struct weight_term_options {
  double lambda = 1.0;  ///< weight of the weight side (finite, >= 0)
  weight_row_weighting weighting = weight_row_weighting::unit;
  /// Weight rows sampled (evenly strided over the concatenated matrices; 0: all). The rows join the
  /// builders' working set, whose cost is O(rows x n) per rotation.
  std::size_t max_rows = 1024;
};

namespace detail {

/// Rows x cols, row-major, contiguous double matrix (owning).
struct dense_rows {
  std::size_t rows = 0, cols = 0;
  std::vector<double> values;
  double* row(std::size_t t) noexcept { return values.data() + t * cols; }
  const double* row(std::size_t t) const noexcept { return values.data() + t * cols; }
};

}  // namespace detail

/// Streaming statistics of a site's activations (see the file comment). Not thread-safe: give each
/// thread its own accumulator and merge() them.
class activation_stats {
 public:
  /// Statistics of n-channel activations (n >= 1).
  explicit activation_stats(std::size_t n, stats_options options = {})
      : n_(n), options_(options) {
    detail::check(n >= 1 && n <= max_site_width, "activation_stats", "dimension ", n, " is not in [1, ",
                  max_site_width, "] (max_site_width)");
    detail::check_enum("activation_stats", "stats_options::cross", options.cross, cross_moments::sampled);
    std::size_t n_squared = 0;
    detail::check(!detail::multiply_overflows(n, n, n_squared), "activation_stats",
                  "dimension ", n, " too large");
    dense_ = options.cross == cross_moments::dense ||
             (options.cross == cross_moments::automatic && n <= options.dense_max_width);
    const std::size_t by_bytes = options.max_sample_bytes / (sizeof(double) * n);
    sample_capacity_ = std::min(options.max_sample_rows, by_bytes);
    absmax_ = detail::checked_vector<double>("activation_stats", "per-channel maxima", n);
    sum2_ = detail::checked_vector<double>("activation_stats", "second moments", n);
    sum4_ = detail::checked_vector<double>("activation_stats", "fourth moments", n);
    if (dense_) {
      detail::check_allocation("activation_stats", "dense cross moments", n_squared, 4 * sizeof(double));
      c22_ = detail::checked_vector<double>("activation_stats", "cross moments", n_squared);
      c31_ = detail::checked_vector<double>("activation_stats", "cross moments", n_squared);
      c13_ = detail::checked_vector<double>("activation_stats", "cross moments", n_squared);
      c11_ = detail::checked_vector<double>("activation_stats", "cross moments", n_squared);
    }
    sample_.cols = n;
    outliers_.cols = n;
    rng_.state = options.seed;
  }

  /// Adds a batch of rows (tokens x dim(), float or double). Every element must be finite: a NaN or
  /// Inf is reported with its position and the statistics are left unchanged.
  template <class T>
    requires float_or_double<T>
  void accumulate(matrix_view<const T> rows) {
    detail::check(rows.cols() == n_, "activation_stats::accumulate", "rows have ", rows.cols(),
                  " channels, the statistics ", n_);
    // Validate everything before touching any state (nothing half-accumulated on error).
    for (std::size_t t = 0; t < rows.rows(); ++t) {
      const T* r = rows.row(t).data();
      for (std::size_t k = 0; k < n_; ++k)
        detail::check(std::isfinite(static_cast<double>(r[k])), "activation_stats::accumulate",
                      "non-finite value at row ", t, ", channel ", k);
    }
    constexpr std::size_t chunk_rows = 64;
    std::vector<double> chunk(std::min(chunk_rows, rows.rows()) * n_);
    std::size_t bad_row = 0, bad_col = 0;
    for (std::size_t r0 = 0; r0 < rows.rows(); r0 += chunk_rows) {
      const std::size_t count = std::min(chunk_rows, rows.rows() - r0);
      detail::copy_finite_rows(rows, r0, count, chunk.data(), bad_row, bad_col);
      add_chunk(chunk.data(), count);
    }
  }
  template <class T>
    requires float_or_double<T>
  void accumulate(matrix_view<T> rows) {
    accumulate(matrix_view<const T>(rows));
  }

  /// Adds the statistics of `other` (same dimension and options) as if its rows had been fed here
  /// after ours. Exact for every per-channel and dense sum (to rounding) and for the row sample while
  /// the two together hold at most the sample capacity; beyond it the merged sample is a uniform draw
  /// (seeded by this accumulator's generator) from the two samples, weighted by their token counts.
  void merge(const activation_stats& other) {
    detail::check(other.n_ == n_, "activation_stats::merge", "dimensions differ: ", n_, " vs ",
                  other.n_);
    detail::check(other.dense_ == dense_ && other.sample_capacity_ == sample_capacity_ &&
                      other.options_.outlier_tokens == options_.outlier_tokens,
                  "activation_stats::merge", "options differ (dense sums, sample capacity ",
                  sample_capacity_, " vs ", other.sample_capacity_, ", outlier tokens ",
                  options_.outlier_tokens, " vs ", other.options_.outlier_tokens, ")");
    if (&other == this) {
      const activation_stats copy = other;
      merge(copy);
      return;
    }
    for (std::size_t k = 0; k < n_; ++k) {
      absmax_[k] = std::max(absmax_[k], other.absmax_[k]);
      sum2_[k] += other.sum2_[k];
      sum4_[k] += other.sum4_[k];
    }
    if (dense_) {
      for (std::size_t e = 0; e < c22_.size(); ++e) {
        c22_[e] += other.c22_[e];
        c31_[e] += other.c31_[e];
        c13_[e] += other.c13_[e];
        c11_[e] += other.c11_[e];
      }
    }
    merge_sample(other);
    for (std::size_t r = 0; r < other.outliers_.rows; ++r)
      offer_outlier(other.outliers_.row(r), other.outlier_peaks_[r]);
    tokens_ += other.tokens_;
  }

  /// Number of channels.
  [[nodiscard]] std::size_t dim() const noexcept { return n_; }
  /// Tokens (rows) accumulated.
  [[nodiscard]] std::size_t tokens() const noexcept { return tokens_; }
  [[nodiscard]] const stats_options& options() const noexcept { return options_; }
  /// True when the dense all-pairs sums are kept (see cross_moments).
  [[nodiscard]] bool has_dense_cross_moments() const noexcept { return dense_; }

  /// max_t |x_ti| over every token.
  [[nodiscard]] double absmax(std::size_t i) const {
    return absmax_[checked(i, "activation_stats::absmax")];
  }
  /// sum_t x_ti^2 over every token (divide by tokens() for the mean).
  [[nodiscard]] double second_moment(std::size_t i) const {
    return sum2_[checked(i, "activation_stats::second_moment")];
  }
  /// sum_t x_ti^4 over every token.
  [[nodiscard]] double fourth_moment(std::size_t i) const {
    return sum4_[checked(i, "activation_stats::fourth_moment")];
  }
  [[nodiscard]] std::span<const double> absmax() const noexcept { return absmax_; }
  [[nodiscard]] std::span<const double> second_moments() const noexcept { return sum2_; }
  [[nodiscard]] std::span<const double> fourth_moments() const noexcept { return sum4_; }

  /// The five fourth-order sums of the pair (a, b) = (x_i, x_j), i != j: over every token with dense
  /// sums, else over the row sample.
  [[nodiscard]] angles::pair_fourth_moments pair_moments(std::size_t i, std::size_t j) const {
    checked(i, "activation_stats::pair_moments");
    checked(j, "activation_stats::pair_moments");
    detail::check(i != j, "activation_stats::pair_moments", "i == j == ", i);
    angles::pair_fourth_moments m;
    if (dense_) {
      m.s40 = sum4_[i];
      m.s04 = sum4_[j];
      m.s22 = c22_[upper(i, j)];
      m.s31 = cross31(i, j);
      m.s13 = cross31(j, i);
    } else {
      if (sample_.rows > 0)
        m = angles::detail::accumulate_strided(sample_.row(0) + i, sample_.row(0) + j, sample_.rows,
                                               sample_.cols);
    }
    return m;
  }
  /// sum_t x_ti x_tj: over every token with dense sums, else over the row sample (i == j allowed).
  [[nodiscard]] double cross_second(std::size_t i, std::size_t j) const {
    checked(i, "activation_stats::cross_second");
    checked(j, "activation_stats::cross_second");
    if (dense_) return c11_[upper(i, j)];
    if (i == j && sample_.rows == tokens_) return sum2_[i];
    double s = 0;
    for (std::size_t t = 0; t < sample_.rows; ++t) s += sample_.row(t)[i] * sample_.row(t)[j];
    return s;
  }
  /// sum_t x_ti^2 x_tj^2 (dense: every token; else the row sample).
  [[nodiscard]] double cross_fourth_22(std::size_t i, std::size_t j) const {
    return pair_or_self(i, j, "activation_stats::cross_fourth_22").s22;
  }
  /// sum_t x_ti^3 x_tj (dense: every token; else the row sample).
  [[nodiscard]] double cross_fourth_31(std::size_t i, std::size_t j) const {
    return pair_or_self(i, j, "activation_stats::cross_fourth_31").s31;
  }

  /// The row sample (rows x dim(), in accumulation order while it holds every row).
  [[nodiscard]] matrix_view<const double> sample() const noexcept {
    return {sample_.values.data(), sample_.rows, n_};
  }
  /// Rows the sample can hold (min(max_sample_rows, max_sample_bytes / (8 dim()))).
  [[nodiscard]] std::size_t sample_capacity() const noexcept { return sample_capacity_; }
  /// True when the row sample holds every accumulated row.
  [[nodiscard]] bool sample_is_complete() const noexcept { return sample_.rows == tokens_; }
  /// Rows of the top tokens by max |x| (most extreme first; ties keep the earlier token).
  [[nodiscard]] matrix_view<const double> outlier_rows() const noexcept {
    return {outliers_.values.data(), outliers_.rows, n_};
  }
  /// max_k |x_k| of each outlier row.
  [[nodiscard]] std::span<const double> outlier_peaks() const noexcept { return outlier_peaks_; }

  /// Internal: the dense upper-triangle storage (row i, columns j >= i) for the builders.
  /// c31 holds sum x_i^3 x_j, c13 holds sum x_i x_j^3, c22 sum x_i^2 x_j^2 (empty unless dense).
  [[nodiscard]] const std::vector<double>& dense_c22() const noexcept { return c22_; }
  [[nodiscard]] const std::vector<double>& dense_c31() const noexcept { return c31_; }
  [[nodiscard]] const std::vector<double>& dense_c13() const noexcept { return c13_; }

  /// Throws unless the statistics can build a rotation: tokens > 0, every sum finite, a row sample.
  /// `function` names the caller in the message.
  void check_buildable(std::string_view function) const {
    detail::check(tokens_ > 0, function, "statistics of zero tokens");
    detail::check(sample_.rows > 0, function, "the statistics keep no row sample (sample capacity ",
                  sample_capacity_, ")");
    for (std::size_t k = 0; k < n_; ++k)
      detail::check(std::isfinite(sum4_[k]) && std::isfinite(sum2_[k]), function,
                    "non-finite statistics at channel ", k, " (sum x^4 = ", sum4_[k],
                    "): the activations overflow double fourth powers");
    for (const double v : c22_) detail::check(std::isfinite(v), function, "non-finite dense sums");
  }

 private:
  std::size_t checked(std::size_t i, const char* what) const {
    detail::check(i < n_, what, "channel ", i, " out of range for dimension ", n_);
    return i;
  }
  [[nodiscard]] std::size_t upper(std::size_t i, std::size_t j) const noexcept {
    return i <= j ? i * n_ + j : j * n_ + i;
  }
  [[nodiscard]] double cross31(std::size_t i, std::size_t j) const noexcept {
    return i <= j ? c31_[i * n_ + j] : c13_[j * n_ + i];
  }
  angles::pair_fourth_moments pair_or_self(std::size_t i, std::size_t j, const char* what) const {
    checked(i, what);
    checked(j, what);
    if (i != j) return pair_moments(i, j);
    angles::pair_fourth_moments m;
    m.s22 = m.s31 = fourth_moment(i);
    return m;
  }

  void add_chunk(const double* x, std::size_t rows) {
    detail::dispatch([&](auto arch) {
      using K = detail::moment_kernel<decltype(arch)>;
      K::channel_sums(x, rows, n_, n_, absmax_.data(), sum2_.data(), sum4_.data());
      if (dense_) {
        std::vector<double> x2(rows * n_), x3(rows * n_);
        for (std::size_t e = 0; e < rows * n_; ++e) {
          x2[e] = x[e] * x[e];
          x3[e] = x2[e] * x[e];
        }
        // Upper triangle by blocks of channels: rows c0.. of each matrix, columns >= c0.
        constexpr std::size_t block = 32;
        for (std::size_t c0 = 0; c0 < n_; c0 += block) {
          const std::size_t m = std::min(block, n_ - c0);
          // Weight columns c0..c0+m of the rows (row stride n_).
          K::cross_fourth(x, rows, n_, n_, 8, c0, x3.data() + c0, x2.data() + c0, x + c0, m, n_,
                          c31_.data() + c0 * n_, c22_.data() + c0 * n_, c13_.data() + c0 * n_, n_);
          K::cross_second(x, rows, n_, n_, 8, c0, x + c0, m, n_, c11_.data() + c0 * n_, n_);
        }
      }
    });
    for (std::size_t t = 0; t < rows; ++t) {
      const double* row = x + t * n_;
      offer_sample(row);
      if (options_.outlier_tokens > 0) {
        double peak = 0;
        for (std::size_t k = 0; k < n_; ++k) peak = std::max(peak, std::fabs(row[k]));
        offer_outlier(row, peak);
      }
      ++tokens_;
    }
  }

  // Algorithm R: the t-th row (0-based) replaces a uniform slot with probability capacity / (t + 1).
  void offer_sample(const double* row) {
    if (sample_capacity_ == 0) return;
    if (sample_.rows < sample_capacity_ && sample_.rows == tokens_) {
      sample_.values.insert(sample_.values.end(), row, row + n_);
      ++sample_.rows;
      return;
    }
    const std::uint64_t slot = rng_.below(static_cast<std::uint64_t>(tokens_) + 1);
    if (slot < sample_capacity_) std::copy(row, row + n_, sample_.row(static_cast<std::size_t>(slot)));
  }

  void merge_sample(const activation_stats& other) {
    if (sample_capacity_ == 0) return;
    if (sample_.rows + other.sample_.rows <= sample_capacity_ && sample_is_complete() &&
        other.sample_is_complete()) {
      sample_.values.insert(sample_.values.end(), other.sample_.values.begin(),
                            other.sample_.values.end());
      sample_.rows += other.sample_.rows;
      return;
    }
    // Hypergeometric split of the capacity between the two populations, then a uniform subset of
    // each reservoir (partial Fisher-Yates on slot indices).
    std::uint64_t left_a = tokens_, left_b = other.tokens_;
    const std::size_t target = std::min<std::size_t>(sample_capacity_, tokens_ + other.tokens_);
    std::size_t take_a = 0;
    for (std::size_t d = 0; d < target; ++d) {
      if (rng_.below(left_a + left_b) < left_a) {
        ++take_a;
        --left_a;
      } else {
        --left_b;
      }
    }
    take_a = std::min(take_a, sample_.rows);
    const std::size_t take_b = std::min(target - take_a, other.sample_.rows);
    detail::dense_rows merged;
    merged.cols = n_;
    merged.values.reserve((take_a + take_b) * n_);
    auto pick = [&](const detail::dense_rows& from, std::size_t count) {
      std::vector<std::size_t> slots(from.rows);
      for (std::size_t s = 0; s < from.rows; ++s) slots[s] = s;
      for (std::size_t s = 0; s < count; ++s) {
        const std::size_t r = s + static_cast<std::size_t>(rng_.below(from.rows - s));
        std::swap(slots[s], slots[r]);
        merged.values.insert(merged.values.end(), from.row(slots[s]), from.row(slots[s]) + n_);
      }
    };
    pick(sample_, take_a);
    pick(other.sample_, take_b);
    merged.rows = take_a + take_b;
    sample_ = std::move(merged);
  }

  // Keeps the outlier_tokens rows of largest peak; ties keep the earlier row.
  void offer_outlier(const double* row, double peak) {
    const std::size_t keep = options_.outlier_tokens;
    if (keep == 0) return;
    std::size_t position = outliers_.rows;
    while (position > 0 && outlier_peaks_[position - 1] < peak) --position;
    if (position >= keep) return;
    if (outliers_.rows < keep) {
      outliers_.values.resize((outliers_.rows + 1) * n_);
      outlier_peaks_.push_back(0);
      ++outliers_.rows;
    }
    for (std::size_t r = outliers_.rows - 1; r > position; --r) {
      std::copy(outliers_.row(r - 1), outliers_.row(r - 1) + n_, outliers_.row(r));
      outlier_peaks_[r] = outlier_peaks_[r - 1];
    }
    std::copy(row, row + n_, outliers_.row(position));
    outlier_peaks_[position] = peak;
  }

  std::size_t n_;
  stats_options options_;
  bool dense_ = false;
  std::size_t tokens_ = 0;
  std::size_t sample_capacity_ = 0;
  std::vector<double> absmax_, sum2_, sum4_;
  std::vector<double> c22_, c31_, c13_, c11_;  // dense upper triangles (row i, columns j >= i)
  detail::dense_rows sample_;
  detail::splitmix64 rng_;
  detail::dense_rows outliers_;
  std::vector<double> outlier_peaks_;
};

/// The weights that read a site, as the builders use them: a bounded sample of weight rows in the
/// rotation basis (in double) and the weight_term_options that say how much they count. Computed
/// once per build (calibrator::build(weights) samples the user's matrices and changes the basis);
/// nothing is streamed.
class weight_stats {
 public:
  /// No rows yet, for sites of n channels (n >= 1).
  explicit weight_stats(std::size_t n, weight_term_options options = {}) : options_(options) {
    detail::check(n >= 1 && n <= max_site_width, "weight_stats", "dimension ", n, " is not in [1, ",
                  max_site_width, "] (max_site_width)");
    detail::check_enum("weight_stats", "weight_term_options::weighting", options.weighting,
                       weight_row_weighting::energy);
    detail::check(std::isfinite(options.lambda) && options.lambda >= 0, "weight_stats",
                  "lambda must be finite and >= 0, got ", options.lambda);
    rows_.cols = n;
  }

  /// Appends weight rows already in the rotation basis (rows x dim(), float or double). Every element
  /// must be finite (a NaN or Inf is reported with its position; nothing is added).
  template <class T>
    requires float_or_double<T>
  void add_rows(matrix_view<const T> rows) {
    const std::size_t n = rows_.cols;
    detail::check(rows.cols() == n, "weight_stats::add_rows", "rows have ", rows.cols(),
                  " columns, the statistics ", n);
    std::size_t total = 0, elements = 0;
    detail::check(!detail::add_overflows(rows_.rows, rows.rows(), total) &&
                      !detail::multiply_overflows(total, n, elements),
                  "weight_stats::add_rows", rows.rows(), " more rows of ", n, " overflow");
    bool own_rows = false;  // adding our own rows: the resize below may move them
    if constexpr (std::is_same_v<T, double>) {
      const std::less<const double*> less;
      const double* own = rows_.values.data();
      own_rows = rows.rows() > 0 && !rows_.values.empty() && !less(rows.data(), own) &&
                 less(rows.data(), own + rows_.values.size());
    }
    std::size_t bad_row = 0, bad_col = 0;
    if (own_rows) {
      std::vector<double> copy(rows.rows() * n);
      detail::check(detail::copy_finite_rows(rows, 0, rows.rows(), copy.data(), bad_row, bad_col),
                    "weight_stats::add_rows", "non-finite value at row ", bad_row, ", column ",
                    bad_col);
      rows_.values.insert(rows_.values.end(), copy.begin(), copy.end());
    } else {
      // Straight into the stored rows (no second copy of them); on a bad value they are cut back.
      const std::size_t before = rows_.values.size();
      rows_.values.resize(elements);
      const bool finite = detail::copy_finite_rows(rows, 0, rows.rows(), rows_.values.data() + before,
                                                   bad_row, bad_col);
      if (!finite) rows_.values.resize(before);
      detail::check(finite, "weight_stats::add_rows", "non-finite value at row ", bad_row,
                    ", column ", bad_col);
    }
    rows_.rows = total;
  }
  template <class T>
    requires float_or_double<T>
  void add_rows(matrix_view<T> rows) {
    add_rows(matrix_view<const T>(rows));
  }

  [[nodiscard]] std::size_t dim() const noexcept { return rows_.cols; }
  [[nodiscard]] const weight_term_options& options() const noexcept { return options_; }
  /// The rows (in the rotation basis, as added).
  [[nodiscard]] matrix_view<const double> rows() const noexcept {
    return {rows_.values.data(), rows_.rows, rows_.cols};
  }
  /// True when the weight side counts (lambda > 0 and at least one row).
  [[nodiscard]] bool active() const noexcept { return options_.lambda > 0 && rows_.rows > 0; }

 private:
  weight_term_options options_;
  detail::dense_rows rows_;
};

namespace detail {

/// Rows r * total / count (r < count) of the matrices stacked in order, count = min(total, max_rows)
/// (max_rows 0: every row), copied to doubles; `function` names the caller in the errors.
template <class T>
dense_rows sample_weight_rows(std::span<const matrix_view<const T>> weights, std::size_t n,
                              std::size_t max_rows, std::string_view function) {
  std::size_t total = 0;
  for (std::size_t m = 0; m < weights.size(); ++m) {
    check(weights[m].cols() == n, function, "weight matrix ", m, " has ", weights[m].cols(),
          " columns (in_features), the site ", n);
    check(!add_overflows(total, weights[m].rows(), total), function, "weight rows overflow");
  }
  const std::size_t count = max_rows == 0 ? total : std::min(total, max_rows);
  dense_rows out;
  out.cols = n;
  out.rows = count;
  std::size_t elements = 0;
  check(!multiply_overflows(count, n, elements), function, count, " weight rows of ", n,
        " overflow");
  out.values.resize(elements);
  std::size_t matrix = 0, first_row = 0;  // global index of matrix's row 0
  for (std::size_t r = 0; r < count; ++r) {
    // r * total / count without overflowing r * total (count rows were allocated, so count^2 fits).
    const std::size_t global = r * (total / count) + r * (total % count) / count;
    while (global >= first_row + weights[matrix].rows()) first_row += weights[matrix++].rows();
    std::size_t bad_row = 0, bad_col = 0;
    check(copy_finite_rows(weights[matrix], global - first_row, 1, out.row(r), bad_row, bad_col),
          function, "non-finite weight in matrix ", matrix, " at row ", bad_row, ", column ",
          bad_col);
  }
  return out;
}

/// make_working_set without rotation (see there): row by row into the panels.
inline working_set make_working_set_unrotated(const activation_stats& stats,
                                              const weight_stats* weights,
                                              token_weighting weighting, std::size_t max_rows) {
  const auto sample = stats.sample();
  const std::size_t sample_rows = sample.rows();
  const std::size_t n = stats.dim();
  const bool subsample = max_rows > 0 && max_rows < sample_rows;
  const std::size_t token_rows = subsample ? max_rows : sample_rows;
  const bool joint = weights != nullptr && weights->active();
  const std::size_t count = joint ? weights->rows().rows() : 0;
  working_set ws(token_rows + count, n, token_rows);
  std::vector<double> row(n);
  const auto energy_of = [&]() {
    double energy = 0;
    for (std::size_t k = 0; k < n; ++k) energy += row[k] * row[k];
    return energy;
  };
  double mass = 0;
  for (std::size_t t = 0; t < token_rows; ++t) {
    const double* r = sample.data() + (subsample ? t * sample_rows / max_rows : t) * n;
    std::copy(r, r + n, row.begin());
    if (weighting == token_weighting::unit_norm) {
      const double energy = energy_of();
      if (energy != 0) {
        const double inverse = 1.0 / std::sqrt(energy);
        for (std::size_t k = 0; k < n; ++k) row[k] *= inverse;
      }
    }
    if (joint) {
      const double energy = energy_of();
      mass += energy * energy;
    }
    ws.set_row(t, row.data());
  }
  if (joint) {
    const auto w = weights->rows();
    std::vector<double> energy(count, 0.0);
    double total_energy = 0;
    for (std::size_t r = 0; r < count; ++r) {
      std::copy(w.data() + r * n, w.data() + (r + 1) * n, row.begin());
      energy[r] = energy_of();
      total_energy += energy[r];
    }
    const double side = weights->options().lambda * mass;
    for (std::size_t r = 0; r < count; ++r) {
      std::copy(w.data() + r * n, w.data() + (r + 1) * n, row.begin());
      if (energy[r] != 0) {
        const double omega = weights->options().weighting == weight_row_weighting::unit
                                 ? side / static_cast<double>(count)
                                 : side * (energy[r] / total_energy);
        const double factor = std::sqrt(std::sqrt(omega)) / std::sqrt(energy[r]);
        for (std::size_t k = 0; k < n; ++k) row[k] *= factor;
      }
      ws.set_row(token_rows + r, row.data());
    }
  }
  return ws;
}

/// The builders' working set from the statistics' row sample and, with an active weight term, the
/// weight rows after them: max_rows > 0 keeps token rows t * sample_rows / max_rows, t < max_rows;
/// rotate_rows(matrix_view<double>) then rotates the row-major copy (rotations already applied
/// upstream); unit_norm weighting scales each token row to unit l2 norm, and weight row i is
/// scaled to unit norm times omega_i^(1/4), omega_i = lambda M / N (unit) or
/// lambda M e_i / sum e (energy), M = sum_t ||y_t||^4 over the weighted token rows.
/// rotate_rows == nullptr: nothing to rotate; then the rows go straight into the panels one at a
/// time through a row buffer (the same operations per row in the same order, so the same values),
/// without the rows x n row-major copy.
template <class RotateRows>
working_set make_working_set(const activation_stats& stats, const weight_stats* weights,
                             token_weighting weighting, std::size_t max_rows,
                             RotateRows&& rotate_rows) {
  if constexpr (std::is_same_v<std::decay_t<RotateRows>, std::nullptr_t>)
    return make_working_set_unrotated(stats, weights, weighting, max_rows);
  const auto sample = stats.sample();
  std::size_t row_count = sample.rows();
  const std::size_t n = stats.dim();
  std::vector<double> rows;
  if (max_rows > 0 && max_rows < row_count) {
    rows.reserve(max_rows * n);
    for (std::size_t t = 0; t < max_rows; ++t) {
      const double* r = sample.data() + (t * row_count / max_rows) * n;
      rows.insert(rows.end(), r, r + n);
    }
    row_count = max_rows;
  } else {
    rows.assign(sample.data(), sample.data() + row_count * n);
  }
  const std::size_t token_rows = row_count;
  const bool joint = weights != nullptr && weights->active();
  if (joint) {
    const auto w = weights->rows();
    rows.insert(rows.end(), w.data(), w.data() + w.rows() * n);
    row_count += w.rows();
  }
  if constexpr (!std::is_same_v<std::decay_t<RotateRows>, std::nullptr_t>)
    rotate_rows(matrix_view<double>(rows.data(), row_count, n));
  const auto energy_of = [&](std::size_t t) {
    double energy = 0;
    for (std::size_t k = 0; k < n; ++k) energy += rows[t * n + k] * rows[t * n + k];
    return energy;
  };
  if (weighting == token_weighting::unit_norm) {
    for (std::size_t t = 0; t < token_rows; ++t) {
      const double energy = energy_of(t);
      if (energy == 0) continue;
      const double inverse = 1.0 / std::sqrt(energy);
      for (std::size_t k = 0; k < n; ++k) rows[t * n + k] *= inverse;
    }
  }
  if (joint) {
    double mass = 0;
    for (std::size_t t = 0; t < token_rows; ++t) mass += energy_of(t) * energy_of(t);
    const std::size_t count = row_count - token_rows;
    std::vector<double> energy(count, 0.0);
    double total_energy = 0;
    for (std::size_t r = 0; r < count; ++r) {
      energy[r] = energy_of(token_rows + r);
      total_energy += energy[r];
    }
    const double side = weights->options().lambda * mass;
    for (std::size_t r = 0; r < count; ++r) {
      if (energy[r] == 0) continue;
      const double omega = weights->options().weighting == weight_row_weighting::unit
                               ? side / static_cast<double>(count)
                               : side * (energy[r] / total_energy);
      const double factor = std::sqrt(std::sqrt(omega)) / std::sqrt(energy[r]);
      double* row = rows.data() + (token_rows + r) * n;
      for (std::size_t k = 0; k < n; ++k) row[k] *= factor;
    }
  }
  return working_set(rows, row_count, n, token_rows);
}

/// A working set one builder hands to the next (ART to URT when ART rotated nothing), with the
/// report_before figures already taken on it.
struct shared_working_set {
  std::optional<working_set> rows;
  double l4 = 0, max_over_rms = 0;
};

inline void report_before(rotation_report& report, const working_set& ws) {
  report.l4_before = ws.l4();
  report.max_over_rms_before = ws.max_over_rms();
}
inline void report_after(rotation_report& report, const working_set& ws) {
  report.l4_after = ws.l4();
  report.max_over_rms_after = ws.max_over_rms();
}

}  // namespace detail

/// Options of hessian_stats.
struct hessian_options {
  /// Threads accumulate() uses (0: every hardware thread). The sums do not depend on it.
  std::size_t threads = 0;
};

/// H = X^T X = sum_t x_t^T x_t, the full second-moment matrix of a site's input rows x_t, for the
/// GPTQ weight quantiser (gptq.hpp): the layer-output error of quantised weights Q is
/// ||X W^T - X Q^T||_F^2 = sum_i (w_i - q_i) H (w_i - q_i)^T over the rows w_i of W.
/// Feed it the rows in the basis the weights are quantised in (after the site's transform), or the
/// raw rows and then change_basis() with the transform once it is built (the same H, one pass).
///
/// Storage and precision: the upper triangle (j >= i) of an n x n row-major matrix of doubles,
/// 8 n^2 bytes (128 MiB at n = 4096, 0.8 GiB at n = 14336; one site at a time is the intended
/// use). Double rather than float because the sums run over up to millions of tokens and GPTQ
/// factorises H + lambda I, whose Cholesky loses about log10 of its condition number in digits
/// (up to ~6 at these widths with 1% damping): float's 7 would leave about one. Each batch's
/// products are formed in double, by blocked FMA tiles over 256 tokens at a time, then added.
/// Batches fed separately, or to accumulators merged later, give the same H to rounding.
/// Not thread-safe; accumulate() runs on several threads itself (hessian_options::threads), with
/// bit-identical results for any thread count.
class hessian_stats {
 public:
  /// Statistics of n-channel rows (n >= 1).
  explicit hessian_stats(std::size_t n, hessian_options options = {}) : n_(n), options_(options) {
    detail::check(n >= 1, "hessian_stats", "dimension must be >= 1, got ", n);
    std::size_t n_squared = 0;
    detail::check(!detail::multiply_overflows(n, n, n_squared) &&
                      n_squared <= std::numeric_limits<std::size_t>::max() / sizeof(double),
                  "hessian_stats", "dimension ", n, " too large");
    h_.assign(n_squared, 0.0);
  }

  /// H += rows^T rows for a batch of rows (tokens x dim(), float or double). Every element must be
  /// finite: a NaN or Inf is reported with its position and H is left unchanged.
  template <class T>
    requires float_or_double<T>
  void accumulate(matrix_view<const T> rows) {
    detail::check(rows.cols() == n_, "hessian_stats::accumulate", "rows have ", rows.cols(),
                  " channels, the statistics ", n_);
    for (std::size_t t = 0; t < rows.rows(); ++t) {
      const T* r = rows.row(t).data();
      for (std::size_t k = 0; k < n_; ++k)
        detail::check(std::isfinite(static_cast<double>(r[k])), "hessian_stats::accumulate",
                      "non-finite value at row ", t, ", channel ", k);
    }
    if (rows.rows() == 0) return;
    // Tasks: tiles of 64 rows of H by 256 columns, upper triangle only, column-chunk-major so that
    // consecutive tasks share the chunk of the batch they read.
    constexpr std::size_t token_chunk = 256, tile_rows = 64, tile_cols = 256;
    struct tile {
      std::size_t row0, col0;
    };
    std::vector<tile> tiles;
    for (std::size_t c0 = 0; c0 < n_; c0 += tile_cols)
      for (std::size_t r0 = 0; r0 < n_ && r0 < c0 + tile_cols; r0 += tile_rows) tiles.push_back({r0, c0});
    const std::size_t work = std::min(token_chunk, rows.rows()) * n_ * n_;
    const std::size_t threads =
        work < (std::size_t{1} << 22) ? 1 : std::min(detail::resolve_threads(options_.threads), tiles.size());
    detail::thread_team team(threads);
    std::vector<double> x(std::min(token_chunk, rows.rows()) * n_);
    std::size_t bad_row = 0, bad_col = 0;
    for (std::size_t t0 = 0; t0 < rows.rows(); t0 += token_chunk) {
      const std::size_t count = std::min(token_chunk, rows.rows() - t0);
      detail::copy_finite_rows(rows, t0, count, x.data(), bad_row, bad_col);
      team.run(tiles.size(), [&](std::size_t task) {
        const tile& t = tiles[task];
        const std::size_t row_end = std::min(t.row0 + tile_rows, n_);
        const std::size_t col_begin = std::max(t.col0, t.row0), col_end = std::min(t.col0 + tile_cols, n_);
        detail::dispatch([&](auto arch) {
          detail::dense_kernel<double, decltype(arch)>::multiply_add(
              x.data() + t.row0, n_, x.data() + col_begin, n_, count, h_.data() + t.row0 * n_ + col_begin,
              n_, row_end - t.row0, col_end - col_begin, false);
        });
      });
    }
    tokens_ += rows.rows();
  }
  template <class T>
    requires float_or_double<T>
  void accumulate(matrix_view<T> rows) {
    accumulate(matrix_view<const T>(rows));
  }

  /// Adds another accumulator's H (same dimension), as if its rows had been fed here.
  void merge(const hessian_stats& other) {
    detail::check(other.n_ == n_, "hessian_stats::merge", "dimensions differ: ", n_, " vs ", other.n_);
    for (std::size_t i = 0; i < n_; ++i)
      for (std::size_t j = i; j < n_; ++j) h_[i * n_ + j] += other.h_[i * n_ + j];
    tokens_ += other.tokens_;
  }

  /// H <- R^T H R, the matrix of the rows x R, for an orthogonal (or any) n x n change of basis:
  /// apply_rows(matrix_view<double> m) must do m <- m R in place on rows of n columns
  /// (site_transform::apply_rows does). Computed on the full symmetric H, in double.
  template <class F>
  void change_basis(F&& apply_rows) {
    std::vector<double> m = dense();
    apply_rows(matrix_view<double>(m.data(), n_, n_));  // H R
    for (std::size_t i = 0; i < n_; ++i)
      for (std::size_t j = i + 1; j < n_; ++j) std::swap(m[i * n_ + j], m[j * n_ + i]);
    apply_rows(matrix_view<double>(m.data(), n_, n_));  // (H R)^T R = R^T H R
    for (std::size_t i = 0; i < n_; ++i)
      for (std::size_t j = i; j < n_; ++j) h_[i * n_ + j] = m[i * n_ + j];
  }

  /// Number of channels.
  [[nodiscard]] std::size_t dim() const noexcept { return n_; }
  /// Tokens (rows) accumulated.
  [[nodiscard]] std::size_t tokens() const noexcept { return tokens_; }
  /// The n x n storage: H_ij at (i, j) for j >= i; entries below the diagonal are unspecified.
  [[nodiscard]] matrix_view<const double> upper() const noexcept { return {h_.data(), n_, n_}; }
  /// H_ij = H_ji.
  [[nodiscard]] double operator()(std::size_t i, std::size_t j) const {
    detail::check(i < n_ && j < n_, "hessian_stats", "entry (", i, ", ", j, ") out of range for dimension ", n_);
    return i <= j ? h_[i * n_ + j] : h_[j * n_ + i];
  }
  /// H in full (row-major n x n, symmetric).
  [[nodiscard]] std::vector<double> dense() const {
    std::vector<double> m(h_.size());
    for (std::size_t i = 0; i < n_; ++i)
      for (std::size_t j = i; j < n_; ++j) m[i * n_ + j] = m[j * n_ + i] = h_[i * n_ + j];
    return m;
  }

 private:
  std::size_t n_;
  hessian_options options_;
  std::size_t tokens_ = 0;
  std::vector<double> h_;
};

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_STATS_HPP
