// singlequant/site_transform.hpp - the online half of a site transform: apply, fold, (de)serialise
// (docs/method.md section 9).
//
// R = H G_art G_urt in the row-vector convention (x -> x R: first the Hadamard, then ART, then
// URT), with the statistics collected in the Hadamard basis. A linear layer y = x W^T keeps its
// output: y = (x R)(W R)^T. For online sites of width n = a b the Kronecker form
// R = (H_a G_a) (x) (H_b G_b) costs n (a + b) multiply-adds per token; x is read as the a x b matrix
// X[p][q] = x[p b + q], and x R is R_a^T X R_b. With ART and URT disabled either form is the plain
// (possibly randomised) Hadamard, so the method degrades to a known baseline.
//
// This header holds no builder or statistics code (calibrator.hpp builds a site_transform), so a
// runtime that only loads and applies transforms parses neither (docs/performance.md).
// Flow: r = site_transform::deserialize(blob); r.fold_into_weights(W) offline; r.apply_rows(x) online.
#ifndef SINGLEQUANT_SITE_TRANSFORM_HPP
#define SINGLEQUANT_SITE_TRANSFORM_HPP

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

#include "config.hpp"
#include "givens.hpp"
#include "hadamard.hpp"
#include "kronecker.hpp"
#include "view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// The shape of a site transform.
enum class transform_structure {
  full,       ///< R = H_n G (one n x n Hadamard, then sparse Givens); offline folding or online FWHT
  kronecker,  ///< R = (H_a G_a) (x) (H_b G_b); two small dense factors, for online sites
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

namespace detail {
struct site_transform_access;  // the builders' way to record what they did (calibrator.hpp)
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
  /// What the builder did (zeros for a deserialized or hand-made transform).
  [[nodiscard]] const transform_report& report() const noexcept { return report_; }
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
    requires float_or_double<T>
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
    requires float_or_double<T>
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
    requires float_or_double<T>
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
  friend struct detail::site_transform_access;

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

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_SITE_TRANSFORM_HPP
