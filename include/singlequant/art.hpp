// singlequant/art.hpp - ART, the alignment rotation for magnitude outliers
// (docs/method.md section 5).
//
// From statistics collected in the rotation basis (after the Hadamard), flag the channels whose
// absmax exceeds tau_mag x the median absmax, pair each with a quiet partner (disjoint pairs: one
// parallel stage per level), rotate each pair by the selected closed-form angle, and repeat for up
// to max_levels levels while a rotated channel stays flagged. The l4 rule is an exact
// coordinate-descent step on sum_t sum_k y_tk^4 over the calibration rows, so it never increases it.
#ifndef SINGLEQUANT_ART_HPP
#define SINGLEQUANT_ART_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>
#include <utility>
#include <vector>

#include "angles.hpp"
#include "config.hpp"
#include "givens.hpp"
#include "stats.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// The closed-form angle of a pair rotation (docs/method.md section 3).
enum class angle_rule {
  l4,      ///< theta = (pi - arg Z4) / 4, Z4 = sum_t (y_ti + i y_tj)^4: minimises the pair's l4 (default)
  linf,    ///< theta = pi/4 - atan2(b, a) at the token where |y_i| peaks: both coordinates equal there
  energy,  ///< tan 2 theta = (S_ii - S_jj) / (2 S_ij): equal second moments after the rotation
};

/// Options of build_art (docs/method.md section 5 gives the ranges).
struct art_options {
  double tau_mag = 16.0;           ///< flag channels with absmax > tau_mag x median absmax (> 0)
  std::size_t max_levels = 2;      ///< levels (parallel stages); 0 builds nothing
  angle_rule rule = angle_rule::l4;
  std::size_t max_outliers = 0;    ///< at most this many first-level outliers (largest first; 0: all)
  token_weighting weighting = token_weighting::unit_norm;  ///< tokens in the angle sums and flags
};

/// A built rotation: the Givens sequence (row-vector convention, x <- x G) and what it did.
struct art_result {
  givens_sequence<double> rotations;
  rotation_report report;
};

namespace detail {

/// The angle of the pair (i, j) under `rule`, on the working set's rows.
inline double pair_angle(const working_set& ws, std::size_t i, std::size_t j, angle_rule rule,
                         double* l4_decrease = nullptr) {
  switch (rule) {
    case angle_rule::l4: {
      const angles::l4_step step = angles::l4_optimal(ws.pair_moments(i, j));
      if (l4_decrease != nullptr) *l4_decrease = step.decrease;
      return step.theta;
    }
    case angle_rule::linf: {
      std::size_t peak_row = 0;
      static_cast<void>(ws.absmax(i, &peak_row));
      return angles::align_linf(ws.value(peak_row, i), ws.value(peak_row, j));
    }
    case angle_rule::energy:
      return angles::equalize_second_moment(ws.cross_second(i, i), ws.cross_second(j, j),
                                            ws.cross_second(i, j));
  }
  return 0;
}

}  // namespace detail

namespace detail {

/// How far channel k stands out: absmax over the token rows, and with weight rows the larger of the
/// two sides' absmax relative to their own median (so either side can flag it).
class outlier_scores {
 public:
  outlier_scores(const working_set& ws, double tau_mag)
      : joint_(ws.has_weight_rows()) {
    ws.column_absmax(token_peak_, weight_peak_);  // one sweep of the rows for both sides
    token_threshold_ = tau_mag * median_of(token_peak_);
    if (joint_) weight_threshold_ = tau_mag * median_of(weight_peak_);
  }
  void update(const working_set& ws, std::size_t k) {
    token_peak_[k] = ws.absmax(k);
    if (joint_) weight_peak_[k] = ws.weight_absmax(k);
  }
  [[nodiscard]] bool flagged(std::size_t k) const noexcept {
    return token_peak_[k] > token_threshold_ || (joint_ && weight_peak_[k] > weight_threshold_);
  }
  /// The ranking key (larger: louder).
  [[nodiscard]] double score(std::size_t k) const noexcept {
    if (!joint_) return token_peak_[k];
    return std::max(relative(token_peak_[k], token_threshold_),
                    relative(weight_peak_[k], weight_threshold_));
  }

 private:
  static double relative(double peak, double threshold) noexcept {
    return threshold > 0 ? peak / threshold : peak;
  }
  bool joint_;
  std::vector<double> token_peak_, weight_peak_;
  double token_threshold_ = 0, weight_threshold_ = 0;
};

/// keep != nullptr: when nothing rotates, the untouched working set and its report_before figures
/// go to *keep (the URT builder after an empty ART starts from the same rows; calibrator.hpp
/// build_rotations).
inline art_result build_art_on(const activation_stats& stats, const weight_stats* weights,
                               const art_options& options,
                               shared_working_set* keep = nullptr) {
  stats.check_buildable("build_art");
  check_enum("build_art", "art_options::rule", options.rule, angle_rule::energy);
  check_enum("build_art", "art_options::weighting", options.weighting, token_weighting::raw);
  check(std::isfinite(options.tau_mag) && options.tau_mag > 0, "build_art",
        "tau_mag must be finite and > 0, got ", options.tau_mag);
  const std::size_t n = stats.dim();
  check(weights == nullptr || weights->dim() == n, "build_art", "weight rows have ",
        weights == nullptr ? 0 : weights->dim(), " columns, the statistics ", n);
  working_set ws = make_working_set(stats, weights, options.weighting, 0, nullptr);
  art_result result{givens_sequence<double>(n), {}};
  report_before(result.report, ws);

  outlier_scores scores(ws, options.tau_mag);
  // Largest first, ties by index.
  auto by_score_desc = [&](std::size_t a, std::size_t b) {
    const double sa = scores.score(a), sb = scores.score(b);
    return sa != sb ? sa > sb : a < b;
  };
  std::vector<std::size_t> current;
  for (std::size_t k = 0; k < n; ++k)
    if (scores.flagged(k)) current.push_back(k);
  std::sort(current.begin(), current.end(), by_score_desc);
  if (options.max_outliers > 0 && current.size() > options.max_outliers)
    current.resize(options.max_outliers);
  result.report.outliers = current.size();
  if (current.empty()) {  // the usual site after the Hadamard: nothing rotates, the rows are as before
    result.report.l4_after = result.report.l4_before;
    result.report.max_over_rms_after = result.report.max_over_rms_before;
    if (keep != nullptr) {
      keep->rows.emplace(std::move(ws));
      keep->l4 = result.report.l4_before;
      keep->max_over_rms = result.report.max_over_rms_before;
    }
    return result;
  }

  std::vector<char> touched(n, 0);
  for (const std::size_t k : current) touched[k] = 1;
  // Quiet partners: smallest score first, then smallest fourth moment, then index.
  std::vector<double> fourth(n), quiet_score(n);
  for (std::size_t k = 0; k < n; ++k) {
    fourth[k] = ws.fourth(k);
    quiet_score[k] = scores.score(k);
  }
  std::vector<std::size_t> quiet(n);
  for (std::size_t k = 0; k < n; ++k) quiet[k] = k;
  std::sort(quiet.begin(), quiet.end(), [&](std::size_t a, std::size_t b) {
    if (quiet_score[a] != quiet_score[b]) return quiet_score[a] < quiet_score[b];
    if (fourth[a] != fourth[b]) return fourth[a] < fourth[b];
    return a < b;
  });
  std::size_t next_quiet = 0;

  for (std::size_t level = 0; level < options.max_levels && !current.empty(); ++level) {
    std::vector<givens<double>> stage;
    std::vector<std::size_t> rotated;
    for (const std::size_t f : current) {
      while (next_quiet < n && touched[quiet[next_quiet]]) ++next_quiet;
      if (next_quiet == n) break;  // no quiet channel left
      const std::size_t q = quiet[next_quiet];
      touched[q] = 1;
      double decrease = 0;
      const double theta = pair_angle(ws, f, q, options.rule, &decrease);
      if (options.rule == angle_rule::l4 && !(decrease > 0)) continue;  // already l4-optimal
      const auto g = givens<double>::from_angle(f, q, theta);
      ws.rotate(g.i, g.j, g.c, g.s);
      stage.push_back(g);
      rotated.push_back(f);
      rotated.push_back(q);
    }
    if (stage.empty()) break;
    result.report.rotations += stage.size();
    ++result.report.stages;
    result.rotations.push_back_stage(givens_stage<double>(std::move(stage)));
    // Next level: the rotated channels still above the (first-level) thresholds.
    current.clear();
    for (const std::size_t k : rotated) {
      scores.update(ws, k);
      if (scores.flagged(k)) current.push_back(k);
    }
    std::sort(current.begin(), current.end(), by_score_desc);
  }
  report_after(result.report, ws);
  return result;
}

}  // namespace detail

/// Builds the ART rotation from statistics in the rotation basis (see the file comment). Flagging
/// and angles use the statistics' row sample (every row while the sample is complete).
/// Errors: statistics of zero tokens, non-finite statistics, no row sample, tau_mag not > 0.
[[nodiscard]] inline art_result build_art(const activation_stats& stats,
                                          const art_options& options = {}) {
  return detail::build_art_on(stats, nullptr, options);
}

/// ART on the joint objective (stats.hpp weight_term_options): the angles use the sums over the
/// token rows and the weighted weight rows; a channel is flagged when its absmax exceeds tau_mag x
/// the median on either side, and ranked (and partners chosen) by the larger relative absmax.
/// An inactive weight term (lambda = 0 or no rows) builds exactly build_art(stats, options).
/// Errors: as build_art, and weight rows of another width.
[[nodiscard]] inline art_result build_art(const activation_stats& stats, const weight_stats& weights,
                                          const art_options& options = {}) {
  return detail::build_art_on(stats, &weights, options);
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_ART_HPP
