// singlequant/urt.hpp - URT, the uniformity rotation for nominal outliers
// (docs/method.md section 6).
//
// Default (greedy_l4): in the rotation basis, repeatedly rotate the channel pair with the largest
// closed-form l4 decrease (1/4)(Re Z4 + |Z4|) by its optimal angle, until a rotation budget or until
// the best decrease is negligible. Every step is exact coordinate descent on
// sum_t sum_k y_tk^4 over the calibration rows: it never rises. The search keeps, per channel, the
// best partner and its gain; after a rotation of (p, q) only the gains of pairs touching p or q
// change, so one pass over the rows recomputes them (O(rows x n)); a channel whose best partner was
// p or q and whose new gains are smaller keeps its old best as an upper bound and is rescanned only
// if it reaches the top (lazy greedy: the pick is still the exact maximum).
// Options: energy (Davies-Higham: constant channel energy tr(S)/n in at most n - 1 rotations) and
// chain (DuQuant-style predetermined angles cos theta_k = 1/sqrt(b - k) spreading a spike over its
// block).
#ifndef SINGLEQUANT_URT_HPP
#define SINGLEQUANT_URT_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "angles.hpp"
#include "config.hpp"
#include "detail/moment_kernels.hpp"
#include "givens.hpp"
#include "simd.hpp"
#include "stats.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// Which uniformity rotation build_urt builds.
enum class urt_mode {
  none,       ///< no rotation
  greedy_l4,  ///< largest-l4-decrease pair first, repeatedly (default)
  energy,     ///< pair highest / lowest energy, set one to tr(S)/n, retire it (constant energy)
  chain,      ///< predetermined-angle chain from each nominal-outlier channel through its block
};

/// The smallest relative l4 decrease the greedy_l4 search accepts (urt_options::min_relative_gain).
inline constexpr double greedy_l4_noise_floor = 1e-12;

/// Candidate pairs per site the automatic search block allows: n x search_block <= this, so the
/// greedy's cost, O(rows x n x search_block), no longer grows with the width.
inline constexpr std::size_t greedy_l4_pair_budget = std::size_t{1} << 17;

/// The automatic urt_options::search_block: n (the exact greedy) while n^2 <= greedy_l4_pair_budget
/// (n <= 362), else greedy_l4_pair_budget / n rounded down to whole panels of 8, at least 8
/// (1024 -> 128, 5120 -> 24, 13824 -> 8; docs/performance.md: what each costs in time and SQNR).
[[nodiscard]] constexpr std::size_t greedy_l4_search_block(std::size_t n) noexcept {
  if (n == 0 || n <= greedy_l4_pair_budget / n) return n;
  return std::max<std::size_t>(greedy_l4_pair_budget / n / 8 * 8, 8);
}

/// Options of build_urt.
struct urt_options {
  urt_mode mode = urt_mode::greedy_l4;
  /// Rotation budget; 0 means n/2 (greedy_l4), n - 1 (energy), unlimited (chain). greedy_l4 caps it
  /// at n (n - 1) / 2, the number of planes: the greedy only approaches its optimum asymptotically,
  /// and past a sweep's worth of rotations each further one gains well under 1e-4 of the l4.
  std::size_t budget = 0;
  /// greedy_l4 with budget 0: floor(budget_per_channel x n) rotations (0.5: the n/2 above). The
  /// rule scales with the site width, so one value serves sites of different widths.
  double budget_per_channel = 0.5;
  /// greedy_l4: stop when the best decrease is below min_relative_gain x sum_t sum_k y_tk^4. Values
  /// below greedy_l4_noise_floor count as that floor: smaller decreases are rounding noise of the
  /// sum, and without a floor a budget of SIZE_MAX would never end.
  double min_relative_gain = 1e-6;
  /// greedy_l4 / energy / chain: use at most this many calibration rows (an evenly strided subset
  /// of the row sample; 0: all). The greedy costs O(rows x n) per rotation: the lever for wide sites.
  std::size_t max_rows = 0;
  /// greedy_l4: best partners remembered per channel (more: fewer full rescans, O(n x this) memory).
  std::size_t candidates = 32;
  /// greedy_l4: pairs are searched within blocks of about this many consecutive channels (of even
  /// size, whole panels of 8). One budget over all blocks: each step still rotates the best pair of
  /// any block. Cost O(rows x n x search_block) instead of O(rows x n^2). 0: automatic
  /// (greedy_l4_search_block(n)); a value >= n: the exact greedy.
  std::size_t search_block = 0;
  /// energy: channels within energy_tolerance x tr(S)/n of the mean count as done.
  double energy_tolerance = 1e-12;
  /// chain: block size b (blocks [g b, (g + 1) b), the last one may be shorter; 0: min(n, 64)).
  std::size_t chain_block = 0;
  /// chain: nominal outliers are channels with RMS > tau_nominal x the median RMS.
  double tau_nominal = 2.0;
  token_weighting weighting = token_weighting::unit_norm;  ///< tokens in the sums (stats.hpp)
};

/// A built rotation: the Givens sequence (row-vector convention, x <- x G) and what it did.
struct urt_result {
  givens_sequence<double> rotations;
  rotation_report report;
};

namespace detail {

/// greedy_l4's budget for budget 0: floor(per_channel x n) (exactly n / 2 for 0.5), at most the
/// n (n - 1) / 2 planes (clamped before the cast: a huge per_channel must not overflow size_t).
inline std::size_t greedy_default_budget(std::size_t n, double per_channel) noexcept {
  const double planes = 0.5 * static_cast<double>(n) * static_cast<double>(n - (n > 0 ? 1 : 0));
  const double want = per_channel * static_cast<double>(n);
  return want >= planes ? n * (n - (n > 0 ? 1 : 0)) / 2 : static_cast<std::size_t>(want);
}

/// Closed-form l4 decrease (1/4)(Re Z4 + |Z4|) of the pair (lo, hi), lo < hi, from its sums; the
/// operand order is fixed by (lo, hi) so the value is the same whichever row computes it.
inline double l4_gain(double s40_lo, double s04_hi, double s22, double s31_lohi, double s13_lohi) {
  const double re = (s40_lo + s04_hi) - 6.0 * s22;
  const double im = 4.0 * (s31_lohi - s13_lohi);
  return std::max(0.0, 0.25 * (re + std::hypot(re, im)));
}

/// The greedy l4 sweep on a working set (templated on the kernel architecture so tests can hold
/// every ISA path to the same bytes).
///
/// Bookkeeping: every channel k keeps its `candidates` best partners with their exact gains, sorted
/// (gain descending, partner ascending), and a floor: every partner not in the list has a gain
/// <= floor. A rotation of (p, q) changes only the gains of pairs touching p or q: rows p and q are
/// recomputed in one pass over the rows (O(rows x n)), and the new gains (k, p), (k, q) replace the
/// old entries of every other list. A channel's best is exact when its list's first gain is >= its
/// floor; otherwise the floor is an upper bound and the row is rescanned only if it reaches the top,
/// so the pick is always the exact largest gain (ties: lower channel, then lower partner).
template <class Arch>
class greedy_l4_search {
 public:
  /// Searches the channels first .. first + width of `ws` (first a multiple of 8, the panel
  /// width, so the block is addressable in place); local channel k is ws channel first + k.
  greedy_l4_search(working_set& ws, const activation_stats& stats, bool dense_start,
                   const std::vector<char>& touched_before, std::size_t candidates,
                   std::size_t first = 0, std::size_t width = 0)
      : ws_(ws), c0_(first), n_(width == 0 ? ws.dim() : width), rows_(ws.rows()),
        k_(std::max<std::size_t>(candidates, 1)), fourth_(n_), gain_(n_ * k_), partner_(n_ * k_),
        count_(n_, 0), floor_(n_, -1.0) {
    for (std::size_t k = 0; k < n_; ++k) fourth_[k] = ws.fourth(c0_ + k);
    if (dense_start && c0_ == 0 && n_ == ws.dim() && stats.has_dense_cross_moments()) {
      init_from_dense(stats, touched_before);
    } else {
      init_from_rows();
    }
  }

  /// Runs up to `budget` rotations, appending them to `out`; returns how many.
  std::size_t run(std::size_t budget, double min_relative_gain, givens_sequence<double>& out) {
    std::size_t done = 0;
    while (done < budget) {
      const double top = best();
      if (top < 0) break;
      if (!(top > min_relative_gain * fourth_total())) break;
      if (!step(out)) break;
      ++done;
    }
    return done;
  }

  /// The exact largest gain of the block (rescanning stale rows as needed), -1 when none; step()
  /// rotates its pair. Ties: the lower channel.
  double best() {
    for (;;) {
      std::size_t r = n_;
      double top = -1;
      for (std::size_t k = 0; k < n_; ++k) {
        const double bound = upper_bound(k);
        if (bound > top) {
          top = bound;
          r = k;
        }
      }
      if (r == n_ || top < 0) return -1;
      if (exact(r)) {
        best_ = r;
        return top;
      }
      rescan(with_stale_rows({r}), 0);
    }
  }

  /// sum_k y_k^4 over the block's channels.
  [[nodiscard]] double fourth_total() const noexcept {
    double total = 0;
    for (const double f : fourth_) total += f;
    return total;
  }

  /// Rotates the pair best() found by its l4-optimal angle (false: its exact decrease is not > 0,
  /// nothing done).
  bool step(givens_sequence<double>& out) {
    const std::size_t r = best_;
    const std::size_t p = partner_[r * k_];
    const std::size_t i = std::min(r, p), j = std::max(r, p);
    const angles::l4_step l4 = angles::l4_optimal(ws_.pair_moments(c0_ + i, c0_ + j));
    if (!(l4.decrease > 0)) return false;
    const auto g = givens<double>::from_angle(c0_ + i, c0_ + j, l4.theta);
    ws_.rotate(g.i, g.j, g.c, g.s);
    out.push_back(g);
    fourth_[i] = ws_.fourth(c0_ + i);
    fourth_[j] = ws_.fourth(c0_ + j);
    rescan(with_stale_rows({i, j}), 2);
    return true;
  }

 private:
  [[nodiscard]] bool exact(std::size_t k) const noexcept {
    return count_[k] > 0 && gain_[k * k_] >= floor_[k];
  }
  [[nodiscard]] double upper_bound(std::size_t k) const noexcept {
    return count_[k] > 0 ? std::max(gain_[k * k_], floor_[k]) : floor_[k];
  }

  // Sets the gain of (k, partner) in k's list (replacing an older entry of that partner).
  void offer(std::size_t k, std::size_t partner, double gain, bool replace) {
    double* g = gain_.data() + k * k_;
    std::size_t* p = partner_.data() + k * k_;
    std::size_t count = count_[k];
    if (replace) {
      for (std::size_t s = 0; s < count; ++s) {
        if (p[s] != partner) continue;
        for (std::size_t u = s + 1; u < count; ++u) {
          g[u - 1] = g[u];
          p[u - 1] = p[u];
        }
        --count;
        break;
      }
    }
    if (gain > floor_[k]) {
      std::size_t at = count;
      while (at > 0 && (g[at - 1] < gain || (g[at - 1] == gain && p[at - 1] > partner))) --at;
      if (at < k_) {
        if (count == k_) floor_[k] = std::max(floor_[k], g[k_ - 1]);  // dropped entry
        const std::size_t last = std::min(count, k_ - 1);
        for (std::size_t u = last; u > at; --u) {
          g[u] = g[u - 1];
          p[u] = p[u - 1];
        }
        g[at] = gain;
        p[at] = partner;
        count = std::min(count + 1, k_);
      } else {
        floor_[k] = std::max(floor_[k], gain);
      }
    }
    count_[k] = count;
  }

  void reset_row(std::size_t k) noexcept {
    count_[k] = 0;
    floor_[k] = -1.0;
  }

  void init_from_dense(const activation_stats& stats, const std::vector<char>& touched) {
    const auto& c22 = stats.dense_c22();
    const auto& c31 = stats.dense_c31();
    const auto& c13 = stats.dense_c13();
    const auto s4 = stats.fourth_moments();
    for (std::size_t i = 0; i < n_; ++i) {
      if (touched[i]) continue;
      for (std::size_t k = i + 1; k < n_; ++k) {
        if (touched[k]) continue;
        const std::size_t e = i * n_ + k;
        const double g = l4_gain(s4[i], s4[k], c22[e], c31[e], c13[e]);
        offer(i, k, g, false);
        offer(k, i, g, false);
      }
    }
    for (std::size_t k = 0; k < n_; ++k)
      if (touched[k]) rescan(k, k);
  }

  void init_from_rows() {
    // Scratch of rows x block: no wider than the search (blocked searches of 8 channels run by
    // the thousand).
    const std::size_t block = std::min<std::size_t>(64, n_);
    std::vector<double> w3(rows_ * block), w2(rows_ * block), w1(rows_ * block);
    std::vector<double> o31(block * n_), o22(block * n_), o13(block * n_);
    const double* y = block_data();
    for (std::size_t c0 = 0; c0 < n_; c0 += block) {
      const std::size_t m = std::min(block, n_ - c0);
      fill_weights(c0, 1, m, w3.data(), w2.data(), w1.data());
      std::fill(o31.begin(), o31.end(), 0.0);
      std::fill(o22.begin(), o22.end(), 0.0);
      std::fill(o13.begin(), o13.end(), 0.0);
      moment_kernel<Arch>::cross_fourth(y, rows_, n_, ws_.row_stride(), ws_.panel_stride(), c0,
                                        w3.data(), w2.data(), w1.data(), m, m, o31.data(),
                                        o22.data(), o13.data(), n_);
      for (std::size_t c = 0; c < m; ++c) {
        const std::size_t i = c0 + c;
        for (std::size_t k = i + 1; k < n_; ++k) {
          const std::size_t e = c * n_ + k;
          const double g = l4_gain(fourth_[i], fourth_[k], o22[e], o31[e], o13[e]);
          offer(i, k, g, false);
          offer(k, i, g, false);
        }
      }
    }
  }

  // w3 = y^3, w2 = y^2, w1 = y of channels first, first + step, ... (m of them), rows x m, with the
  // kernel's rounding order.
  void fill_weights(std::size_t first, std::size_t step, std::size_t m, double* w3, double* w2,
                    double* w1) const {
    for (std::size_t t = 0; t < rows_; ++t)
      for (std::size_t c = 0; c < m; ++c) {
        const double v = ws_.value(t, c0_ + first + c * step);
        const double v2 = v * v;
        w1[t * m + c] = v;
        w2[t * m + c] = v2;
        w3[t * m + c] = v2 * v;
      }
  }

  // Recomputes every gain of the rows in `group` (one pass over the rows for all of them) and
  // rebuilds their lists; the first `rotated` of them were just rotated, so their new gains also
  // replace the entries of every other row.
  void rescan(const std::vector<std::size_t>& group, std::size_t rotated) {
    const std::size_t m = group.size();
    // Member scratch: one rescan per rotation, thousands of them on a wide site.
    std::vector<double>&w3 = scratch_[0], &w2 = scratch_[1], &w1 = scratch_[2];
    std::vector<double>&o31 = scratch_[3], &o22 = scratch_[4], &o13 = scratch_[5];
    for (std::size_t u = 0; u < 3; ++u)
      if (scratch_[u].size() < rows_ * m) scratch_[u].resize(rows_ * m);
    for (std::size_t u = 3; u < 6; ++u) scratch_[u].assign(m * n_, 0.0);
    const double* y = block_data();
    for (std::size_t t = 0; t < rows_; ++t)
      for (std::size_t c = 0; c < m; ++c) {
        const double v = ws_.value(t, c0_ + group[c]);
        const double v2 = v * v;
        w1[t * m + c] = v;
        w2[t * m + c] = v2;
        w3[t * m + c] = v2 * v;
      }
    moment_kernel<Arch>::cross_fourth(y, rows_, n_, ws_.row_stride(), ws_.panel_stride(), 0,
                                      w3.data(), w2.data(), w1.data(), m, m, o31.data(), o22.data(),
                                      o13.data(), n_);
    std::vector<char> in_rotated(n_, 0);
    for (std::size_t c = 0; c < rotated; ++c) in_rotated[group[c]] = 1;
    for (std::size_t c = 0; c < m; ++c) reset_row(group[c]);
    for (std::size_t c = 0; c < m; ++c) {
      const std::size_t r = group[c];
      for (std::size_t k = 0; k < n_; ++k) {
        if (k == r) continue;
        const std::size_t e = c * n_ + k;
        // Canonical (lo, hi) orientation: s31 = sum y_lo^3 y_hi, s13 = sum y_lo y_hi^3.
        const double g = r < k ? l4_gain(fourth_[r], fourth_[k], o22[e], o31[e], o13[e])
                               : l4_gain(fourth_[k], fourth_[r], o22[e], o13[e], o31[e]);
        offer(r, k, g, false);
        if (c < rotated && !in_rotated[k]) offer(k, r, g, true);
      }
    }
  }
  void rescan(std::size_t a, std::size_t b) { rescan(a == b ? std::vector<std::size_t>{a} : std::vector<std::size_t>{a, b}, a == b ? 0 : 2); }

  // `group` plus the inexact rows with the largest upper bounds, up to rescan_group rows in all
  // (a pass over the rows costs about the same for 1 or 8 channels).
  std::vector<std::size_t> with_stale_rows(std::vector<std::size_t> group) const {
    std::vector<std::size_t> stale;
    for (std::size_t k = 0; k < n_; ++k)
      if (!exact(k) && upper_bound(k) >= 0 && std::find(group.begin(), group.end(), k) == group.end())
        stale.push_back(k);
    const std::size_t room = rescan_group > group.size() ? rescan_group - group.size() : 0;
    const std::size_t take = std::min(room, stale.size());
    std::partial_sort(stale.begin(), stale.begin() + static_cast<std::ptrdiff_t>(take), stale.end(),
                      [&](std::size_t x, std::size_t y) {
                        const double bx = upper_bound(x), by = upper_bound(y);
                        return bx != by ? bx > by : x < y;
                      });
    group.insert(group.end(), stale.begin(), stale.begin() + static_cast<std::ptrdiff_t>(take));
    return group;
  }
  static constexpr std::size_t rescan_group = 4;

  // The block's first column in the panel layout (c0_ % 8 == 0).
  [[nodiscard]] const double* block_data() const noexcept {
    return ws_.data() + column_offset(c0_, ws_.panel_stride());
  }

  working_set& ws_;
  std::size_t c0_, n_, rows_, k_, best_ = 0;
  std::vector<double> fourth_, gain_;
  std::vector<std::size_t> partner_, count_;
  std::vector<double> floor_;
  std::vector<double> scratch_[6];
};

/// The greedy on blocks of channels (urt_options::search_block): consecutive channels
/// [c0, c0 + block) of the rotation basis, the blocks of even size in whole panels of 8; each step
/// rotates the largest exact gain of any block (ties: the lower block, then as the exact greedy).
/// After the Hadamard the channel order carries no structure, so consecutive blocks are a uniform
/// choice of candidate pairs (ordering the channels by sum y^4 first, heavy with heavy, built
/// worse: docs/performance.md).
template <class Arch>
std::size_t blocked_greedy_l4(working_set& ws, const activation_stats& stats,
                              const std::vector<char>& touched, std::size_t candidates,
                              std::size_t block, std::size_t budget, double min_relative_gain,
                              givens_sequence<double>& out) {
  const std::size_t n = ws.dim();
  const std::size_t count = (n + block - 1) / block;
  block = std::max<std::size_t>(((n + count - 1) / count + 7) / 8 * 8, 8);  // n = 384, 336: 2 x 192
  std::vector<greedy_l4_search<Arch>> searches;
  searches.reserve(count);
  for (std::size_t c0 = 0; c0 < n; c0 += block)
    searches.emplace_back(ws, stats, false, touched, candidates, c0, std::min(block, n - c0));
  const std::size_t blocks = searches.size();
  std::vector<double> top(blocks), total(blocks);
  for (std::size_t b = 0; b < blocks; ++b) {
    top[b] = searches[b].best();
    total[b] = searches[b].fourth_total();
  }
  std::size_t done = 0;
  while (done < budget) {
    std::size_t pick = 0;
    for (std::size_t b = 1; b < blocks; ++b)
      if (top[b] > top[pick]) pick = b;
    if (top[pick] < 0) break;
    double sum = 0;
    for (const double t : total) sum += t;
    if (!(top[pick] > min_relative_gain * sum)) break;
    if (!searches[pick].step(out)) {
      top[pick] = -1;  // this block has nothing left to gain; the others may
      continue;
    }
    ++done;
    top[pick] = searches[pick].best();
    total[pick] = searches[pick].fourth_total();
  }
  return done;
}

inline void build_energy(working_set& ws, std::size_t budget, double tolerance,
                         givens_sequence<double>& out, std::size_t& rotations) {
  const std::size_t n = ws.dim();
  std::vector<double> energy(n);
  double trace = 0;
  for (std::size_t k = 0; k < n; ++k) {
    energy[k] = ws.cross_second(k, k);
    trace += energy[k];
  }
  const double mu = trace / static_cast<double>(n);
  const double band = tolerance * mu;
  std::vector<char> retired(n, 0);
  for (std::size_t k = 0; k < n; ++k) retired[k] = std::fabs(energy[k] - mu) <= band;
  while (rotations < budget) {
    std::size_t hi = n, lo = n;
    for (std::size_t k = 0; k < n; ++k) {
      if (retired[k]) continue;
      if (energy[k] > mu && (hi == n || energy[k] > energy[hi])) hi = k;
      if (energy[k] < mu && (lo == n || energy[k] < energy[lo])) lo = k;
    }
    if (hi == n || lo == n) break;
    const std::size_t i = std::min(hi, lo), j = std::max(hi, lo);
    // Rotated channel i gets energy mu; j keeps the rest (trace preserved).
    const double theta = angles::energy_to_target(energy[i], energy[j], ws.cross_second(i, j), mu);
    const auto g = givens<double>::from_angle(i, j, theta);
    ws.rotate(g.i, g.j, g.c, g.s);
    out.push_back(g);
    ++rotations;
    energy[i] = ws.cross_second(i, i);
    energy[j] = ws.cross_second(j, j);
    retired[i] = 1;
    retired[j] = std::fabs(energy[j] - mu) <= band;
  }
}

inline void build_chain(working_set& ws, const urt_options& options, std::size_t budget,
                        givens_sequence<double>& out, rotation_report& report) {
  const std::size_t n = ws.dim();
  const std::size_t b = options.chain_block == 0 ? std::min<std::size_t>(n, 64) : options.chain_block;
  std::vector<double> rms(n);
  for (std::size_t k = 0; k < n; ++k)
    rms[k] = std::sqrt(ws.cross_second(k, k) / static_cast<double>(ws.rows()));
  const double threshold = options.tau_nominal * median_of(rms);
  std::vector<std::size_t> flagged;
  for (std::size_t k = 0; k < n; ++k)
    if (rms[k] > threshold) flagged.push_back(k);
  std::sort(flagged.begin(), flagged.end(), [&](std::size_t x, std::size_t y) {
    return rms[x] != rms[y] ? rms[x] > rms[y] : x < y;
  });
  // One chain per block (the largest outlier of the block), so chains never undo each other.
  std::vector<char> block_used((n + b - 1) / b, 0);
  std::vector<std::vector<std::size_t>> chains;
  for (const std::size_t d : flagged) {
    const std::size_t g = d / b;
    if (block_used[g]) continue;
    block_used[g] = 1;
    std::vector<std::size_t> chain{d};
    for (std::size_t k = g * b; k < std::min(n, (g + 1) * b); ++k)
      if (k != d) chain.push_back(k);
    if (chain.size() >= 2) chains.push_back(std::move(chain));
  }
  report.outliers = chains.size();
  // Stage s holds step s of every chain (disjoint blocks, so they commute).
  std::size_t rotations = 0;
  for (std::size_t step = 0; rotations < budget; ++step) {
    std::vector<givens<double>> stage;
    for (const auto& chain : chains) {
      if (step + 1 >= chain.size() || rotations + stage.size() >= budget) continue;
      // cos theta_k = 1/sqrt(len - k): coordinate p_k keeps M/sqrt(len), the rest moves to p_{k+1}.
      stage.push_back(givens<double>::from_angle(chain[step], chain[step + 1],
                                                 angles::chain_angle(chain.size(), step)));
    }
    if (stage.empty()) break;
    for (const auto& g : stage) ws.rotate(g.i, g.j, g.c, g.s);
    rotations += stage.size();
    out.push_back_stage(givens_stage<double>(std::move(stage)));
  }
  report.rotations = rotations;
}

/// prebuilt != nullptr with rows: the working set make_working_set would build here and its
/// report_before figures (the caller guarantees it: same rows, weighting and max_rows, nothing
/// applied), taken over instead.
template <class Arch>
urt_result build_urt_on(const activation_stats& stats, const weight_stats* weights,
                        const givens_sequence<double>& already_applied,
                        const urt_options& options,
                        shared_working_set* prebuilt = nullptr) {
  stats.check_buildable("build_urt");
  const std::size_t n = stats.dim();
  check(already_applied.dim() == n, "build_urt", "already_applied has dimension ",
        already_applied.dim(), ", the statistics ", n);
  check_enum("build_urt", "urt_options::mode", options.mode, urt_mode::chain);
  check_enum("build_urt", "urt_options::weighting", options.weighting, token_weighting::raw);
  check(std::isfinite(options.budget_per_channel) && options.budget_per_channel >= 0, "build_urt",
        "budget_per_channel must be finite and >= 0, got ", options.budget_per_channel);
  check(std::isfinite(options.min_relative_gain) && options.min_relative_gain >= 0, "build_urt",
        "min_relative_gain must be finite and >= 0, got ", options.min_relative_gain);
  check(std::isfinite(options.energy_tolerance) && options.energy_tolerance >= 0, "build_urt",
        "energy_tolerance must be finite and >= 0, got ", options.energy_tolerance);
  check(std::isfinite(options.tau_nominal) && options.tau_nominal > 0, "build_urt",
        "tau_nominal must be finite and > 0, got ", options.tau_nominal);
  check(weights == nullptr || weights->dim() == n, "build_urt", "weight rows have ",
        weights == nullptr ? 0 : weights->dim(), " columns, the statistics ", n);
  const bool taken = prebuilt != nullptr && prebuilt->rows.has_value();
  // Nothing applied before (ART flagged nothing, the usual site): no row-major copy to rotate.
  working_set ws =
      taken ? std::move(*prebuilt->rows)
      : already_applied.rotation_count() == 0
          ? make_working_set(stats, weights, options.weighting, options.max_rows, nullptr)
          : make_working_set(stats, weights, options.weighting, options.max_rows,
                             [&](matrix_view<double> rows) { already_applied.apply_rows(rows); });
  urt_result result{givens_sequence<double>(n), {}};
  if (taken) {  // the same rows, already measured
    result.report.l4_before = prebuilt->l4;
    result.report.max_over_rms_before = prebuilt->max_over_rms;
  } else {
    report_before(result.report, ws);
  }
  switch (options.mode) {
    case urt_mode::none: break;
    case urt_mode::greedy_l4: {
      const std::size_t budget =
          std::min(options.budget == 0 ? greedy_default_budget(n, options.budget_per_channel) : options.budget,
                   n * (n - 1) / 2);
      std::vector<char> touched(n, 0);
      for (const auto& stage : already_applied.stages())
        for (const auto& g : stage.rotations()) touched[g.i] = touched[g.j] = 1;
      const bool dense_start = !ws.has_weight_rows() && stats.sample_is_complete() &&
                               options.weighting == token_weighting::raw && ws.rows() == stats.tokens();
      const double floor = std::max(options.min_relative_gain, greedy_l4_noise_floor);
      const std::size_t block =
          options.search_block == 0 ? greedy_l4_search_block(n) : options.search_block;
      if (block >= n) {
        greedy_l4_search<Arch> search(ws, stats, dense_start, touched, options.candidates);
        result.report.rotations = search.run(budget, floor, result.rotations);
      } else {
        result.report.rotations = blocked_greedy_l4<Arch>(ws, stats, touched, options.candidates,
                                                          block, budget, floor, result.rotations);
      }
      break;
    }
    case urt_mode::energy: {
      const std::size_t budget = options.budget == 0 ? n - 1 : options.budget;
      build_energy(ws, budget, options.energy_tolerance, result.rotations, result.report.rotations);
      break;
    }
    case urt_mode::chain: {
      const std::size_t budget =
          options.budget == 0 ? std::numeric_limits<std::size_t>::max() : options.budget;
      build_chain(ws, options, budget, result.rotations, result.report);
      break;
    }
  }
  // Kept in build order (consecutive disjoint rotations share a stage); site transforms regroup.
  result.report.stages = result.rotations.stages().size();
  report_after(result.report, ws);
  return result;
}

}  // namespace detail

/// Builds the URT rotation from statistics in the rotation basis, after `already_applied` (the ART
/// rotation, or an empty sequence): the builder first rotates its copy of the calibration rows by it,
/// so it sees the sums of the rotated channels. Works on the statistics' row sample.
/// Errors: statistics of zero tokens, non-finite statistics, no row sample, a dimension mismatch,
/// invalid options.
[[nodiscard]] inline urt_result build_urt(const activation_stats& stats,
                                          const givens_sequence<double>& already_applied,
                                          const urt_options& options = {}) {
  return detail::dispatch(
      [&](auto arch) { return detail::build_urt_on<decltype(arch)>(stats, nullptr, already_applied, options); });
}

/// URT on the joint objective (stats.hpp weight_term_options): every mode works on the token rows
/// and the weighted weight rows, which `already_applied` rotates too; greedy_l4 then never raises
/// the joint sum sum_t sum_k y_tk^4 + sum_i omega_i sum_k w_ik^4. An inactive weight term (lambda = 0
/// or no rows) builds exactly build_urt(stats, already_applied, options).
/// Errors: as build_urt, and weight rows of another width.
[[nodiscard]] inline urt_result build_urt(const activation_stats& stats, const weight_stats& weights,
                                          const givens_sequence<double>& already_applied,
                                          const urt_options& options = {}) {
  return detail::dispatch([&](auto arch) {
    return detail::build_urt_on<decltype(arch)>(stats, &weights, already_applied, options);
  });
}

/// build_urt with nothing applied before.
[[nodiscard]] inline urt_result build_urt(const activation_stats& stats,
                                          const urt_options& options = {}) {
  return build_urt(stats, givens_sequence<double>(stats.dim()), options);
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_URT_HPP
