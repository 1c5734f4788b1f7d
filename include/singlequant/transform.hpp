// singlequant/transform.hpp - the composed orthogonal transform of one site
// (docs/method.md section 9).
//
// R = H G_art G_urt in the row-vector convention (x -> x R: first the Hadamard, then ART, then
// URT), with the statistics collected in the Hadamard basis. A linear layer y = x W^T keeps its
// output: y = (x R)(W R)^T. For online sites of width n = a b the Kronecker form
// R = (H_a G_a) (x) (H_b G_b) costs n (a + b) multiply-adds per token; x is read as the a x b matrix
// X[p][q] = x[p b + q], and x R is R_a^T X R_b. With ART and URT disabled either form is the plain
// (possibly randomised) Hadamard, so the method degrades to a known baseline.
//
// Flow: calibrator cal(n, options); cal.observe(batch)...; site_transform r = cal.build();
//       r.fold_into_weights(W) offline; r.apply_rows(x) online (or fold into the producer);
//       r.serialize() to store next to the weights, site_transform::deserialize() to load.
#ifndef SINGLEQUANT_TRANSFORM_HPP
#define SINGLEQUANT_TRANSFORM_HPP

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "art.hpp"
#include "config.hpp"
#include "givens.hpp"
#include "hadamard.hpp"
#include "kronecker.hpp"
#include "quant.hpp"
#include "stats.hpp"
#include "urt.hpp"
#include "view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// The shape of a site transform.
enum class transform_structure {
  full,       ///< R = H_n G (one n x n Hadamard, then sparse Givens); offline folding or online FWHT
  kronecker,  ///< R = (H_a G_a) (x) (H_b G_b); two small dense factors, for online sites
};

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

/// What building a transform did. Full form: art / urt. Kronecker form: art / urt describe the lane
/// factor (b) and art_rows / urt_rows the row factor (a).
struct transform_report {
  rotation_report art, urt, art_rows, urt_rows;
};

/// One factor of a transform: an optional Hadamard of order `size`, then Givens rotations.
struct transform_factor {
  std::size_t size = 0;
  bool use_hadamard = true;
  hadamard_options hadamard;
  givens_sequence<double> rotations;
};

namespace detail {

// Little-endian byte writer / bounds-checked reader of the serialised form.
struct blob_writer {
  std::vector<std::uint8_t> bytes;
  void u32(std::uint32_t v) {
    for (int b = 0; b < 4; ++b) bytes.push_back(static_cast<std::uint8_t>(v >> (8 * b)));
  }
  void u64(std::uint64_t v) {
    for (int b = 0; b < 8; ++b) bytes.push_back(static_cast<std::uint8_t>(v >> (8 * b)));
  }
  void f64(double v) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    u64(bits);
  }
};
struct blob_reader {
  std::span<const std::uint8_t> bytes;
  std::size_t at = 0;
  bool ok = true;
  std::uint64_t u(int width) {
    if (!ok || bytes.size() - at < static_cast<std::size_t>(width)) {
      ok = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (int b = 0; b < width; ++b) v |= static_cast<std::uint64_t>(bytes[at + static_cast<std::size_t>(b)]) << (8 * b);
    at += static_cast<std::size_t>(width);
    return v;
  }
  std::uint32_t u32() { return static_cast<std::uint32_t>(u(4)); }
  std::uint64_t u64() { return u(8); }
  double f64() {
    const std::uint64_t bits = u(8);
    double v = 0;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  [[nodiscard]] std::size_t remaining() const noexcept { return bytes.size() - at; }
};

/// FNV-1a, 64 bit, of the bytes.
inline std::uint64_t fnv1a64(const std::uint8_t* data, std::size_t n) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::size_t i = 0; i < n; ++i) {
    h ^= data[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

/// The seed of the lane factor's Hadamard in the Kronecker form (the row factor uses the seed).
inline std::uint64_t lane_seed(std::uint64_t seed) noexcept { return seed ^ 0x9e3779b97f4a7c15ULL; }

}  // namespace detail

/// A built site transform (see the file comment). Copyable; immutable once built.
class site_transform {
 public:
  /// Format of serialize(): little-endian, in order
  ///   "SQTF" (4 bytes), u32 version = 1, u32 structure (0 full, 1 Kronecker), u64 n,
  ///   then one factor (full) or two (Kronecker: rows a, then lanes b), each:
  ///     u64 size, u32 flags (bit 0: Hadamard used, bit 1: randomised; other bits 0), u64 seed,
  ///     u64 block_size, u64 stage count, per stage: u64 rotation count, per rotation:
  ///     u64 i, u64 j, f64 c, f64 s (bit-exact),
  ///   then u64 FNV-1a-64 of every preceding byte.
  static constexpr std::uint32_t format_version = 1;
  /// The widest site a transform may have (built or loaded): 2^20 channels. Bounds what a blob of a
  /// few bytes can make deserialize() allocate (a Hadamard of order n takes no bytes to describe).
  static constexpr std::size_t max_size = max_site_width;
  /// The largest Kronecker factor: its dense R_f and R_f^T are kept in double and float
  /// (24 max_kronecker_factor^2 bytes per factor, 384 MiB at the limit).
  static constexpr std::size_t max_kronecker_factor = 4096;

  /// Full form: x -> x H G (Hadamard of order n when use_hadamard, then the rotations).
  explicit site_transform(transform_factor full) {
    validate_factor(full, max_size, "site_transform");
    n_ = full.size;
    structure_ = transform_structure::full;
    factors_.push_back(std::move(full));
    prepare();
  }
  /// Kronecker form: x -> x (R_a (x) R_b) with R_a = H_a G_a (rows), R_b = H_b G_b (lanes).
  site_transform(transform_factor rows, transform_factor lanes) {
    validate_factor(rows, max_kronecker_factor, "site_transform");
    validate_factor(lanes, max_kronecker_factor, "site_transform");
    std::size_t n = 0;
    detail::check(!detail::multiply_overflows(rows.size, lanes.size, n) && n <= max_size,
                  "site_transform", "Kronecker factors ", rows.size, " x ", lanes.size,
                  " exceed the largest site, ", max_size);
    n_ = n;
    structure_ = transform_structure::kronecker;
    factors_.push_back(std::move(rows));
    factors_.push_back(std::move(lanes));
    prepare();
  }

  [[nodiscard]] std::size_t size() const noexcept { return n_; }
  [[nodiscard]] transform_structure structure() const noexcept { return structure_; }
  /// The factors: one (full) or two (Kronecker: rows, then lanes).
  [[nodiscard]] std::span<const transform_factor> factors() const noexcept { return factors_; }
  [[nodiscard]] const transform_report& report() const noexcept { return report_; }
  void set_report(const transform_report& report) { report_ = report; }
  /// Givens rotations in all factors.
  [[nodiscard]] std::size_t rotation_count() const noexcept {
    std::size_t c = 0;
    for (const auto& f : factors_) c += f.rotations.rotation_count();
    return c;
  }

  /// Online: every row x <- x R (float or double; float computes in float). A NaN or Inf in a row
  /// is not checked (this is the per-token hot path): it spreads over that row's output (the
  /// Hadamard and the Kronecker factors mix every channel) and never into other rows.
  template <class T>
    requires std::is_floating_point_v<T>
  void apply_rows(matrix_view<T> x) const {
    detail::check(x.cols() == n_, "site_transform::apply_rows", "rows have ", x.cols(),
                  " channels, the transform ", n_);
    if (structure_ == transform_structure::full) {
      const auto& f = factors_[0];
      if (f.use_hadamard) hadamard_for<T>(0).apply_rows(x);
      if (f.rotations.rotation_count() > 0) f.rotations.apply_rows(x);
    } else {
      kronecker_apply(dense_for<T>(0, false), dense_for<T>(1, false), x);
    }
  }
  /// Every row x <- x R^T (undoes apply_rows).
  template <class T>
    requires std::is_floating_point_v<T>
  void apply_rows_inverse(matrix_view<T> x) const {
    detail::check(x.cols() == n_, "site_transform::apply_rows_inverse", "rows have ", x.cols(),
                  " channels, the transform ", n_);
    if (structure_ == transform_structure::full) {
      const auto& f = factors_[0];
      if (f.rotations.rotation_count() > 0) f.rotations.apply_rows_inverse(x);
      if (f.use_hadamard) hadamard_for<T>(0).apply_rows_inverse(x);
    } else {
      kronecker_apply(dense_for<T>(0, true), dense_for<T>(1, true), x);
    }
  }
  /// Offline: W <- W R for a weight matrix W (out_features x n), computed in double and rounded
  /// once to T, so y = (x R)(W R)^T equals x W^T.
  /// Errors (W unchanged): a width other than size(); a NaN or Inf weight (named by row and column:
  /// it would spread over its whole row of W R).
  template <class T>
    requires std::is_floating_point_v<T>
  void fold_into_weights(matrix_view<T> w) const {
    constexpr const char* fn = "site_transform::fold_into_weights";
    detail::check(w.cols() == n_, fn, "weights have ", w.cols(), " columns (in_features), the transform ", n_);
    constexpr std::size_t chunk = 64;
    std::vector<double> buffer(std::min(chunk, w.rows()) * n_);
    detail::check_finite(matrix_view<const T>(w), fn, "weights");  // all rows before any is written
    std::size_t bad_row = 0, bad_col = 0;
    for (std::size_t r0 = 0; r0 < w.rows(); r0 += chunk) {
      const std::size_t count = std::min(chunk, w.rows() - r0);
      detail::copy_finite_rows(matrix_view<const T>(w), r0, count, buffer.data(), bad_row, bad_col);
      apply_rows(matrix_view<double>(buffer.data(), count, n_));
      for (std::size_t r = 0; r < count; ++r)
        for (std::size_t k = 0; k < n_; ++k) w(r0 + r, k) = static_cast<T>(buffer[r * n_ + k]);
    }
  }
  /// The n x n matrix R (row-major) with apply_rows(x) == x R.
  [[nodiscard]] std::vector<double> to_dense() const {
    std::vector<double> r = detail::checked_vector<double>("site_transform::to_dense", "n x n matrix", n_ * n_);
    for (std::size_t i = 0; i < n_; ++i) r[i * n_ + i] = 1.0;
    apply_rows(matrix_view<double>(r.data(), n_, n_));
    return r;
  }

  /// The documented binary form (see format_version). Same transform, same bytes.
  [[nodiscard]] std::vector<std::uint8_t> serialize() const {
    detail::blob_writer out;
    for (const char c : {'S', 'Q', 'T', 'F'}) out.bytes.push_back(static_cast<std::uint8_t>(c));
    out.u32(format_version);
    out.u32(structure_ == transform_structure::full ? 0u : 1u);
    out.u64(n_);
    for (const auto& f : factors_) {
      out.u64(f.size);
      out.u32((f.use_hadamard ? 1u : 0u) | (f.hadamard.randomized ? 2u : 0u));
      out.u64(f.hadamard.seed);
      out.u64(f.hadamard.block_size);
      out.u64(f.rotations.stages().size());
      for (const auto& stage : f.rotations.stages()) {
        out.u64(stage.size());
        for (const auto& g : stage.rotations()) {
          out.u64(g.i);
          out.u64(g.j);
          out.f64(g.c);
          out.f64(g.s);
        }
      }
    }
    out.u64(detail::fnv1a64(out.bytes.data(), out.bytes.size()));
    return std::move(out.bytes);
  }

  /// Loads serialize()'s form, validating everything (magic, version, sizes, checksum, planes in
  /// range and disjoint within a stage, finite c and s with c^2 + s^2 = 1 within 1e-12, Hadamard
  /// orders); any violation is an error naming what is wrong, and nothing is returned.
  [[nodiscard]] static site_transform deserialize(std::span<const std::uint8_t> blob) {
    constexpr const char* fn = "site_transform::deserialize";
    detail::check(blob.size() >= 4 + 4 + 4 + 8 + 8, fn, "blob of ", blob.size(),
                  " bytes is too short");
    detail::check(blob[0] == 'S' && blob[1] == 'Q' && blob[2] == 'T' && blob[3] == 'F', fn,
                  "bad magic (not a singlequant transform)");
    detail::blob_reader in{blob, 4};
    const std::uint32_t version = in.u32();
    detail::check(version == format_version, fn, "unsupported format version ", version,
                  " (this build reads ", format_version, ")");
    const std::size_t body = blob.size() - 8;
    detail::blob_reader tail{blob, body};
    detail::check(tail.u64() == detail::fnv1a64(blob.data(), body), fn,
                  "checksum mismatch (corrupted blob)");
    in.bytes = blob.first(body);
    const std::uint32_t structure = in.u32();
    detail::check(structure <= 1, fn, "unknown structure ", structure);
    const std::uint64_t n = in.u64();
    detail::check(n >= 1 && n <= max_size, fn, "width ", n, " is not in [1, ", max_size, "]");
    const std::uint64_t largest_factor = structure == 0 ? n : std::min<std::uint64_t>(n, max_kronecker_factor);
    std::vector<transform_factor> factors;
    for (std::uint32_t f = 0; f < structure + 1; ++f) {
      transform_factor factor;
      const std::uint64_t size = in.u64();
      const std::uint32_t flags = in.u32();
      factor.hadamard.seed = in.u64();
      const std::uint64_t block = in.u64();
      const std::uint64_t stages = in.u64();
      detail::check(in.ok, fn, "truncated factor header");
      detail::check(size >= 1 && size <= largest_factor, fn, "factor size ", size,
                    " is not in [1, ", largest_factor, "] (n = ", n, ")");
      const std::uint64_t rows_size = f == 0 ? 0 : factors[0].size;  // (message pieces are evaluated eagerly)
      detail::check(f == 0 || size * rows_size == n, fn, "lanes factor size ", size, " x rows factor size ",
                    rows_size, " != n = ", n);
      detail::check((flags & ~3u) == 0, fn, "unknown flags ", flags);
      detail::check(block <= size, fn, "Hadamard block size ", block, " > factor size ", size);
      factor.size = static_cast<std::size_t>(size);
      factor.use_hadamard = (flags & 1u) != 0;
      factor.hadamard.randomized = (flags & 2u) != 0;
      factor.hadamard.block_size = static_cast<std::size_t>(block);
      factor.rotations = givens_sequence<double>(factor.size);
      detail::check(stages <= in.remaining() / 8, fn, "stage count ", stages, " exceeds the blob");
      std::vector<char> used(factor.size, 0);
      for (std::uint64_t s = 0; s < stages; ++s) {
        const std::uint64_t count = in.u64();
        detail::check(in.ok && count <= in.remaining() / 32, fn, "stage ", s, " rotation count ",
                      count, " exceeds the blob");
        // serialize() never writes an empty stage, so one would not round-trip to the same bytes.
        detail::check(count >= 1, fn, "stage ", s, " is empty");
        std::vector<givens<double>> rotations;
        rotations.reserve(static_cast<std::size_t>(count));
        for (std::uint64_t r = 0; r < count; ++r) {
          const std::uint64_t i = in.u64(), j = in.u64();
          const double c = in.f64(), sn = in.f64();
          detail::check(in.ok, fn, "truncated rotation");
          detail::check(i < size && j < size && i != j, fn, "stage ", s, " rotation ", r,
                        ": plane (", i, ", ", j, ") invalid for factor size ", size);
          detail::check(!used[i] && !used[j], fn, "stage ", s, " rotation ", r, ": plane (", i,
                        ", ", j, ") overlaps another rotation of the stage");
          detail::check(std::isfinite(c) && std::isfinite(sn) && std::fabs(c * c + sn * sn - 1.0) <= 1e-12,
                        fn, "stage ", s, " rotation ", r, ": (c, s) = (", c, ", ", sn,
                        ") is not a rotation");
          used[i] = used[j] = 1;
          // Bit-exact (c, s), not renormalised: the loaded transform is the stored one.
          rotations.push_back(givens<double>{static_cast<std::size_t>(i), static_cast<std::size_t>(j), c, sn});
        }
        for (const auto& g : rotations) used[g.i] = used[g.j] = 0;
        factor.rotations.push_back_stage(givens_stage<double>(std::move(rotations)));
      }
      detail::check(!factor.use_hadamard || hadamard_supported(factor), fn,
                    "factor of size ", size, ": no Hadamard transform of that order (block size ", block,
                    "; orders are K 2^k with a supported base K <= ", max_hadamard_base_order, ")");
      factors.push_back(std::move(factor));
    }
    detail::check(in.ok && in.remaining() == 0, fn, "trailing or missing bytes");
    if (structure == 0) {
      detail::check(factors[0].size == n, fn, "factor size ", factors[0].size, " != n = ", n);
      return site_transform(std::move(factors[0]));
    }
    detail::check(factors[0].size * factors[1].size == n, fn, "factor sizes ", factors[0].size,
                  " x ", factors[1].size, " != n = ", n);
    return site_transform(std::move(factors[0]), std::move(factors[1]));
  }

 private:
  static bool hadamard_supported(const transform_factor& f) {
    const std::size_t block = f.hadamard.block_size == 0 ? f.size : f.hadamard.block_size;
    if (block < 1 || f.size % block != 0) return false;
    const auto factorization = factor_hadamard_size(block);
    return factorization && factorization->base <= max_hadamard_base_order;
  }
  static void validate_factor(const transform_factor& f, std::size_t largest, const char* fn) {
    detail::check(f.size >= 1 && f.size <= largest, fn, "factor size ", f.size,
                  " is not in [1, ", largest, "]");
    detail::check(f.rotations.dim() == f.size, fn, "rotations of dimension ", f.rotations.dim(),
                  " for a factor of size ", f.size);
    detail::check(!f.use_hadamard || hadamard_supported(f), fn, "no Hadamard of order ", f.size,
                  " (block size ", f.hadamard.block_size, ")");
  }

  void prepare() {
    for (std::size_t f = 0; f < factors_.size(); ++f) {
      const auto& factor = factors_[f];
      if (factor.use_hadamard) {
        hadamard_double_.emplace_back(std::in_place, factor.size, factor.hadamard);
        hadamard_float_.emplace_back(std::in_place, factor.size, factor.hadamard);
      } else {
        hadamard_double_.emplace_back(std::nullopt);
        hadamard_float_.emplace_back(std::nullopt);
      }
    }
    if (structure_ == transform_structure::kronecker) {
      for (std::size_t f = 0; f < 2; ++f) {
        const std::size_t m = factors_[f].size;
        std::vector<double> r(m * m, 0.0);
        for (std::size_t i = 0; i < m; ++i) r[i * m + i] = 1.0;
        const matrix_view<double> rv(r.data(), m, m);
        if (hadamard_double_[f]) hadamard_double_[f]->apply_rows(rv);
        factors_[f].rotations.apply_rows(rv);
        std::vector<double> rt(m * m);
        for (std::size_t i = 0; i < m; ++i)
          for (std::size_t j = 0; j < m; ++j) rt[j * m + i] = r[i * m + j];
        dense_float_[f].assign(r.begin(), r.end());
        dense_float_t_[f].assign(rt.begin(), rt.end());
        for (std::size_t e = 0; e < m * m; ++e) {
          dense_float_[f][e] = static_cast<float>(r[e]);
          dense_float_t_[f][e] = static_cast<float>(rt[e]);
        }
        dense_[f] = std::move(r);
        dense_t_[f] = std::move(rt);
      }
    }
  }
  template <class T>
  const hadamard_transform<T>& hadamard_for(std::size_t f) const {
    if constexpr (std::is_same_v<T, float>) {
      return *hadamard_float_[f];
    } else {
      return *hadamard_double_[f];
    }
  }
  template <class T>
  matrix_view<const T> dense_for(std::size_t f, bool transposed) const {
    const std::size_t m = factors_[f].size;
    if constexpr (std::is_same_v<T, float>) {
      return {(transposed ? dense_float_t_[f] : dense_float_[f]).data(), m, m};
    } else {
      return {(transposed ? dense_t_[f] : dense_[f]).data(), m, m};
    }
  }

  std::size_t n_ = 0;
  transform_structure structure_ = transform_structure::full;
  std::vector<transform_factor> factors_;
  std::vector<std::optional<hadamard_transform<double>>> hadamard_double_;
  std::vector<std::optional<hadamard_transform<float>>> hadamard_float_;
  std::array<std::vector<double>, 2> dense_, dense_t_;          // Kronecker factors R_f, R_f^T
  std::array<std::vector<float>, 2> dense_float_, dense_float_t_;
  transform_report report_;
};

namespace detail {

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
  if (options.use_art) {
    art_result art = build_art_on(stats, weights, options.art);
    art_report = art.report;
    rotations.append(art.rotations);
  }
  if (options.use_urt && options.urt.mode != urt_mode::none) {
    urt_result urt = weights == nullptr ? build_urt(stats, rotations, options.urt)
                                        : build_urt(stats, *weights, rotations, options.urt);
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
    result.set_report(report);
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
  result.set_report(report);
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
    requires std::is_floating_point_v<T>
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
    requires std::is_floating_point_v<T>
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
    requires std::is_floating_point_v<T>
  [[nodiscard]] site_transform build(std::span<const matrix_view<const T>> weights) const {
    return build_site_transform(stats_, weight_stats_of(weights, options_.weight_term), options_);
  }
  /// The joint build with other rules (the Hadamard part must match; rules.weight_term applies).
  template <class T>
    requires std::is_floating_point_v<T>
  [[nodiscard]] site_transform build(std::span<const matrix_view<const T>> weights,
                                     const transform_options& rules) const {
    detail::check_same_basis(basis_key_, detail::basis_of(n_, rules, "calibrator::build"),
                             "calibrator::build", "the rules ask for");
    return build_site_transform(stats_, weight_stats_of(weights, rules.weight_term), rules);
  }
  /// Rows of `weights` (sampled as build(weights) does) in the statistics' Hadamard basis.
  template <class T>
    requires std::is_floating_point_v<T>
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

/// Smoothing metrics of activation rows (tokens x channels): what a rotation should lower.
struct activation_metrics {
  double mean_max_over_rms = 0;  ///< mean over tokens of max_k |x_k| / rms(x) (1 for zero rows)
  double max_max_over_rms = 0;   ///< worst token
  double mean_kurtosis = 0;      ///< mean over tokens of mean_k x^4 / (mean_k x^2)^2 (0 for zero rows)
};

/// Per-token max/RMS and kurtosis of rows (float or double; NaN/Inf are errors).
template <class T>
  requires std::is_floating_point_v<T>
[[nodiscard]] activation_metrics measure_activations(matrix_view<const T> x) {
  activation_metrics m;
  const std::size_t n = x.cols();
  for (std::size_t t = 0; t < x.rows(); ++t) {
    double peak = 0, s2 = 0, s4 = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const double v = static_cast<double>(x(t, k));
      detail::check(std::isfinite(v), "measure_activations", "non-finite value at row ", t,
                    ", channel ", k);
      peak = std::max(peak, std::fabs(v));
      s2 += v * v;
      s4 += v * v * v * v;
    }
    const double ratio = s2 > 0 ? peak / std::sqrt(s2 / static_cast<double>(n)) : 1.0;
    m.mean_max_over_rms += ratio;
    m.max_max_over_rms = std::max(m.max_max_over_rms, ratio);
    if (s2 > 0) m.mean_kurtosis += (s4 / static_cast<double>(n)) / ((s2 / static_cast<double>(n)) * (s2 / static_cast<double>(n)));
  }
  if (x.rows() > 0) {
    m.mean_max_over_rms /= static_cast<double>(x.rows());
    m.mean_kurtosis /= static_cast<double>(x.rows());
  }
  return m;
}

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
  requires std::is_floating_point_v<T>
[[nodiscard]] single_pass_result single_pass_quantize(const calibrator& cal, matrix_view<const T> w,
                                                      const quant_config& weight_config = {},
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

/// The W4A4 output error of a layer y = x W^T (x tokens x n, W out x n):
/// relative Frobenius |Y - Y_q| / |Y| and SQNR 10 log10(|Y|^2 / |Y - Y_q|^2), with
/// Y_q = Q_a(x R) Q_w(W R)^T (R = identity when transform is null), everything in double.
/// An exact Y_q (all-zero activations included) gives 0 and +Inf. Errors: shapes, configs, a NaN or
/// Inf in x or W (named by position), and sqnr_db's (an all-zero Y with Y_q != 0).
struct layer_error {
  double relative_frobenius = 0;
  double sqnr_db = 0;
};
template <class T>
  requires std::is_floating_point_v<T>
[[nodiscard]] layer_error measure_w4a4_layer(matrix_view<const T> x, matrix_view<const T> w,
                                             const site_transform* transform,
                                             const quant_config& activation_config,
                                             const quant_config& weight_config) {
  constexpr const char* fn = "measure_w4a4_layer";
  detail::check(x.cols() == w.cols(), fn, "activations have ", x.cols(), " channels, weights ",
                w.cols(), " columns");
  detail::check(transform == nullptr || transform->size() == x.cols(), fn, "transform of size ",
                transform == nullptr ? 0 : transform->size(), " for ", x.cols(), " channels");
  detail::check_config(activation_config, x.cols(), fn);
  detail::check_config(weight_config, w.cols(), fn);
  const std::size_t tokens = x.rows(), n = x.cols(), m = w.rows();
  std::size_t outputs = 0;
  detail::check(!detail::multiply_overflows(tokens, m, outputs), fn, tokens, " tokens x ", m, " outputs overflow");
  std::vector<double> xd = detail::finite_copy(x, fn, "activations");
  std::vector<double> wd = detail::finite_copy(w, fn, "weights");
  auto product = [&](const std::vector<double>& a, const std::vector<double>& b) {
    std::vector<double> y = detail::checked_vector<double>(fn, "layer outputs", outputs);
    for (std::size_t t = 0; t < tokens; ++t)
      for (std::size_t o = 0; o < m; ++o) {
        double sum = 0;
        for (std::size_t k = 0; k < n; ++k) sum += a[t * n + k] * b[o * n + k];
        y[t * m + o] = sum;
      }
    return y;
  };
  const std::vector<double> reference = product(xd, wd);
  if (transform != nullptr) {
    transform->apply_rows(matrix_view<double>(xd.data(), tokens, n));
    transform->apply_rows(matrix_view<double>(wd.data(), m, n));
  }
  std::vector<double> xq(xd.size()), wq(wd.size());
  fake_quantize<double>(matrix_view<const double>(xd.data(), tokens, n),
                        matrix_view<double>(xq.data(), tokens, n), activation_config);
  fake_quantize<double>(matrix_view<const double>(wd.data(), m, n),
                        matrix_view<double>(wq.data(), m, n), weight_config);
  const std::vector<double> approx = product(xq, wq);
  double signal = 0, noise = 0;
  for (std::size_t e = 0; e < reference.size(); ++e) {
    signal += reference[e] * reference[e];
    noise += (reference[e] - approx[e]) * (reference[e] - approx[e]);
  }
  layer_error result;
  result.sqnr_db = detail::sqnr_from_sums(signal, noise, fn);
  result.relative_frobenius = noise == 0 ? 0.0 : std::sqrt(noise / signal);
  return result;
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_TRANSFORM_HPP
