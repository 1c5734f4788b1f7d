// singlequant/calibrator.hpp - building site transforms: the calibrator, the builders,
// single_pass_quantize (docs/method.md section 9).
//
// Flow: calibrator cal(n, options); cal.observe(batch)...; site_transform r = cal.build();
//       r.fold_into_weights(W) offline; r.apply_rows(x) online (or fold into the producer);
//       r.serialize() to store next to the weights, site_transform::deserialize() to load.
#ifndef SINGLEQUANT_CALIBRATOR_HPP
#define SINGLEQUANT_CALIBRATOR_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "art.hpp"
#include "config.hpp"
#include "givens.hpp"
#include "hadamard.hpp"
#include "int4.hpp"
#include "kronecker.hpp"
#include "quant.hpp"
#include "site_transform.hpp"
#include "stats.hpp"
#include "urt.hpp"
#include "view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// Everything that decides a site transform; every rule is a parameter (see art.hpp, urt.hpp).
struct transform_options {
  bool use_hadamard = true;      ///< false: Givens only (R = G), for measuring the Hadamard's share
  hadamard_options hadamard;     ///< randomisation, seed, block size of the Hadamard part
  bool use_art = true;
  art_options art;
  bool use_urt = true;
  urt_options urt;
  transform_structure structure = transform_structure::full;
  /// Kronecker form: the row factor a of n = a x b (0: hadamard_kronecker_split(n)).
  std::size_t kronecker_rows = 0;
  stats_options stats;           ///< statistics the calibrator keeps
  /// The weight side of the joint objective (stats.hpp), used when the build is given the weights
  /// that read the site (calibrator::build(weights), single_pass_quantize).
  weight_term_options weight_term;
};

namespace detail {

/// The builders record their report on the transform they return (site_transform stays immutable
/// for everyone else).
struct site_transform_access {
  static void set_report(site_transform& transform, const transform_report& report) {
    transform.report_ = report;
  }
};

/// The (a, b) split of a Kronecker-form site, validated.
inline kronecker_split resolve_split(std::size_t n, const transform_options& options,
                                     const char* fn) {
  if (options.kronecker_rows == 0) {
    const auto split = hadamard_kronecker_split(n);
    check(split.has_value(), fn, "width ", n, " has no Kronecker split into two Hadamard orders");
    return *split;
  }
  const std::size_t a = options.kronecker_rows;
  check(n % a == 0, fn, "kronecker_rows ", a, " does not divide the width ", n);
  const kronecker_split split{a, n / a};
  check(!options.use_hadamard ||
            (is_hadamard_order_supported(split.a) && is_hadamard_order_supported(split.b)),
        fn, "no Hadamard of order ", split.a, " or ", split.b, " (width ", n, " = ", split.a,
        " x ", split.b, ")");
  return split;
}

inline hadamard_options factor_hadamard(const transform_options& options, bool lanes) {
  hadamard_options h = options.hadamard;
  h.block_size = 0;
  if (lanes) h.seed = lane_seed(h.seed);
  return h;
}

/// The basis a calibrator's statistics are collected in: what x -> x H (full form) or
/// x -> x (H_a (x) H_b) (Kronecker form) depends on. Two option sets give the same statistics
/// exactly when their bases are equal; the seed only counts when randomized, the block only in the
/// full form, and without a Hadamard every option set collects in the identity basis.
struct calibration_basis {
  bool hadamard = false;
  transform_structure structure = transform_structure::full;
  std::size_t block = 0;            // full form: the Hadamard block order (block_size, 0 -> n)
  std::size_t rows = 0, lanes = 0;  // Kronecker form: the resolved split n = rows x lanes
  bool randomized = false;
  std::uint64_t seed = 0;
  friend bool operator==(const calibration_basis&, const calibration_basis&) = default;

  /// "identity (no Hadamard)", "Hadamard in blocks of order 128 (randomized, seed 7)",
  /// "Kronecker 16 x 16 Hadamard (not randomized)", ...
  [[nodiscard]] std::string describe() const {
    if (!hadamard) return "identity (no Hadamard)";
    std::string text = structure == transform_structure::full
                           ? message("Hadamard in blocks of order ", block)
                           : message("Kronecker ", rows, " x ", lanes, " Hadamard");
    return text + (randomized ? message(" (randomized, seed ", seed, ")")
                              : std::string(" (not randomized)"));
  }
};

/// The basis `options` collect the statistics of a width-n site in (checks the split like
/// resolve_split, reporting as `fn`).
inline calibration_basis basis_of(std::size_t n, const transform_options& options, const char* fn) {
  calibration_basis basis;
  if (!options.use_hadamard) return basis;
  basis.hadamard = true;
  basis.structure = options.structure;
  if (options.structure == transform_structure::full) {
    basis.block = options.hadamard.block_size == 0 ? n : options.hadamard.block_size;
  } else {
    const kronecker_split split = resolve_split(n, options, fn);
    basis.rows = split.a;
    basis.lanes = split.b;
  }
  basis.randomized = options.hadamard.randomized;
  basis.seed = basis.randomized ? options.hadamard.seed : 0;
  return basis;
}

/// Fails as `fn` unless `other` is the basis the statistics were collected in; `other_phrase` says
/// whose basis `other` is ("the other calibrator's are in", "the rules ask for").
inline void check_same_basis(const calibration_basis& collected, const calibration_basis& other,
                             const char* fn, const char* other_phrase) {
  check(collected == other, fn, "another Hadamard basis: the statistics are in ",
        collected.describe(), ", ", other_phrase, " ", other.describe());
}

/// ART then URT on statistics of one factor (or the full site), on the joint objective when
/// `weights` is given and active.
inline givens_sequence<double> build_rotations(const activation_stats& stats,
                                               const weight_stats* weights,
                                               const transform_options& options,
                                               rotation_report& art_report,
                                               rotation_report& urt_report) {
  givens_sequence<double> rotations(stats.dim());
  const bool use_urt = options.use_urt && options.urt.mode != urt_mode::none;
  // After an ART that rotates nothing (the usual site after the Hadamard) URT would rebuild the
  // same working set (rows x n doubles): same rows when URT keeps every row, same weighting.
  shared_working_set shared;
  const bool share = use_urt && options.art.weighting == options.urt.weighting &&
                     (options.urt.max_rows == 0 || options.urt.max_rows >= stats.sample().rows());
  if (options.use_art) {
    art_result art = build_art_on(stats, weights, options.art, share ? &shared : nullptr);
    art_report = art.report;
    rotations.append(art.rotations);
  }
  if (use_urt) {
    const urt_result urt = dispatch([&](auto arch) {
      return build_urt_on<decltype(arch)>(stats, weights, rotations, options.urt, &shared);
    });
    urt_report = urt.report;
    rotations.append(urt.rotations);
  }
  return rotations.regrouped();  // fewest disjoint stages, same product
}

/// Rows (count x a b) read as a x b matrices X: the rows of every X (count a rows of b lanes) and
/// the columns of every X (count b rows of a), the two factor bases of the Kronecker form.
inline std::vector<double> kronecker_columns(const std::vector<double>& lanes, std::size_t count,
                                             std::size_t a, std::size_t b) {
  const std::size_t n = a * b;
  std::vector<double> columns(count * n);
  for (std::size_t t = 0; t < count; ++t)
    for (std::size_t p = 0; p < a; ++p)
      for (std::size_t q = 0; q < b; ++q) columns[t * n + q * a + p] = lanes[t * n + p * b + q];
  return columns;
}

/// Statistics over given rows (all kept: the builders need every row of the factor).
inline activation_stats stats_of_rows(const std::vector<double>& rows, std::size_t count,
                                      std::size_t dim) {
  stats_options options;
  options.cross = cross_moments::automatic;
  options.max_sample_rows = count;
  options.max_sample_bytes = std::max<std::size_t>(count, 1) * dim * sizeof(double);
  activation_stats stats(dim, options);
  stats.accumulate(matrix_view<const double>(rows.data(), count, dim));
  return stats;
}

}  // namespace detail

namespace detail {

inline site_transform build_site_transform_on(const activation_stats& stats,
                                              const weight_stats* weights,
                                              const transform_options& options) {
  constexpr const char* fn = "build_site_transform";
  const std::size_t n = stats.dim();
  stats.check_buildable(fn);
  check(weights == nullptr || weights->dim() == n, fn, "weight rows have ",
        weights == nullptr ? 0 : weights->dim(), " columns, the statistics ", n);
  if (weights != nullptr && !weights->active()) weights = nullptr;  // the activation-only build
  transform_report report;
  if (options.structure == transform_structure::full) {
    transform_factor factor;
    factor.size = n;
    factor.use_hadamard = options.use_hadamard;
    factor.hadamard = options.hadamard;
    check(!options.use_hadamard || is_hadamard_order_supported(n), fn, "no Hadamard of order ", n,
          " (the site width)");
    factor.rotations = build_rotations(stats, weights, options, report.art, report.urt);
    site_transform result(std::move(factor));
    site_transform_access::set_report(result, report);
    return result;
  }
  const kronecker_split split = resolve_split(n, options, fn);
  const std::size_t a = split.a, b = split.b;
  const auto sample = stats.sample();
  const std::size_t tokens = sample.rows();
  // Lane factor first: every token (and weight row) gives a rows of b lanes (Y = H_a^T X H_b read
  // row by row).
  std::vector<double> lanes(sample.data(), sample.data() + tokens * n);
  std::vector<double> weight_lanes;
  const std::size_t weight_rows = weights == nullptr ? 0 : weights->rows().rows();
  if (weights != nullptr)
    weight_lanes.assign(weights->rows().data(), weights->rows().data() + weight_rows * n);
  auto factor_weights = [&](const std::vector<double>& rows, std::size_t dim) {
    weight_stats w(dim, weights == nullptr ? weight_term_options{} : weights->options());
    if (weights != nullptr)
      w.add_rows(matrix_view<const double>(rows.data(), weight_rows * n / dim, dim));
    return w;
  };
  transform_factor lane_factor;
  lane_factor.size = b;
  lane_factor.use_hadamard = options.use_hadamard;
  lane_factor.hadamard = factor_hadamard(options, true);
  {
    const activation_stats lane_stats = stats_of_rows(lanes, tokens * a, b);
    const weight_stats lane_weights = factor_weights(weight_lanes, b);
    lane_factor.rotations = build_rotations(lane_stats, weights == nullptr ? nullptr : &lane_weights,
                                            options, report.art, report.urt);
  }
  // Then the row factor on Y G_b: every token (and weight row) gives b columns of a rows.
  lane_factor.rotations.apply_rows(matrix_view<double>(lanes.data(), tokens * a, b));
  const std::vector<double> columns = kronecker_columns(lanes, tokens, a, b);
  std::vector<double> weight_columns;
  if (weights != nullptr) {
    lane_factor.rotations.apply_rows(matrix_view<double>(weight_lanes.data(), weight_rows * a, b));
    weight_columns = kronecker_columns(weight_lanes, weight_rows, a, b);
  }
  transform_factor row_factor;
  row_factor.size = a;
  row_factor.use_hadamard = options.use_hadamard;
  row_factor.hadamard = factor_hadamard(options, false);
  {
    const activation_stats row_stats = stats_of_rows(columns, tokens * b, a);
    const weight_stats row_weights = factor_weights(weight_columns, a);
    row_factor.rotations = build_rotations(row_stats, weights == nullptr ? nullptr : &row_weights,
                                           options, report.art_rows, report.urt_rows);
  }
  site_transform result(std::move(row_factor), std::move(lane_factor));
  site_transform_access::set_report(result, report);
  return result;
}

}  // namespace detail

/// Builds a site transform from statistics collected in the Hadamard basis of `options` (what
/// calibrator::stats() holds: the rows after x -> x H, or after x -> x (H_a (x) H_b) for the
/// Kronecker form). Errors: statistics of zero tokens or non-finite, a width the Hadamard cannot
/// take, no row sample.
[[nodiscard]] inline site_transform build_site_transform(const activation_stats& stats,
                                                         const transform_options& options = {}) {
  return detail::build_site_transform_on(stats, nullptr, options);
}

/// Builds a site transform on the joint objective: `weights` holds rows of the site's weights in
/// the same Hadamard basis (W H, or W (H_a (x) H_b)), with their weight term; both factors of the
/// Kronecker form see every weight row as a rows of b lanes and b columns of a, like the tokens.
/// An inactive weight term builds exactly build_site_transform(stats, options).
/// Errors: as build_site_transform, and weight rows of another width.
[[nodiscard]] inline site_transform build_site_transform(const activation_stats& stats,
                                                         const weight_stats& weights,
                                                         const transform_options& options = {}) {
  return detail::build_site_transform_on(stats, &weights, options);
}

/// The calibration flow of one site: owns the Hadamard part and the statistics in its basis.
class calibrator {
 public:
  /// A calibrator for a site of width n; checks now that the Hadamard can take n.
  explicit calibrator(std::size_t n, transform_options options = {})
      : n_(n), options_(std::move(options)), stats_(n, options_.stats) {
    constexpr const char* fn = "calibrator";
    if (options_.structure == transform_structure::full) {
      detail::check(!options_.use_hadamard || is_hadamard_order_supported(n), fn,
                    "no Hadamard of order ", n, " (the site width)");
      if (options_.use_hadamard) hadamard_.emplace(n, options_.hadamard);
    } else {
      const kronecker_split split = detail::resolve_split(n, options_, fn);
      transform_factor rows{split.a, options_.use_hadamard, detail::factor_hadamard(options_, false),
                            givens_sequence<double>(split.a)};
      transform_factor lanes{split.b, options_.use_hadamard, detail::factor_hadamard(options_, true),
                             givens_sequence<double>(split.b)};
      basis_.emplace(std::move(rows), std::move(lanes));
    }
    basis_key_ = detail::basis_of(n, options_, fn);
  }

  /// Copies the rows (tokens x n), applies the Hadamard part in double, accumulates the statistics.
  /// Non-finite input is an error and leaves the statistics unchanged.
  template <class T>
    requires float_or_double<T>
  void observe(matrix_view<const T> x) {
    detail::check(x.cols() == n_, "calibrator::observe", "rows have ", x.cols(),
                  " channels, the site ", n_);
    for (std::size_t t = 0; t < x.rows(); ++t)
      for (std::size_t k = 0; k < n_; ++k)
        detail::check(std::isfinite(static_cast<double>(x(t, k))), "calibrator::observe",
                      "non-finite value at row ", t, ", channel ", k);
    constexpr std::size_t chunk = 256;
    std::vector<double> buffer(std::min(chunk, x.rows()) * n_);
    for (std::size_t r0 = 0; r0 < x.rows(); r0 += chunk) {
      const std::size_t count = std::min(chunk, x.rows() - r0);
      for (std::size_t r = 0; r < count; ++r)
        for (std::size_t k = 0; k < n_; ++k) buffer[r * n_ + k] = static_cast<double>(x(r0 + r, k));
      const matrix_view<double> rows(buffer.data(), count, n_);
      if (hadamard_) hadamard_->apply_rows(rows);
      if (basis_) basis_->apply_rows(rows);
      stats_.accumulate(matrix_view<const double>(rows));
    }
  }
  template <class T>
    requires float_or_double<T>
  void observe(matrix_view<T> x) {
    observe(matrix_view<const T>(x));
  }

  /// Adds another calibrator's statistics (same width and Hadamard basis; see
  /// activation_stats::merge). Error: another width, or statistics collected in another basis
  /// (Hadamard order, seed, Kronecker split), which would mix incompatible coordinates.
  void merge(const calibrator& other) {
    detail::check(other.n_ == n_, "calibrator::merge", "the other calibrator's site has width ",
                  other.n_, ", this one ", n_);
    detail::check_same_basis(basis_key_, other.basis_key_, "calibrator::merge",
                             "the other calibrator's are in");
    stats_.merge(other.stats_);
  }

  /// Builds the site transform from the activations alone (errors: no tokens observed,
  /// non-finite statistics).
  [[nodiscard]] site_transform build() const { return build_site_transform(stats_, options_); }
  /// Builds with other ART/URT rules on the same statistics (error: `rules` name another Hadamard
  /// basis than the one the statistics were collected in).
  [[nodiscard]] site_transform build(const transform_options& rules) const {
    detail::check_same_basis(basis_key_, detail::basis_of(n_, rules, "calibrator::build"),
                             "calibrator::build", "the rules ask for");
    return build_site_transform(stats_, rules);
  }
  /// Builds on the joint objective (stats.hpp weight_term_options) with the weights that read the
  /// site: any number of matrices, each out_features x size() (row-major views, y = x W^T), e.g.
  /// {W_q, W_k, W_v}. options().weight_term.max_rows rows are sampled, evenly strided over the
  /// stacked matrices, changed to the Hadamard basis once and given to the builders.
  /// Errors: as build(), a matrix of another width, a non-finite weight in the sampled rows.
  template <class T>
    requires float_or_double<T>
  [[nodiscard]] site_transform build(std::span<const matrix_view<const T>> weights) const {
    return build_site_transform(stats_, weight_stats_of(weights, options_.weight_term), options_);
  }
  /// The joint build with other rules (the Hadamard part must match; rules.weight_term applies).
  template <class T>
    requires float_or_double<T>
  [[nodiscard]] site_transform build(std::span<const matrix_view<const T>> weights,
                                     const transform_options& rules) const {
    detail::check_same_basis(basis_key_, detail::basis_of(n_, rules, "calibrator::build"),
                             "calibrator::build", "the rules ask for");
    return build_site_transform(stats_, weight_stats_of(weights, rules.weight_term), rules);
  }
  /// Rows of `weights` (sampled as build(weights) does) in the statistics' Hadamard basis.
  template <class T>
    requires float_or_double<T>
  [[nodiscard]] weight_stats weight_stats_of(std::span<const matrix_view<const T>> weights,
                                             const weight_term_options& term) const {
    weight_stats result(n_, term);
    if (term.lambda == 0) return result;  // nothing counts: skip the sampling
    detail::dense_rows rows =
        detail::sample_weight_rows(weights, n_, term.max_rows, "calibrator::build");
    const matrix_view<double> view(rows.values.data(), rows.rows, n_);
    if (hadamard_) hadamard_->apply_rows(view);
    if (basis_) basis_->apply_rows(view);
    result.add_rows(matrix_view<const double>(view));
    return result;
  }
  /// The statistics in the Hadamard basis.
  [[nodiscard]] const activation_stats& stats() const noexcept { return stats_; }
  [[nodiscard]] std::size_t size() const noexcept { return n_; }
  [[nodiscard]] const transform_options& options() const noexcept { return options_; }

 private:
  std::size_t n_;
  transform_options options_;
  activation_stats stats_;
  std::optional<hadamard_transform<double>> hadamard_;
  std::optional<site_transform> basis_;  // Kronecker form: H_a (x) H_b
  detail::calibration_basis basis_key_;  // what merge and build(rules) must match
};

/// What single_pass_quantize returns: the site transform, the INT4 weights W R, and what the
/// weight quantiser saw.
struct single_pass_result {
  site_transform transform;
  packed_int4 weights;
  quant_report report;
};

/// One call for a linear layer y = x W^T: builds the site transform from the calibrator's
/// statistics (with its options, or `rules` on the same statistics), folds it into a copy of W in
/// double, and quantises W R with `weight_config`. Online, quantise x R with the activation config.
/// Errors (nothing built): a width other than the site's, a bad config, a NaN or Inf weight (named
/// by row and column), and the calibrator's build errors.
template <class T>
  requires float_or_double<T>
[[nodiscard]] single_pass_result single_pass_quantize(const calibrator& cal, matrix_view<const T> w,
                                                      const quant_options& weight_config = {},
                                                      const transform_options* rules = nullptr) {
  detail::check(w.cols() == cal.size(), "single_pass_quantize", "weights have ", w.cols(),
                " columns (in_features), the site ", cal.size());
  detail::check_config(weight_config, w.cols(), "single_pass_quantize");
  std::vector<double> folded = detail::finite_copy(w, "single_pass_quantize", "weights");
  site_transform transform = rules == nullptr ? cal.build() : cal.build(*rules);
  const matrix_view<double> folded_view(folded.data(), w.rows(), w.cols());
  transform.apply_rows(folded_view);  // W <- W R (rows of W are rotated like activations)
  quant_report report;
  packed_int4 weights = quantize(matrix_view<const double>(folded_view), weight_config, &report);
  return {std::move(transform), std::move(weights), report};
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_CALIBRATOR_HPP
