// singlequant/quant.hpp - INT4 quantisers (W4A4), dequantisation, error metrics, the fused
// per-token quantise + pack kernel. The storage format (packed_int4, layouts, converters) is in
// int4.hpp, which this header includes.
//
// Conventions (docs/method.md section 10):
//   * Symmetric: x ~ code * scale. symmetric7 grid: codes -7..7, scale = clip * absmax / 7.
//     full8 grid: codes -8..7, scale = clip * m / -8 with m the signed finite value of largest
//     magnitude (ties: the negative one), so m lands exactly on code -8 and the scale is negative
//     when m > 0 (ggml Q4_0's choice; the full grid then has 8 steps on m's side).
//   * Asymmetric: x ~ (code - zero) * scale, scale = clip (hi - lo) / (qmax - qmin) > 0 over the
//     range [lo, hi] of the finite values together with 0 (so 0 is exact), zero = rne(qmin - clip lo / scale).
//   * code = clamp(rne(x * (1 / scale)) + zero, qmin, qmax): round half to even, computed in the
//     input's precision with the float scale that is stored (dequantise(quantise(x)) is what you get).
//     For elements inside the clip range (x / scale within [qmin - zero - 1/2, qmax - zero + 1/2])
//     |x - dequantised| <= |scale| / 2 (up to one rounding of x * (1 / scale)).
//   * Bad values: NaN -> the zero code (0, or the zero point), counted in quant_report::nan_count;
//     +-Inf (and, for double input, |x| > FLT_MAX) -> the extreme code of its sign, counted in
//     inf_count; neither enters the scale. A group with no finite non-zero value (all zero, all
//     NaN, ...) gets scale 0 and every code equal to the zero point: it dequantises to exact
//     zeros. A scale that would be a float subnormal is raised to the smallest normal float (sign
//     kept), so 1 / scale stays finite. No float-to-int conversion ever sees NaN or an out-of-range
//     value.
#ifndef SINGLEQUANT_QUANT_HPP
#define SINGLEQUANT_QUANT_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "config.hpp"
#include "detail/quant_kernels.hpp"
#include "fp16.hpp"
#include "int4.hpp"
#include "interop/ggml.hpp"
#include "simd.hpp"
#include "view.hpp"

// Outputs of at least this many bytes (codes of quantize_rows_fused, floats of dequantize) are
// written with non-temporal stores where the ISA and alignment allow: they would not stay in cache
// anyway, and skipping the read-for-ownership saves the read half of the write traffic
// (docs/performance.md). Smaller outputs, the online per-token case, stay in cache for the GEMM
// that reads them next.
#ifndef SINGLEQUANT_STREAMING_THRESHOLD
#  define SINGLEQUANT_STREAMING_THRESHOLD (std::size_t{4} << 20)
#endif

SINGLEQUANT_BEGIN_NAMESPACE

/// How to quantise a matrix. Defaults: symmetric7, per row, clip 1, no search.
struct quant_options {
  int4_grid grid = int4_grid::symmetric7;
  granularity gran = granularity::per_row;
  /// Elements per group along a row for per_group (must divide cols); ignored otherwise.
  std::size_t group_size = 0;
  /// The range used for the scale is clip_ratio times the observed one, 0 < clip_ratio <= 1
  /// (QuaRot uses 0.9 for activations). Ignored when mse_clip_search is on.
  double clip_ratio = 1.0;
  /// Zero points (asymmetric grid over [min(x, 0), max(x, 0)]) instead of symmetric codes.
  bool asymmetric = false;
  /// Per scale group, pick the clip ratio among 1, 1 - step, ..., down to clip_search_min that
  /// minimises sum (x - dequantised)^2 (ties: the larger ratio). 51 candidates by default.
  bool mse_clip_search = false;
  double clip_search_min = 0.5;
  double clip_search_step = 0.01;
};
/// The old name of quant_options (knobs are *_options: CONTRIBUTING.md), kept for one minor release.
using quant_config SINGLEQUANT_DEPRECATED("use quant_options") = quant_options;

/// What a quantisation saw. Counts add up over calls when the same report is passed again.
struct quant_report {
  std::size_t nan_count = 0;         ///< NaN elements (coded as the zero code)
  std::size_t inf_count = 0;         ///< +-Inf elements (or |x| > FLT_MAX for double), clamped
  std::size_t zero_scale_count = 0;  ///< scale groups with scale 0 (no finite non-zero value)
  std::size_t scale_count = 0;       ///< scale groups quantised
  double clip_ratio_sum = 0;         ///< sum of the clip ratios used, one per scale group
  /// Mean clip ratio over the scale groups (the search result's average), 0 if none.
  [[nodiscard]] double mean_clip_ratio() const noexcept {
    return scale_count == 0 ? 0.0 : clip_ratio_sum / static_cast<double>(scale_count);
  }
};

namespace detail {

inline void check_config(const quant_options& cfg, std::size_t cols, std::string_view function) {
  check_enum(function, "grid", cfg.grid, int4_grid::full8);
  check_enum(function, "granularity", cfg.gran, granularity::per_group);
  check(cfg.gran != granularity::per_group || (cfg.group_size > 0 && cols % cfg.group_size == 0),
        function, "group size ", cfg.group_size, " does not divide the row length ", cols,
        " (no tail rule: pick a divisor)");
  check(cfg.clip_ratio > 0 && cfg.clip_ratio <= 1, function, "clip ratio ", cfg.clip_ratio,
        " is outside (0, 1]");
  if (cfg.mse_clip_search) {
    check(cfg.clip_search_min > 0 && cfg.clip_search_min <= 1 && cfg.clip_search_step > 0 &&
              (1 - cfg.clip_search_min) / cfg.clip_search_step < 10000,
          function, "clip search from 1 down to ", cfg.clip_search_min, " in steps of ",
          cfg.clip_search_step, " is not a grid of 1..10000 ratios in (0, 1]");
  }
}

/// The clip-search candidates 1, 1 - step, ... >= min (or {clip_ratio} without search).
inline std::vector<double> clip_candidates(const quant_options& cfg) {
  if (!cfg.mse_clip_search) return {cfg.clip_ratio};
  const auto steps = static_cast<std::size_t>((1 - cfg.clip_search_min) / cfg.clip_search_step + 1e-9);
  std::vector<double> ratios(steps + 1);
  for (std::size_t k = 0; k <= steps; ++k) ratios[k] = 1.0 - static_cast<double>(k) * cfg.clip_search_step;
  return ratios;
}

/// Packs int8 codes (known to be in range) into the canonical layout.
inline void pack_codes_unchecked(const std::int8_t* codes, std::size_t n, std::uint8_t* out) noexcept {
  for (std::size_t k = 0; k < n / 2; ++k)
    out[k] = static_cast<std::uint8_t>(to_nibble(codes[2 * k]) | to_nibble(codes[2 * k + 1]) << 4);
  if (n % 2 != 0) out[n / 2] = to_nibble(codes[n - 1]);
}

/// A scale group of per_tensor / per_row / per_group: the segment [col0, col0 + len) of rows
/// [row0, row0 + nrows).
struct segment_group {
  std::size_t row0, nrows, col0, len;
};

/// The parameters a scale group gets and the clip ratio they used.
struct group_choice {
  quant_params params;
  double ratio = 1;
};

/// Shortest double group screened in float by choose_group.
inline constexpr std::size_t clip_screen_min_length = 64;

/// The float screen of choose_group's clip search, for n finite doubles x (|x| <= FLT_MAX) with
/// range [lo, hi]: keeps candidate[c] = 1 only for the ratios whose exact error E_c (choose_group's
/// double sum times s_c^2) can be the least, so the exact search over them picks the same ratio.
/// Per candidate: F_c = clip_screen over float(x) with float(1 / s_c). With g(y) = |y - rne(clamp(y))|,
/// the distance from y to the integers of [lo - z, hi - z], 1-Lipschitz in y, and
/// |y_float - y_double| <= 2^-22 |y| + a (three float roundings of x, 1 / s and the product, a the
/// flush-to-zero / subnormal error 2^-126 (|1 / s| + 1)), Minkowski gives
///   |sqrt(sum g(y_double)^2) - sqrt(sum g(y_float)^2)| <= D = 2 (2^-21 |1 / s| ||x|| + a sqrt(n))
/// (factor 2 to spare; the double and float subtractions y - r add at most 2^-24 |y| each). With
/// the screen's rounding (clip_screen_gamma) and the exact sum's (gamma_d):
///   L_c = (max(0, sqrt(F_c (1 - gamma)) - D))^2 (1 - gamma_d) s_c^2 <= E_c <= U_c = (sqrt(F_c (1 + 2 gamma)) + D)^2 (1 + gamma_d) s_c^2.
/// A candidate with L_c > min U cannot reach the least E (E_c >= L_c > U_min >= E_min) and is
/// dropped; the first least E (choose_group's tie rule) is always kept.
template <class Kernel>
void screen_clip_candidates(const double* x, std::size_t n, double lo, double hi, const quant_options& cfg,
                            const std::vector<double>& ratios, std::vector<char>& candidate) {
  const int qmin = grid_min(cfg.grid), qmax = grid_max(cfg.grid);
  std::vector<float> xf(n);
  const double sum_squares = Kernel::to_float(x, n, xf.data());
  const auto nd = static_cast<double>(n);
  const double norm_x = std::sqrt(sum_squares * (1 + (nd + 4) * 0x1p-52)) * (1 + 0x1p-50);
  const double gamma = clip_screen_gamma(n);
  const double gamma_d = (nd / 512 + 256) * 0x1p-52;  // clip_error_impl's lanes, blocks and the s^2 product
  std::vector<double> lower(ratios.size(), std::numeric_limits<double>::infinity());
  double min_upper = std::numeric_limits<double>::infinity();
  for (std::size_t c = 0; c < ratios.size(); ++c) {
    const quant_params p = make_params(lo, hi, ratios[c], qmin, qmax, cfg.asymmetric);
    if (p.scale == 0.0f) continue;  // choose_group skips it too
    const double inv = inverse_scale<double, void>(p.scale);
    const auto inv_f = static_cast<float>(inv);
    const double f = Kernel::clip_screen(xf.data(), n, inv_f, p.zero, qmin, qmax);
    const double a = 0x1p-126 * (std::fabs(static_cast<double>(inv_f)) + 1) * 1.01;
    const double d = 2 * (0x1p-21 * std::fabs(inv) * norm_x + a * std::sqrt(nd));
    const double s2 = static_cast<double>(p.scale) * static_cast<double>(p.scale);
    const double root_lo = std::max(0.0, std::sqrt(f * (1 - gamma)) - d);
    const double root_hi = std::sqrt(f * (1 + 2 * gamma)) + d;
    lower[c] = root_lo * root_lo * (1 - gamma_d) * s2;
    min_upper = std::min(min_upper, root_hi * root_hi * (1 + gamma_d) * s2);
  }
  for (std::size_t c = 0; c < ratios.size(); ++c) candidate[c] = lower[c] <= min_upper ? 1 : 0;
}

/// Scale (and zero point) of one scale group, every element of `group` (rows x cols, any stride):
/// its finite range, then per clip candidate (`ratios`, see clip_candidates) the squared error
/// s^2 sum (x / s - r)^2, keeping the least (ties: the first). Counts the group and its NaN / Inf
/// into `report`. quantize() and gptq() both choose scales with it.
template <class T, class Kernel>
group_choice choose_group(matrix_view<const T> group, const quant_options& cfg,
                          const std::vector<double>& ratios, quant_report& report) {
  const int qmin = grid_min(cfg.grid), qmax = grid_max(cfg.grid);
  T lo = 0, hi = 0;
  std::size_t nan_inf = 0;
  for (std::size_t i = 0; i < group.rows(); ++i) {
    const auto r = Kernel::range(group.row(i).data(), group.cols());
    lo = r.lo < lo ? r.lo : lo;
    hi = r.hi > hi ? r.hi : hi;
    report.nan_count += r.nan_count;
    report.inf_count += r.inf_count;
    nan_inf += r.nan_count + r.inf_count;
  }
  group_choice best{make_params(lo, hi, ratios[0], qmin, qmax, cfg.asymmetric), ratios[0]};
  if (ratios.size() > 1 && best.params.scale != 0.0f) {
    std::vector<char> candidate(ratios.size(), 1);  // the ratios whose exact error is computed
    if constexpr (std::is_same_v<T, double>) {
      if (group.rows() == 1 && group.cols() >= clip_screen_min_length && nan_inf == 0)
        screen_clip_candidates<Kernel>(group.row(0).data(), group.cols(), lo, hi, cfg, ratios, candidate);
    }
    double best_error = std::numeric_limits<double>::infinity();
    for (std::size_t c = 0; c < ratios.size(); ++c) {
      if (candidate[c] == 0) continue;
      const double ratio = ratios[c];
      const quant_params p = make_params(lo, hi, ratio, qmin, qmax, cfg.asymmetric);
      if (p.scale == 0.0f) continue;
      double error = 0;
      for (std::size_t i = 0; i < group.rows(); ++i)
        error += Kernel::clip_error(group.row(i).data(), group.cols(), inverse_scale<T, void>(p.scale),
                                    p.zero, qmin, qmax);
      error *= static_cast<double>(p.scale) * static_cast<double>(p.scale);
      if (error < best_error) {
        best_error = error;
        best = {p, ratio};
      }
    }
  }
  report.zero_scale_count += best.params.scale == 0.0f ? 1u : 0u;
  report.clip_ratio_sum += best.ratio;
  ++report.scale_count;
  return best;
}

template <class T, class Kernel>
void quantize_segments(matrix_view<const T> x, const quant_options& cfg, packed_int4& q,
                       quant_report& report) {
  const std::size_t rows = x.rows(), cols = x.cols();
  const int qmin = grid_min(cfg.grid), qmax = grid_max(cfg.grid);
  const std::vector<double> ratios = clip_candidates(cfg);
  if constexpr (std::is_same_v<T, float>) {
    if (cfg.gran == granularity::per_group && cfg.group_size % 2 == 0) {
      // Float rows in byte-aligned groups: one kernel call per row chooses the scales and packs
      // the codes while the row is in cache (the same decisions and bytes as the path below).
      const std::size_t per_row = cols / cfg.group_size;
      group_counts counts;
      for (std::size_t i = 0; i < rows; ++i)
        Kernel::quantize_groups(x.row(i).data(), cols, cfg.group_size, ratios.data(), ratios.size(), qmin, qmax,
                                cfg.asymmetric, q.row_codes(i).data(), q.scales().data() + i * per_row,
                                cfg.asymmetric ? q.zero_points().data() + i * per_row : nullptr, counts);
      report.nan_count += counts.nan_count;
      report.inf_count += counts.inf_count;
      report.zero_scale_count += counts.zero_scale_count;
      report.scale_count += counts.scale_count;
      report.clip_ratio_sum += counts.clip_ratio_sum;
      return;
    }
  }
  // Scale groups in the order of q.scales().
  std::vector<segment_group> groups;
  if (cfg.gran == granularity::per_tensor) {
    groups.push_back({0, rows, 0, cols});
  } else if (cfg.gran == granularity::per_row) {
    for (std::size_t i = 0; i < rows; ++i) groups.push_back({i, 1, 0, cols});
  } else {
    for (std::size_t i = 0; i < rows; ++i)
      for (std::size_t j = 0; j < cols; j += cfg.group_size) groups.push_back({i, 1, j, cfg.group_size});
  }
  std::vector<std::int8_t> row_codes(cols);
  std::vector<std::uint8_t> byte_codes;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const segment_group& s = groups[g];
    const group_choice choice = choose_group<T, Kernel>(
        matrix_view<const T>(x.row(s.row0).data() + s.col0, s.nrows, s.len, x.row_stride()), cfg,
        ratios, report);
    const quant_params best = choice.params;
    q.scales()[g] = best.scale;
    if (cfg.asymmetric) q.zero_points()[g] = static_cast<std::int8_t>(best.zero);
    // Codes: float input with byte-aligned groups packs directly; otherwise int8 codes, then pack.
    const T inv = inverse_scale<T, void>(best.scale);
    for (std::size_t i = s.row0; i < s.row0 + s.nrows; ++i) {
      const T* src = x.row(i).data() + s.col0;
      std::uint8_t* dst = q.row_codes(i).data();
      if constexpr (std::is_same_v<T, float>) {
        if (s.col0 % 2 == 0 && (s.len % 2 == 0 || s.col0 + s.len == cols)) {
          Kernel::quantize_packed(src, s.len, inv, best.zero, qmin, qmax, dst + s.col0 / 2);
          continue;
        }
      }
      Kernel::quantize_codes(src, s.len, inv, best.zero, qmin, qmax, row_codes.data());
      std::size_t j = 0;
      if (s.col0 % 2 == 0) {  // whole bytes, two codes at a time (the bytes of the merge below)
        std::uint8_t* out = dst + s.col0 / 2;
        for (; j + 2 <= s.len; j += 2)
          out[j / 2] = static_cast<std::uint8_t>(to_nibble(row_codes[j]) | to_nibble(row_codes[j + 1]) << 4);
      }
      // Merge the segment's (remaining) nibbles into the row (segments of odd length share bytes).
      for (; j < s.len; ++j) {
        const std::size_t e = s.col0 + j;
        const auto shift = static_cast<unsigned>(4 * (e % 2));
        const unsigned kept = static_cast<unsigned>(dst[e / 2]) & ~(0xFu << shift);
        dst[e / 2] = static_cast<std::uint8_t>(kept | static_cast<unsigned>(to_nibble(row_codes[j])) << shift);
      }
    }
  }
}

template <class T, class Kernel>
void quantize_columns(matrix_view<const T> x, const quant_options& cfg, packed_int4& q,
                      quant_report& report) {
  const std::size_t rows = x.rows(), cols = x.cols();
  const int qmin = grid_min(cfg.grid), qmax = grid_max(cfg.grid);
  const std::vector<double> ratios = clip_candidates(cfg);
  std::vector<T> lo(cols, T(0)), hi(cols, T(0)), inv(cols);
  std::size_t nan_inf[2] = {0, 0};
  for (std::size_t i = 0; i < rows; ++i) Kernel::column_range(x.row(i).data(), cols, lo.data(), hi.data(), nan_inf);
  report.nan_count += nan_inf[0];
  report.inf_count += nan_inf[1];
  std::vector<quant_params> best(cols);
  std::vector<double> best_ratio(cols, ratios[0]);
  for (std::size_t j = 0; j < cols; ++j) best[j] = make_params(lo[j], hi[j], ratios[0], qmin, qmax, cfg.asymmetric);
  if (ratios.size() > 1) {
    std::vector<double> best_error(cols, std::numeric_limits<double>::infinity()), error(cols);
    std::vector<std::int8_t> zero(cols);
    std::vector<quant_params> p(cols);
    for (const double ratio : ratios) {
      for (std::size_t j = 0; j < cols; ++j) {
        p[j] = make_params(lo[j], hi[j], ratio, qmin, qmax, cfg.asymmetric);
        inv[j] = inverse_scale<T, void>(p[j].scale);
        zero[j] = static_cast<std::int8_t>(p[j].zero);
        error[j] = 0;
      }
      for (std::size_t i = 0; i < rows; ++i)
        Kernel::clip_error_columns(x.row(i).data(), cols, inv.data(), zero.data(), qmin, qmax, error.data());
      for (std::size_t j = 0; j < cols; ++j) {
        if (p[j].scale == 0.0f || best[j].scale == 0.0f) continue;
        const double e = error[j] * static_cast<double>(p[j].scale) * static_cast<double>(p[j].scale);
        if (e < best_error[j]) {
          best_error[j] = e;
          best[j] = p[j];
          best_ratio[j] = ratio;
        }
      }
    }
  }
  std::vector<std::int8_t> zero(cols), codes(cols);
  for (std::size_t j = 0; j < cols; ++j) {
    q.scales()[j] = best[j].scale;
    zero[j] = static_cast<std::int8_t>(best[j].zero);
    if (cfg.asymmetric) q.zero_points()[j] = zero[j];
    inv[j] = inverse_scale<T, void>(best[j].scale);
    report.zero_scale_count += best[j].scale == 0.0f ? 1u : 0u;
    report.clip_ratio_sum += best_ratio[j];
  }
  report.scale_count += cols;
  for (std::size_t i = 0; i < rows; ++i) {
    Kernel::quantize_columns(x.row(i).data(), cols, inv.data(), zero.data(), qmin, qmax, codes.data());
    pack_codes_unchecked(codes.data(), cols, q.row_codes(i).data());
  }
}

}  // namespace detail

/// Quantises x (rows x cols, float or double) into a packed INT4 tensor with cfg's grid,
/// granularity, clip and zero points (see the file comment for the exact formulas).
/// Errors: a group size that does not divide cols, clip ratio outside (0, 1], a bad search grid.
/// Example: auto q = quantize(matrix_view<const float>(w.data(), 256, 512), {.gran = granularity::per_group, .group_size = 128});
template <class T>
  requires float_or_double<T>
[[nodiscard]] packed_int4 quantize(matrix_view<const T> x, const quant_options& cfg,
                                   quant_report* report = nullptr) {
  detail::check_config(cfg, x.cols(), "quantize");
  packed_int4 q(x.rows(), x.cols(), cfg.gran, cfg.group_size, cfg.grid, cfg.asymmetric);
  if (x.empty()) return q;
  quant_report local;
  detail::dispatch([&](auto arch) {
    using kernel = detail::quant_kernel<decltype(arch)>;
    if (cfg.gran == granularity::per_column)
      detail::quantize_columns<T, kernel>(x, cfg, q, local);
    else
      detail::quantize_segments<T, kernel>(x, cfg, q, local);
  });
  if (report != nullptr) {
    report->nan_count += local.nan_count;
    report->inf_count += local.inf_count;
    report->zero_scale_count += local.zero_scale_count;
    report->scale_count += local.scale_count;
    report->clip_ratio_sum += local.clip_ratio_sum;
  }
  return q;
}
template <class T>
  requires float_or_double<T>
[[nodiscard]] packed_int4 quantize(matrix_view<T> x, const quant_options& cfg, quant_report* report = nullptr) {
  return quantize(matrix_view<const T>(x), cfg, report);
}

/// out(i, j) = (code(i, j) - zero_point) * scale, computed in float and stored as T (exact for
/// float; for double the product is formed in double). Error (nothing written): shape mismatch.
template <class T>
  requires float_or_double<T>
void dequantize(const packed_int4& q, matrix_view<T> out) {
  detail::check(out.rows() == q.rows() && out.cols() == q.cols(), "dequantize", "destination is ",
                out.rows(), " x ", out.cols(), ", tensor is ", q.rows(), " x ", q.cols());
  if (q.rows() == 0 || q.cols() == 0) return;
  const std::size_t cols = q.cols();
  const std::int8_t* zeros = q.has_zero_points() ? q.zero_points().data() : nullptr;
  const bool stream = q.rows() * cols * sizeof(T) >= SINGLEQUANT_STREAMING_THRESHOLD;
  detail::dispatch([&](auto arch) {
    using kernel = detail::quant_kernel<decltype(arch)>;
    for (std::size_t i = 0; i < q.rows(); ++i) {
      std::size_t group = cols, first = 0;  // scale index of the row's first element
      switch (q.gran()) {
        case granularity::per_tensor: break;
        case granularity::per_row: first = i; break;
        case granularity::per_column: group = 1; break;
        case granularity::per_group:
          group = q.group_size();
          first = i * (cols / group);
          break;
      }
      kernel::dequantize(q.row_codes(i).data(), cols, group, q.scales().data() + first,
                         zeros == nullptr ? nullptr : zeros + first, out.row(i).data(), stream);
    }
  });
}

/// Quantise then dequantise: out = dequantize(quantize(x, cfg)), for measuring quantisation error.
/// out may alias x (x is read completely before out is written). Errors: as quantize, and a shape
/// mismatch between x and out (nothing written).
template <class T>
  requires float_or_double<T>
void fake_quantize(std::type_identity_t<matrix_view<const T>> x, matrix_view<T> out,
                   const quant_options& cfg, quant_report* report = nullptr) {
  detail::check(out.rows() == x.rows() && out.cols() == x.cols(), "fake_quantize", "destination is ",
                out.rows(), " x ", out.cols(), ", input is ", x.rows(), " x ", x.cols());
  const packed_int4 q = quantize(x, cfg, report);
  dequantize(q, out);
}

/// Mean squared error sum (reference - approx)^2 / (rows cols), accumulated in double; 0 for an
/// empty matrix. Errors: shape mismatch; a NaN or Inf element (or a sum beyond the double range).
template <class T>
  requires float_or_double<T>
[[nodiscard]] double mse(matrix_view<const T> reference, std::type_identity_t<matrix_view<const T>> approx) {
  detail::check(reference.rows() == approx.rows() && reference.cols() == approx.cols(), "mse",
                "shapes differ: ", reference.rows(), " x ", reference.cols(), " vs ", approx.rows(),
                " x ", approx.cols());
  if (reference.empty()) return 0.0;
  double sum = 0;
  for (std::size_t i = 0; i < reference.rows(); ++i)
    for (std::size_t j = 0; j < reference.cols(); ++j) {
      const double d = static_cast<double>(reference(i, j)) - static_cast<double>(approx(i, j));
      sum += d * d;
    }
  detail::check(std::isfinite(sum), "mse", "the sum of squared differences is ", sum,
                ": a NaN or Inf element, or values too large");
  return sum / static_cast<double>(reference.size());
}
template <class T>
  requires float_or_double<T>
[[nodiscard]] double mse(matrix_view<T> reference, matrix_view<T> approx) {
  return mse(matrix_view<const T>(reference), matrix_view<const T>(approx));
}

namespace detail {

/// 10 log10(signal / noise) under sqnr_db's rules: +Inf when noise == 0 (an exact approximation,
/// an all-zero or empty reference included); an error of `function` when the signal is 0 but the
/// noise is not (no SQNR exists), or when either sum is not finite (a NaN or Inf element, or an
/// overflow).
inline double sqnr_from_sums(double signal, double noise, std::string_view function) {
  check(std::isfinite(signal) && std::isfinite(noise), function, "the sums are not finite (signal ",
        signal, ", noise ", noise, "): a NaN or Inf element, or values too large");
  if (noise == 0) return std::numeric_limits<double>::infinity();
  check(signal > 0, function, "the reference is all zero but the approximation is not (noise ",
        noise, "): the SQNR is undefined");
  return 10.0 * std::log10(signal / noise);
}

}  // namespace detail

/// Signal-to-quantisation-noise ratio in dB: 10 log10(sum reference^2 / sum (reference - approx)^2),
/// in double. +Inf when approx == reference exactly (an all-zero or empty reference included).
/// Errors: shape mismatch; an all-zero reference with approx != reference (no SQNR exists); a NaN
/// or Inf element (or sums beyond the double range), so that a bad value never averages in silently.
template <class T>
  requires float_or_double<T>
[[nodiscard]] double sqnr_db(matrix_view<const T> reference, std::type_identity_t<matrix_view<const T>> approx) {
  detail::check(reference.rows() == approx.rows() && reference.cols() == approx.cols(), "sqnr_db",
                "shapes differ: ", reference.rows(), " x ", reference.cols(), " vs ", approx.rows(),
                " x ", approx.cols());
  double signal = 0, noise = 0;
  for (std::size_t i = 0; i < reference.rows(); ++i)
    for (std::size_t j = 0; j < reference.cols(); ++j) {
      const auto r = static_cast<double>(reference(i, j));
      const double d = r - static_cast<double>(approx(i, j));
      signal += r * r;
      noise += d * d;
    }
  return detail::sqnr_from_sums(signal, noise, "sqnr_db");
}
template <class T>
  requires float_or_double<T>
[[nodiscard]] double sqnr_db(matrix_view<T> reference, matrix_view<T> approx) {
  return sqnr_db(matrix_view<const T>(reference), matrix_view<const T>(approx));
}

namespace detail {
// The fused path's body (every public overload forwards here; errors name quantize_rows_fused).
inline void quantize_rows_fused_into(matrix_view<const float> x, vector_view<std::uint8_t> codes_out,
                                     vector_view<float> scales_out, double clip_ratio, int4_grid grid,
                                     quant_report* report) {
  const std::size_t bytes_per_row = row_bytes(x.cols());
  std::size_t needed = 0;
  const bool overflow = multiply_overflows(x.rows(), bytes_per_row, needed);
  check(!overflow && codes_out.size() >= needed, "quantize_rows_fused", "codes_out has ",
        codes_out.size(), " bytes, ", x.rows(), " x ", x.cols(), " codes need ", needed);
  check(scales_out.size() >= x.rows(), "quantize_rows_fused", "scales_out has ", scales_out.size(),
        " floats, ", x.rows(), " rows need one each");
  check(clip_ratio > 0 && clip_ratio <= 1, "quantize_rows_fused", "clip ratio ", clip_ratio,
        " is outside (0, 1]");
  check_enum("quantize_rows_fused", "grid", grid, int4_grid::full8);
  if (x.rows() == 0) return;
  std::size_t nan_inf[2] = {0, 0};
  dispatch([&](auto arch) {
    quant_kernel<decltype(arch)>::quantize_rows_fused(
        x.data(), x.rows(), x.cols(), x.row_stride(), clip_ratio, grid_min(grid), codes_out.data(),
        bytes_per_row, scales_out.data(), nan_inf, needed >= SINGLEQUANT_STREAMING_THRESHOLD);
  });
  if (report != nullptr) {
    report->nan_count += nan_inf[0];
    report->inf_count += nan_inf[1];
    for (std::size_t i = 0; i < x.rows(); ++i) report->zero_scale_count += scales_out[i] == 0.0f ? 1u : 0u;
    report->scale_count += x.rows();
    report->clip_ratio_sum += clip_ratio * static_cast<double>(x.rows());
  }
}

// What the fused path computes: per_row, symmetric, no clip search (options.grid, clip_ratio).
inline void check_fused_options(const quant_options& options) {
  check(options.gran == granularity::per_row && !options.asymmetric && !options.mse_clip_search,
        "quantize_rows_fused", "the fused path is per_row, symmetric, without clip search (got granularity ",
        static_cast<int>(options.gran), ", asymmetric ", options.asymmetric, ", mse_clip_search ",
        options.mse_clip_search, "): use quantize");
}
}  // namespace detail

/// The online per-token path in one call, reading each float once from memory: for every row,
/// finite absmax (and sign, for full8) -> scale (symmetric, options.clip_ratio, options.grid as in
/// the file comment) -> codes (round half to even, clamp) -> packed nibbles.
/// codes_out receives rows * row_bytes(cols) bytes (row i at i * row_bytes(cols), canonical layout)
/// and scales_out rows floats. Bytes equal quantize(x, options) exactly.
/// Errors (nothing written): codes_out or scales_out too small, clip ratio outside (0, 1], options
/// the fused path does not compute (granularity other than per_row, asymmetric, mse_clip_search).
inline void quantize_rows_fused(matrix_view<const float> x, vector_view<std::uint8_t> codes_out,
                                vector_view<float> scales_out, const quant_options& options = {},
                                quant_report* report = nullptr) {
  detail::check_fused_options(options);
  detail::quantize_rows_fused_into(x, codes_out, scales_out, options.clip_ratio, options.grid, report);
}

/// quantize_rows_fused into a new per_row packed tensor.
/// Example: auto q = quantize_rows_fused(x, {.grid = int4_grid::full8, .clip_ratio = 0.9});
[[nodiscard]] inline packed_int4 quantize_rows_fused(matrix_view<const float> x,
                                                     const quant_options& options = {},
                                                     quant_report* report = nullptr) {
  detail::check_fused_options(options);
  detail::check_enum("quantize_rows_fused", "grid", options.grid, int4_grid::full8);
  packed_int4 q(x.rows(), x.cols(), granularity::per_row, 0, options.grid, false);
  detail::quantize_rows_fused_into(x, q.codes(), q.scales(), options.clip_ratio, options.grid, report);
  return q;
}

/// The positional form of quantize_rows_fused(x, codes_out, scales_out, {grid, per_row, 0,
/// clip_ratio}, report), kept for one minor release (options structs: CONTRIBUTING.md).
SINGLEQUANT_DEPRECATED("use quantize_rows_fused(x, codes_out, scales_out, quant_options)")
inline void quantize_rows_fused(matrix_view<const float> x, vector_view<std::uint8_t> codes_out,
                                vector_view<float> scales_out, double clip_ratio, int4_grid grid,
                                quant_report* report = nullptr) {
  detail::quantize_rows_fused_into(x, codes_out, scales_out, clip_ratio, grid, report);
}
/// The positional form of quantize_rows_fused(x, {grid, per_row, 0, clip_ratio}, report), kept for
/// one minor release.
SINGLEQUANT_DEPRECATED("use quantize_rows_fused(x, quant_options)")
[[nodiscard]] inline packed_int4 quantize_rows_fused(matrix_view<const float> x, double clip_ratio,
                                                     int4_grid grid, quant_report* report = nullptr) {
  detail::check_enum("quantize_rows_fused", "grid", grid, int4_grid::full8);
  packed_int4 q(x.rows(), x.cols(), granularity::per_row, 0, grid, false);
  detail::quantize_rows_fused_into(x, q.codes(), q.scales(), clip_ratio, grid, report);
  return q;
}

/// Quantises float rows straight into ggml Q4_0 blocks (rows * cols / 32 of them, row by row): the
/// blocks to_q4_0(quantize(x, cfg)) gives, without the packed_int4 between them and in one pass
/// over the floats (block b of row i: d = fp16(s), qs[j] = (c_j + 8) | (c_{j+16} + 8) << 4 with
/// the codes c and the float scale s of quantize). cfg must ask for per_group scales of group
/// size 32 without zero points; its grid, clip ratio and MSE clip search apply as in quantize.
/// Errors: other granularities, group sizes or zero points, cols not a multiple of 32, out not
/// holding exactly rows * cols / 32 blocks (nothing written); a scale beyond fp16's range
/// (|s| > 65504): thrown after the rows before the offending one were written (checking first would
/// take a second pass over x).
inline void quantize_q4_0(matrix_view<const float> x, vector_view<q4_0_block> out,
                          const quant_options& cfg = {.grid = int4_grid::full8,
                                                      .gran = granularity::per_group,
                                                      .group_size = 32},
                          quant_report* report = nullptr) {
  detail::check(cfg.gran == granularity::per_group && cfg.group_size == 32, "quantize_q4_0",
                "needs per_group quantisation with group size 32 (group size ", cfg.group_size, ")");
  detail::check(!cfg.asymmetric, "quantize_q4_0", "Q4_0 has no zero points; quantise symmetrically");
  detail::check_config(cfg, x.cols(), "quantize_q4_0");
  const std::size_t per_row = x.cols() / 32;
  detail::check(out.size() == x.rows() * per_row, "quantize_q4_0", x.rows(), " x ", x.cols(),
                " elements need ", x.rows() * per_row, " blocks, the output holds ", out.size());
  if (x.empty()) return;
  const int qmin = grid_min(cfg.grid);
  const std::vector<double> ratios = detail::clip_candidates(cfg);
  std::vector<float> scales(per_row);
  detail::group_counts counts;
  detail::dispatch([&](auto arch) {
    using kernel = detail::quant_kernel<decltype(arch)>;
    for (std::size_t i = 0; i < x.rows(); ++i) {
      q4_0_block* blocks = out.data() + i * per_row;
      if (kernel::quantize_q4_0(x.row(i).data(), x.cols(), ratios.data(), ratios.size(), qmin,
                                reinterpret_cast<std::uint8_t*>(blocks), scales.data(), counts))
        continue;  // every d written (the same bits as below: tests/arch/test_quant_arch.cpp)
      for (std::size_t b = 0; b < per_row; ++b) {
        const float s = scales[b];
        if (!(std::fabs(s) <= 65504.0f))
          detail::check(false, "quantize_q4_0", "scale ", s, " of row ", i, " does not fit an fp16 scale");
        blocks[b].d = float_to_half_bits(s);
      }
    }
  });
  if (report != nullptr) {
    report->nan_count += counts.nan_count;
    report->inf_count += counts.inf_count;
    report->zero_scale_count += counts.zero_scale_count;
    report->scale_count += counts.scale_count;
    report->clip_ratio_sum += counts.clip_ratio_sum;
  }
}

/// quantize_q4_0 into new blocks (nothing is returned on error).
/// Example: auto blocks = quantize_q4_0(matrix_view<const float>(w.data(), 4096, 4096));
[[nodiscard]] inline std::vector<q4_0_block> quantize_q4_0(matrix_view<const float> x,
                                                           const quant_options& cfg = {.grid = int4_grid::full8,
                                                                                       .gran = granularity::per_group,
                                                                                       .group_size = 32},
                                                           quant_report* report = nullptr) {
  std::vector<q4_0_block> out(x.cols() % 32 == 0 ? x.rows() * (x.cols() / 32) : 0);
  quantize_q4_0(x, out, cfg, report);
  return out;
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_QUANT_HPP
