// singlequant/gptq.hpp - GPTQ, the second-order weight quantiser (Frantar et al., 2022), on the
// weights in the basis they are quantised in.
//
// For W (m x n) and H = X^T X of the layer's inputs in the same basis (hessian_stats), GPTQ picks
// INT4 codes that lower the layer-output error ||X W^T - X Q^T||_F^2 = sum_i d_i H d_i^T
// (d_i = w_i - q_i) far below round-to-nearest: columns are quantised one at a time, and each
// column's error is fed back into the columns not yet quantised through the Cholesky factor of the
// inverse of H + lambda I.
//
// Formulation: U is the upper Cholesky factor of (H + lambda I)^-1 (H^-1 = U^T U), and column j's
// error e_j = (w~_j - q_j) / U_jj is fed back as w~_k <- w~_k - e_j U_jk (k > j). U is computed
// without forming the inverse: with A = J (H + lambda I) J (J the reversal) = L L^T, U = J L^-1 J,
// one Cholesky and one triangular inverse (2 n^3 / 3 flops). sum_j e_j^2 = d (H + lambda I) d^T,
// which gives the report's errors for free.
//
// Steps: dead columns (H_jj = 0: inputs never seen) are decoupled (their row and column of H taken
// as 0, H_jj as the mean live diagonal), so they round to nearest; lambda = damping x mean live
// diagonal is added (raised tenfold, up to 8 attempts, while H + lambda I is not positive
// definite to working precision); optionally columns are reordered by decreasing H_jj (act_order);
// then blocks of block_size columns are quantised with in-block feedback, and the block's feedback
// into the later columns is applied as one matrix product (lazy batch updates). A scale group's
// scale (and zero point, clip) is fixed when its first column is reached, from its current values
// w~ with quantize()'s own rules (choose_group); a block ends early where a group starts whose
// columns do not all fit in it, so that group's values are current. Codes, scales and rounding are
// exactly quantize()'s: with H = I (no feedback) the result is quantize()'s, bit for bit.
//
// Options beyond classic GPTQ (off by default): clip_search = output picks each row's clip ratio
// by the damped output error of a full sweep per candidate; rescale_passes refits the scales to
// the codes by that error and sweeps again with them fixed; refine_passes runs exact coordinate
// descent on the codes afterwards (docs/method.md section 12).
//
// Precision: H and its factor in double; W, the feedback and the codes in the precision of W (float
// or double). All cores by default; task boundaries depend on the shapes only, so the result is
// bit-identical for any thread count.
#ifndef SINGLEQUANT_GPTQ_HPP
#define SINGLEQUANT_GPTQ_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <type_traits>
#include <vector>

#include "config.hpp"
#include "detail/cholesky.hpp"
#include "detail/dense_kernels.hpp"
#include "detail/parallel.hpp"
#include "detail/quant_kernels.hpp"
#include "int4.hpp"
#include "quant.hpp"
#include "stats.hpp"
#include "view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// How gptq() picks each scale group's clip ratio (see gptq_options::clip_search).
enum class gptq_clip_search { weight, output };

/// How gptq() quantises.
struct gptq_options {
  /// Grid, granularity (per_row or per_group with group_size), zero points, clip ratio or MSE clip
  /// search per scale group: as quantize() (per_tensor and per_column are not supported).
  quant_options quant;
  double damping = 0.01;         ///< lambda = damping x mean diagonal of H over the live columns
  std::size_t block_size = 128;  ///< columns per lazy batch update
  bool act_order = false;        ///< quantise columns by decreasing H_jj (ties: lower index first)
  std::size_t threads = 0;       ///< 0: every hardware thread (the result does not depend on it)
  /// weight: each scale group's clip as quant says (its clip_ratio, or quantize()'s weight-MSE
  /// search). output: the column sweep runs once per candidate ratio 1, 1 - output_clip_step, ...
  /// >= output_clip_min (every group of a row clipped by it, quant's clip fields ignored), and each
  /// row keeps the candidate with the least sum_j e_j^2 = d (H + lambda I) d^T (rows are
  /// independent given H; ties: the larger ratio). Costs one sweep per candidate.
  gptq_clip_search clip_search = gptq_clip_search::weight;
  double output_clip_min = 0.7;
  double output_clip_step = 0.05;
  /// After the sweep, this many passes of exact coordinate descent on d (H + lambda I) d^T: per
  /// row, each code in turn becomes the grid point nearest the one-coordinate minimiser
  /// q_j + (H~ d)_j / H~_jj if that lowers the objective (scales kept). 0: plain GPTQ.
  std::size_t refine_passes = 0;
  /// Before refinement, this many rounds of: refit every scale group's scale to the codes by the
  /// damped output error (one Jacobi step s_g += (c_g . H~ d) / (c_g H~ c_g), c_g the group's codes
  /// minus zero point, d = w - q; exact least squares for per_row), then a second column sweep
  /// with those scales fixed; each row keeps the sweep's result if its damped error is lower.
  /// 0: off. Costs two m x n^2 products and one sweep per round.
  std::size_t rescale_passes = 0;
};

/// What gptq() did (overwritten by each call).
struct gptq_report {
  double damping_fraction = 0;       ///< the fraction of the mean diagonal finally used
  double damping = 0;                ///< lambda, the value added to the diagonal
  std::size_t cholesky_attempts = 0; ///< 1 unless H + lambda I needed more damping
  std::size_t dead_columns = 0;      ///< columns with H_jj = 0
  /// sum_i d_i H d_i^T with H as given (dead rows and columns as 0), d = W - Q dequantised:
  /// ||X W^T - X Q^T||_F^2 when H = X^T X.
  double output_error = 0;
  double damped_error = 0;  ///< the same with H + lambda I, GPTQ's objective
  double weight_error = 0;  ///< sum (w - q)^2
  quant_report quant;       ///< scale groups, zero scales, clip ratios (as quantize() reports)
};

namespace detail {

template <class T, class Arch>
void run_gptq(matrix_view<const T> w, matrix_view<const double> h, const gptq_options& options,
              thread_team& team, packed_int4& q, gptq_report& report) {
  using kernel = dense_kernel<T, Arch>;
  using quantiser = quant_kernel<Arch>;
  const std::size_t m = w.rows(), n = w.cols();
  const quant_options& cfg = options.quant;
  const int qmin = grid_min(cfg.grid), qmax = grid_max(cfg.grid);
  constexpr std::size_t row_task = 32, factor_rows = 64, update_rows = 256, update_cols = 256;

  // Dead columns, the mean live diagonal, the processing order (perm[p] = column at position p).
  std::vector<double> diagonal(n);
  std::vector<char> dead(n);
  double live_sum = 0;
  std::size_t live = 0;
  for (std::size_t j = 0; j < n; ++j) {
    diagonal[j] = h(j, j);
    dead[j] = diagonal[j] == 0 ? 1 : 0;
    if (dead[j] == 0) {
      live_sum += diagonal[j];
      ++live;
    }
  }
  const double mean = live > 0 ? live_sum / static_cast<double>(live) : 1.0;
  report.dead_columns = n - live;
  std::vector<std::size_t> perm(n), position(n);
  std::iota(perm.begin(), perm.end(), std::size_t{0});
  if (options.act_order)
    std::stable_sort(perm.begin(), perm.end(), [&](std::size_t a, std::size_t b) { return diagonal[a] > diagonal[b]; });
  for (std::size_t p = 0; p < n; ++p) position[perm[p]] = p;

  // Cholesky of the reversed permuted matrix: a_rs = H~_{n-1-r, n-1-s} + lambda [r = s].
  std::vector<double> a(n * n);
  double fraction = options.damping;
  std::size_t attempts = 0;
  for (;;) {
    ++attempts;
    const double lambda = fraction * mean;
    team.run((n + factor_rows - 1) / factor_rows, [&](std::size_t task) {
      for (std::size_t r = task * factor_rows; r < std::min(n, (task + 1) * factor_rows); ++r) {
        const std::size_t ca = perm[n - 1 - r];
        for (std::size_t s = 0; s <= r; ++s) {
          const std::size_t cb = perm[n - 1 - s];
          double value = 0;
          if (r == s) {
            value = (dead[ca] != 0 ? mean : diagonal[ca]) + lambda;
          } else if (dead[ca] == 0 && dead[cb] == 0) {
            value = ca < cb ? h(ca, cb) : h(cb, ca);
          }
          a[r * n + s] = value;
        }
      }
    });
    if (cholesky_lower<Arch>(a.data(), n, n, team) == n) {
      invert_lower<Arch>(a.data(), n, n, team);  // a = L^-1, U_jk = a(n - 1 - j, n - 1 - k)
      break;
    }
    check(attempts < 8, "gptq", "H + lambda I is not positive definite with lambda = ", fraction,
          " x the mean diagonal ", mean, ": H is not a second-moment matrix X^T X");
    fraction = std::max(10 * fraction, 1e-4);
  }
  report.damping_fraction = fraction;
  report.damping = fraction * mean;
  report.cholesky_attempts = attempts;

  // Feedback matrix v_jk = U_jk / U_jj (k > j) in the precision of W; U_jj kept in double.
  std::vector<double> u_diagonal(n);
  for (std::size_t j = 0; j < n; ++j) u_diagonal[j] = a[(n - 1 - j) * n + (n - 1 - j)];
  std::vector<T> v(n * n, T(0));
  team.run((n + factor_rows - 1) / factor_rows, [&](std::size_t task) {
    for (std::size_t j = task * factor_rows; j < std::min(n, (task + 1) * factor_rows); ++j) {
      const double* x_row = a.data() + (n - 1 - j) * n;
      for (std::size_t k = j + 1; k < n; ++k) v[j * n + k] = static_cast<T>(x_row[n - 1 - k] / u_diagonal[j]);
    }
  });
  std::vector<double>().swap(a);

  // Scale groups: where each is first reached and last touched in the processing order; blocks.
  const std::size_t group_size = cfg.gran == granularity::per_group ? cfg.group_size : n;
  const std::size_t groups = n / group_size;
  constexpr std::size_t none = std::numeric_limits<std::size_t>::max();
  std::vector<std::size_t> reach(groups, none), last(groups, 0), reached_at(n, none);
  for (std::size_t c = 0; c < n; ++c) {
    const std::size_t g = c / group_size;
    reach[g] = std::min(reach[g], position[c]);
    last[g] = std::max(last[g], position[c]);
  }
  for (std::size_t g = 0; g < groups; ++g) reached_at[reach[g]] = g;
  std::vector<std::size_t> bounds{0};
  while (bounds.back() < n) {
    const std::size_t b0 = bounds.back();
    std::size_t b1 = std::min(n, b0 + options.block_size);
    for (std::size_t p = b0 + 1; p < b1; ++p)
      if (reached_at[p] != none && last[reached_at[p]] >= b1) {
        b1 = p;
        break;
      }
    bounds.push_back(b1);
  }

  std::vector<T> correction(m * n);  // w~(i, p) = w(i, perm[p]) + correction[i n + p]
  std::vector<T> inverse(m * groups, T(0));
  std::vector<int> zeros(m * groups, 0);
  // Feedback of the block: q(i, p) - w~(i, p) at [(p - b0) m + i], so that correction += it x v.
  std::vector<T> feedback(std::min(options.block_size, n) * m);
  std::vector<double> damped(m), squared(m), dead_squared(m);
  std::vector<quant_report> row_reports(m);
  // One column sweep of every row with the clip candidates `ratios` (choose_group's), into `out`
  // and the per-row sums above.
  // fixed (not null): every group's scale and zero point are fixed[slot] and fixed_zeros[slot].
  const auto sweep = [&](const std::vector<double>& ratios, packed_int4& out, const float* fixed,
                         const int* fixed_zeros) {
    std::fill(correction.begin(), correction.end(), T(0));
    std::fill(damped.begin(), damped.end(), 0.0);
    std::fill(squared.begin(), squared.end(), 0.0);
    std::fill(dead_squared.begin(), dead_squared.end(), 0.0);
    std::fill(row_reports.begin(), row_reports.end(), quant_report{});
    for (std::size_t b = 0; b + 1 < bounds.size(); ++b) {
      const std::size_t b0 = bounds[b], b1 = bounds[b + 1];
      // Quantise the block's columns row by row, with feedback inside the block.
      team.run((m + row_task - 1) / row_task, [&](std::size_t task) {
        std::vector<T> values(group_size);
        for (std::size_t i = task * row_task; i < std::min(m, (task + 1) * row_task); ++i) {
          const T* wi = w.row(i).data();
          T* ci = correction.data() + i * n;
          std::uint8_t* codes = out.row_codes(i).data();
          for (std::size_t p = b0; p < b1; ++p) {
            const std::size_t col = perm[p], g = col / group_size, slot = i * groups + g;
            if (p == reach[g] && fixed != nullptr) {
              out.scales()[slot] = fixed[slot];
              if (cfg.asymmetric) out.zero_points()[slot] = static_cast<std::int8_t>(fixed_zeros[slot]);
              inverse[slot] = inverse_scale<T, void>(fixed[slot]);
              zeros[slot] = fixed_zeros[slot];
            } else if (p == reach[g]) {
              for (std::size_t t = 0; t < group_size; ++t) {
                const std::size_t member = g * group_size + t;
                values[t] = wi[member] + ci[position[member]];
              }
              const group_choice choice = choose_group<T, quantiser>(
                  matrix_view<const T>(values.data(), 1, group_size), cfg, ratios, row_reports[i]);
              out.scales()[slot] = choice.params.scale;
              if (cfg.asymmetric) out.zero_points()[slot] = static_cast<std::int8_t>(choice.params.zero);
              inverse[slot] = inverse_scale<T, void>(choice.params.scale);
              zeros[slot] = choice.params.zero;
            }
            const int zero = zeros[slot];
            const T current = wi[col] + ci[p];
            const int code = quantize_one<T, Arch>(current, inverse[slot], static_cast<T>(qmin - zero),
                                                   static_cast<T>(qmax - zero)) + zero;
            const T value = dequantize_one<T, Arch>(code, zero, out.scales()[slot]);
            const T step = value - current;
            const double e = (static_cast<double>(current) - static_cast<double>(value)) / u_diagonal[p];
            damped[i] += e * e;
            const double d = static_cast<double>(wi[col]) - static_cast<double>(value), d2 = d * d;
            squared[i] += d2;
            if (dead[col] != 0) dead_squared[i] += d2;
            const auto shift = static_cast<unsigned>(4 * (col % 2));
            const unsigned kept = static_cast<unsigned>(codes[col / 2]) & ~(0xFu << shift);
            codes[col / 2] = static_cast<std::uint8_t>(kept | static_cast<unsigned>(to_nibble(code)) << shift);
            feedback[(p - b0) * m + i] = step;
            if (p + 1 < b1) kernel::axpy(step, v.data() + p * n + p + 1, ci + p + 1, b1 - p - 1);
          }
        }
      });
      if (b1 == n) break;
      // Lazy batch update of every later column: correction[:, b1:] += F^T v[b0:b1, b1:].
      const std::size_t rest = n - b1, col_chunks = (rest + update_cols - 1) / update_cols;
      const std::size_t row_bands = (m + update_rows - 1) / update_rows;
      team.run(col_chunks * row_bands, [&](std::size_t task) {
        const std::size_t c0 = b1 + (task / row_bands) * update_cols, r0 = (task % row_bands) * update_rows;
        const std::size_t cols = std::min(update_cols, n - c0), rows = std::min(update_rows, m - r0);
        kernel::multiply_add(feedback.data() + r0, m, v.data() + b0 * n + c0, n, b1 - b0,
                             correction.data() + r0 * n + c0, n, rows, cols, false);
      });
    }
  };

  if (options.clip_search == gptq_clip_search::weight) {
    sweep(clip_candidates(cfg), q, nullptr, nullptr);
  } else {
    // One sweep per candidate ratio; each row keeps the candidate with the least damped error.
    const auto steps = static_cast<std::size_t>((1 - options.output_clip_min) / options.output_clip_step + 1e-9);
    packed_int4 trial(m, n, cfg.gran, cfg.group_size, cfg.grid, cfg.asymmetric);
    std::vector<double> best_damped(m), best_squared(m), best_dead(m);
    std::vector<quant_report> best_reports(m);
    for (std::size_t k = 0; k <= steps; ++k) {
      sweep({1.0 - static_cast<double>(k) * options.output_clip_step}, trial, nullptr, nullptr);
      for (std::size_t i = 0; i < m; ++i) {
        if (k > 0 && !(damped[i] < best_damped[i])) continue;
        best_damped[i] = damped[i];
        best_squared[i] = squared[i];
        best_dead[i] = dead_squared[i];
        best_reports[i] = row_reports[i];
        std::copy_n(trial.row_codes(i).data(), q.row_codes(i).size(), q.row_codes(i).data());
        std::copy_n(trial.scales().data() + i * groups, groups, q.scales().data() + i * groups);
        if (cfg.asymmetric)
          std::copy_n(trial.zero_points().data() + i * groups, groups, q.zero_points().data() + i * groups);
      }
    }
    damped.swap(best_damped);
    squared.swap(best_squared);
    dead_squared.swap(best_dead);
    row_reports.swap(best_reports);
  }

  // H~ (dead columns decoupled, damped) in the original column order and R = D H~ (D = W - Q), for
  // rescaling and refinement.
  std::vector<double> hd, residual;
  const auto value_of = [&](std::size_t i, std::size_t j) {
    const std::size_t slot = i * groups + j / group_size;
    return static_cast<double>(dequantize_one<T, Arch>(q.code(i, j), cfg.asymmetric ? q.zero_points()[slot] : 0,
                                                       q.scales()[slot]));
  };
  const auto compute_residual = [&] {
    std::vector<double> dt(n * m);  // D transposed
    residual.assign(m * n, 0.0);
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j)
        dt[j * m + i] = static_cast<double>(w(i, j)) - value_of(i, j);
    using double_kernel = dense_kernel<double, Arch>;
    const std::size_t row_bands = (m + update_rows - 1) / update_rows, col_chunks = (n + update_cols - 1) / update_cols;
    team.run(col_chunks * row_bands, [&](std::size_t task) {
      const std::size_t c0 = (task / row_bands) * update_cols, r0 = (task % row_bands) * update_rows;
      double_kernel::multiply_add(dt.data() + r0, m, hd.data() + c0, n, n, residual.data() + r0 * n + c0, n,
                                  std::min(update_rows, m - r0), std::min(update_cols, n - c0), false);
    });
  };
  if (options.rescale_passes > 0 || options.refine_passes > 0) {
    hd.resize(n * n);
    team.run((n + factor_rows - 1) / factor_rows, [&](std::size_t task) {
      for (std::size_t r = task * factor_rows; r < std::min(n, (task + 1) * factor_rows); ++r)
        for (std::size_t s = 0; s < n; ++s)
          hd[r * n + s] = r == s ? (dead[r] != 0 ? mean : diagonal[r]) + report.damping
                          : dead[r] == 0 && dead[s] == 0 ? (r < s ? h(r, s) : h(s, r)) : 0.0;
    });
  }

  if (options.rescale_passes > 0) {
    packed_int4 trial(m, n, cfg.gran, cfg.group_size, cfg.grid, cfg.asymmetric);
    std::vector<float> fixed(m * groups);
    std::vector<int> fixed_zeros(m * groups, 0);
    std::vector<double> kept_damped(m), kept_squared(m), kept_dead(m);
    const std::vector<quant_report> kept_reports = row_reports;
    for (std::size_t round = 0; round < options.rescale_passes; ++round) {
      compute_residual();
      team.run((m + row_task - 1) / row_task, [&](std::size_t task) {
        for (std::size_t i = task * row_task; i < std::min(m, (task + 1) * row_task); ++i) {
          const double* ri = residual.data() + i * n;
          for (std::size_t g = 0; g < groups; ++g) {
            const std::size_t slot = i * groups + g, j0 = g * group_size;
            const int zero = cfg.asymmetric ? q.zero_points()[slot] : 0;
            const float scale = q.scales()[slot];
            double along = 0, curvature = 0;  // c_g . r and c_g H~ c_g
            for (std::size_t j = j0; j < j0 + group_size; ++j) {
              const auto cj = static_cast<double>(q.code(i, j) - zero);
              if (cj == 0) continue;
              along += cj * ri[j];
              double hc = 0;
              for (std::size_t k = j0; k < j0 + group_size; ++k)
                hc += hd[j * n + k] * static_cast<double>(q.code(i, k) - zero);
              curvature += cj * hc;
            }
            const double next = scale == 0.0f || !(curvature > 0) ? 0.0 : static_cast<double>(scale) + along / curvature;
            const bool usable = next > 0 && next <= static_cast<double>(std::numeric_limits<float>::max());
            fixed[slot] = usable ? std::max(static_cast<float>(next), std::numeric_limits<float>::min()) : scale;
            fixed_zeros[slot] = zero;
          }
        }
      });
      kept_damped = damped;
      kept_squared = squared;
      kept_dead = dead_squared;
      sweep({1.0}, trial, fixed.data(), fixed_zeros.data());
      for (std::size_t i = 0; i < m; ++i) {
        if (damped[i] < kept_damped[i]) {
          std::copy_n(trial.row_codes(i).data(), q.row_codes(i).size(), q.row_codes(i).data());
          std::copy_n(trial.scales().data() + i * groups, groups, q.scales().data() + i * groups);
          if (cfg.asymmetric)
            std::copy_n(trial.zero_points().data() + i * groups, groups, q.zero_points().data() + i * groups);
        } else {
          damped[i] = kept_damped[i];
          squared[i] = kept_squared[i];
          dead_squared[i] = kept_dead[i];
        }
      }
    }
    row_reports = kept_reports;  // the scale groups as first chosen (the clip ratios they started from)
  }

  if (options.refine_passes > 0) {
    compute_residual();
    team.run((m + row_task - 1) / row_task, [&](std::size_t task) {
      for (std::size_t i = task * row_task; i < std::min(m, (task + 1) * row_task); ++i) {
        double* ri = residual.data() + i * n;
        std::uint8_t* codes = q.row_codes(i).data();
        for (std::size_t pass = 0; pass < options.refine_passes; ++pass) {
          bool changed = false;
          for (std::size_t p = 0; p < n; ++p) {
            const std::size_t col = perm[p], slot = i * groups + col / group_size;
            const float scale = q.scales()[slot];
            if (scale == 0.0f) continue;
            const int zero = cfg.asymmetric ? q.zero_points()[slot] : 0;
            const auto shift = static_cast<unsigned>(4 * (col % 2));
            const int code = from_nibble(codes[col / 2] >> shift);
            const double hjj = hd[col * n + col], old_value = static_cast<double>(dequantize_one<T, Arch>(code, zero, scale));
            const double target = old_value + ri[col] / hjj;
            const int next = std::clamp(static_cast<int>(std::lround(target / static_cast<double>(scale))) + zero, qmin, qmax);
            if (next == code) continue;
            const double delta = static_cast<double>(dequantize_one<T, Arch>(next, zero, scale)) - old_value;
            if (!(delta * (delta * hjj - 2 * ri[col]) < 0)) continue;
            const double* hc = hd.data() + col * n;
            for (std::size_t k = 0; k < n; ++k) ri[k] -= delta * hc[k];
            const unsigned kept = static_cast<unsigned>(codes[col / 2]) & ~(0xFu << shift);
            codes[col / 2] = static_cast<std::uint8_t>(kept | static_cast<unsigned>(to_nibble(next)) << shift);
            changed = true;
          }
          if (!changed) break;
        }
        // The row's sums, from its final codes.
        damped[i] = squared[i] = dead_squared[i] = 0;
        for (std::size_t j = 0; j < n; ++j) {
          const double d = static_cast<double>(w(i, j)) - value_of(i, j);
          damped[i] += d * ri[j];
          squared[i] += d * d;
          if (dead[j] != 0) dead_squared[i] += d * d;
        }
      }
    });
  }

  double damped_total = 0, squared_total = 0, dead_total = 0;
  for (std::size_t i = 0; i < m; ++i) {
    damped_total += damped[i];
    squared_total += squared[i];
    dead_total += dead_squared[i];
    report.quant.nan_count += row_reports[i].nan_count;
    report.quant.inf_count += row_reports[i].inf_count;
    report.quant.zero_scale_count += row_reports[i].zero_scale_count;
    report.quant.scale_count += row_reports[i].scale_count;
    report.quant.clip_ratio_sum += row_reports[i].clip_ratio_sum;
  }
  report.damped_error = damped_total;
  report.weight_error = squared_total;
  report.output_error = std::max(0.0, damped_total - report.damping * squared_total - mean * dead_total);
}

}  // namespace detail

/// GPTQ-quantises W (m x n, float or double, the weights as rows: y = x W^T) with H (n x n, the
/// upper triangle j >= i is read, e.g. hessian_stats::upper()) into a packed INT4 tensor with the
/// grid, granularity and clip rules of options.quant (see the file comment for the algorithm).
/// Minimises sum_i (w_i - q_i) (H + lambda I) (w_i - q_i)^T column by column.
/// Errors: H not n x n, a granularity other than per_row / per_group, quantize()'s config errors,
/// block_size 0, damping negative or not finite, a non-finite weight or |w| > FLT_MAX, a non-finite
/// entry of H or a negative diagonal, H + lambda I not positive definite in 8 attempts (damping
/// raised tenfold each time).
/// Example: auto q = gptq(matrix_view<const float>(w.data(), m, n), h.upper(), {.quant = {.gran = granularity::per_group, .group_size = 128}});
template <class T>
  requires float_or_double<T>
[[nodiscard]] packed_int4 gptq(matrix_view<const T> w, matrix_view<const double> h,
                               const gptq_options& options = {}, gptq_report* report = nullptr) {
  const std::size_t m = w.rows(), n = w.cols();
  const quant_options& cfg = options.quant;
  detail::check(h.rows() == n && h.cols() == n, "gptq", "H is ", h.rows(), " x ", h.cols(),
                ", the weights have ", n, " columns");
  detail::check(cfg.gran == granularity::per_row || cfg.gran == granularity::per_group, "gptq",
                "granularity must be per_row or per_group");
  detail::check_config(cfg, n, "gptq");
  detail::check(options.block_size >= 1, "gptq", "block size must be >= 1");
  detail::check(options.damping >= 0 && std::isfinite(options.damping), "gptq", "damping ",
                options.damping, " is not a finite value >= 0");
  detail::check_enum("gptq", "gptq_options::clip_search", options.clip_search, gptq_clip_search::output);
  if (options.clip_search == gptq_clip_search::output) {
    detail::check(options.output_clip_min > 0 && options.output_clip_min <= 1 && options.output_clip_step > 0 &&
                      (1 - options.output_clip_min) / options.output_clip_step < 1000,
                  "gptq", "output clip search from 1 down to ", options.output_clip_min, " in steps of ",
                  options.output_clip_step, " is not a grid of 1..1000 ratios in (0, 1]");
  }
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      const double value = static_cast<double>(w(i, j));
      detail::check(std::fabs(value) <= static_cast<double>(std::numeric_limits<float>::max()), "gptq",
                    "weight (", i, ", ", j, ") = ", value, " is not finite (or beyond float's range)");
    }
  for (std::size_t i = 0; i < n; ++i) {
    detail::check(h(i, i) >= 0, "gptq", "H(", i, ", ", i, ") = ", h(i, i), " is negative or NaN");
    for (std::size_t j = i; j < n; ++j)
      detail::check(std::isfinite(h(i, j)), "gptq", "H(", i, ", ", j, ") = ", h(i, j), " is not finite");
  }
  packed_int4 q(m, n, cfg.gran, cfg.group_size, cfg.grid, cfg.asymmetric);
  gptq_report local;
  if (m > 0 && n > 0) {
    detail::thread_team team(detail::resolve_threads(options.threads));
    detail::dispatch([&](auto arch) { detail::run_gptq<T, decltype(arch)>(w, h, options, team, q, local); });
  }
  if (report != nullptr) *report = local;
  return q;
}
template <class T>
  requires float_or_double<T>
[[nodiscard]] packed_int4 gptq(matrix_view<T> w, matrix_view<const double> h, const gptq_options& options = {},
                               gptq_report* report = nullptr) {
  return gptq(matrix_view<const T>(w), h, options, report);
}
/// gptq() with the statistics' H (hessian_stats::upper()).
template <class T>
  requires float_or_double<T>
[[nodiscard]] packed_int4 gptq(matrix_view<const T> w, const hessian_stats& h, const gptq_options& options = {},
                               gptq_report* report = nullptr) {
  return gptq(w, h.upper(), options, report);
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_GPTQ_HPP
