// measure_sites: per-site W4A4 output SQNR of every linear layer input of the real llama2.c models
// (stories260K, pycode11M), on held-out tokens, for no rotation, the randomised Hadamard, and
// SingleQuant with each ART angle rule and URT mode, per-site and shared transforms.
//
// Activations are collected from text the model generates itself (sampled at temperature 1 from
// BOS with fixed seeds: one set of sequences for calibration, another for evaluation). W4A4 means
// per-token symmetric INT4 activations (clip 0.9) and per-output-row symmetric INT4 weights (RTN
// with an MSE clip search), both on the -7..7 grid unless --full-grid.
//
// --gptq: instead, the W4 (weights only) layer-output error on the held-out tokens of GPTQ against
// RTN with an MSE clip search (same grid and scale granularity: per row, or --group N), in three
// bases: none, the randomised Hadamard, SingleQuant (H+art+urt). GPTQ's H = X^T X comes from the
// calibration tokens in the basis the weights are quantised in; error = ||X W^T - X Q^T||^2 /
// ||X W^T||^2 in percent, and the GPTQ / RTN ratio of it.
//
// Usage: measure_sites [--models DIR] [--sequences N] [--length N] [--model NAME] [--full-grid]
//                      [--verbose] [--gptq [--group N] [--gptq-clip weight|output] [--damping X]
//                      [--clip-min X] [--clip-step X] [--refine N] [--rescale N]
//                      [--in-sample] [--calibration-sequences N] [--gptq-kind K] [--gptq-basis 0|1|2]
//                      [--act-order-only]]
// Prints one markdown table per model; a model whose file is absent is skipped with a message.
#include <singlequant/singlequant.hpp>

#include <algorithm>
#include <optional>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <formats/json.hpp>
#include <formats/llama2c_tokenizer.hpp>

#include "llama2c/forward.hpp"

namespace sq = singlequant;

namespace {

struct site_key {
  int layer;
  llama2c::site kind;
  bool operator<(const site_key& o) const {
    return layer != o.layer ? layer < o.layer : static_cast<int>(kind) < static_cast<int>(o.kind);
  }
};

struct site_data {
  std::size_t width = 0;
  std::vector<float> calibration;  // tokens x width
  std::vector<float> held_out;
  std::vector<float> weight;       // out x width: the concatenated weights reading this input
  std::size_t out_features = 0;
  std::size_t calibration_rows() const { return calibration.size() / width; }
  std::size_t held_out_rows() const { return held_out.size() / width; }
};

int sample(std::span<const float> logits, std::mt19937_64& rng) {
  const float peak = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double total = 0;
  for (std::size_t i = 0; i < logits.size(); ++i) total += p[i] = std::exp(double(logits[i] - peak));
  double u = std::uniform_real_distribution<double>(0.0, total)(rng);
  for (std::size_t i = 0; i < p.size(); ++i) {
    if ((u -= p[i]) <= 0) return static_cast<int>(i);
  }
  return static_cast<int>(p.size() - 1);
}

// Runs sampled sequences and appends each linear input to `out` (calibration or held-out).
void collect(const llama2c::model& model, std::uint64_t seed, int sequences, int length,
             std::map<site_key, site_data>& sites, bool held_out) {
  llama2c::session session(model);
  session.hooks.on_linear_input = [&](llama2c::site kind, int layer, std::span<float> x) {
    if (kind == llama2c::site::classifier) return;
    site_data& d = sites[{layer, kind}];
    d.width = x.size();
    auto& target = held_out ? d.held_out : d.calibration;
    target.insert(target.end(), x.begin(), x.end());
  };
  std::mt19937_64 rng(seed);
  for (int s = 0; s < sequences; ++s) {
    session.reset();
    int token = llama2c::tokenizer::bos_id;
    for (int pos = 0; pos < length; ++pos) {
      auto logits = session.forward(token, pos);
      token = sample(logits, rng);
      if (token == llama2c::tokenizer::eos_id) token = llama2c::tokenizer::bos_id;
    }
  }
}

void attach_weights(llama2c::model& model, std::map<site_key, site_data>& sites) {
  using llama2c::weight_id;
  for (auto& [key, d] : sites) {
    std::vector<weight_id> readers;
    switch (key.kind) {
      case llama2c::site::attn_qkv: readers = {weight_id::wq, weight_id::wk, weight_id::wv}; break;
      case llama2c::site::attn_out: readers = {weight_id::wo}; break;
      case llama2c::site::ffn_up: readers = {weight_id::w1, weight_id::w3}; break;
      case llama2c::site::ffn_down: readers = {weight_id::w2}; break;
      default: break;
    }
    for (weight_id w : readers) {
      auto m = model.linear(w, key.layer);
      d.weight.insert(d.weight.end(), m.values().begin(), m.values().end());
      d.out_features += static_cast<std::size_t>(m.out_features);
    }
  }
}

// W4A4 output SQNR (dB) of y = x W^T on the held-out rows with `transform` (nullptr: none) folded
// into both sides, via the library's own metric.
double w4a4_sqnr(const site_data& d, const sq::site_transform* transform, bool full_grid) {
  sq::quant_options activations;
  activations.grid = full_grid ? sq::int4_grid::full8 : sq::int4_grid::symmetric7;
  activations.gran = sq::granularity::per_row;  // per token
  activations.clip_ratio = 0.9;
  sq::quant_options weights = activations;       // per output row
  weights.clip_ratio = 1.0;
  weights.mse_clip_search = true;
  return sq::measure_w4a4_layer(sq::matrix_view<const float>(d.held_out, d.held_out_rows(), d.width),
                                sq::matrix_view<const float>(d.weight, d.out_features, d.width),
                                transform, activations, weights)
      .sqnr_db;
}

// Weights-only (W4) output error on the held-out rows, in percent of ||X W^T||^2, with the rows
// and the weights in the basis `transform` gives (none: as they are).
struct w4_errors {
  double rtn = 0, gptq = 0, gptq_act_order = 0;
};

double weight_only_error(const std::vector<float>& x, std::size_t rows, const std::vector<float>& w,
                         std::size_t out, std::size_t n, const sq::packed_int4& q) {
  double error = 0, signal = 0;
  std::vector<double> dq(out * n), wd(out * n);
  for (std::size_t i = 0; i < out; ++i)
    for (std::size_t k = 0; k < n; ++k) {
      wd[i * n + k] = w[i * n + k];
      dq[i * n + k] = w[i * n + k] - static_cast<double>(q.value(i, k));
    }
  rows = std::min(rows, x.size() / n);
  for (std::size_t t = 0; t < rows; ++t) {
    const float* xt = x.data() + t * n;
    for (std::size_t i = 0; i < out; ++i) {
      double y = 0, e = 0;
      for (std::size_t k = 0; k < n; ++k) {
        y += xt[k] * wd[i * n + k];
        e += xt[k] * dq[i * n + k];
      }
      signal += y * y;
      error += e * e;
    }
  }
  return 100.0 * error / signal;
}

// GPTQ options of the --gptq table (--gptq-clip, --damping, --clip-min, --clip-step); act_order
// is set per column.
sq::gptq_options gptq_knobs;
double gptq_seconds = 0;  // act-order gptq() calls plus their error measurement
bool in_sample = false;   // --in-sample: measure on the calibration tokens themselves (diagnostic)
std::string gptq_kind;   // --gptq-kind NAME: only the sites of this kind (e.g. ffn_down)
int gptq_basis = -1;      // --gptq-basis 0|1|2: only none, hadamard or H+art+urt (-1: all three)
int calibration_sequences = 0;
bool gptq_act_only = false;  // --act-order-only: skip the natural-order GPTQ column  // --calibration-sequences N: calibration sequences (0: as --sequences)

w4_errors gptq_vs_rtn(const site_data& d, const sq::site_transform* transform, const sq::quant_options& weights) {
  const std::size_t n = d.width, out = d.out_features;
  std::vector<float> w = d.weight, calibration = d.calibration, held_out = d.held_out;
  if (transform != nullptr) {
    transform->fold_into_weights(sq::matrix_view<float>(w.data(), out, n));
    transform->apply_rows(sq::matrix_view<float>(calibration.data(), d.calibration_rows(), n));
    transform->apply_rows(sq::matrix_view<float>(held_out.data(), d.held_out_rows(), n));
  }
  sq::hessian_stats h(n);
  h.accumulate(sq::matrix_view<const float>(calibration.data(), d.calibration_rows(), n));
  if (in_sample) held_out = calibration;
  const sq::matrix_view<const float> wv(w.data(), out, n);
  sq::gptq_options options = gptq_knobs;
  options.quant = weights;
  w4_errors e;
  e.rtn = weight_only_error(held_out, d.held_out_rows(), w, out, n, sq::quantize(wv, weights));
  e.gptq = gptq_act_only ? std::nan("") : weight_only_error(held_out, d.held_out_rows(), w, out, n, sq::gptq(wv, h, options));
  options.act_order = true;
  const auto start = std::chrono::steady_clock::now();
  e.gptq_act_order = weight_only_error(held_out, d.held_out_rows(), w, out, n, sq::gptq(wv, h, options));
  gptq_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return e;
}

struct variant {
  std::string name;
  bool identity = false;
  bool hadamard_only = false;
  sq::transform_options options;
  bool shared = false;  // one transform for all residual-stream sites (attn_qkv, ffn_up) of all layers
  bool joint = false;   // the joint activation + weight objective (the site's weights in the build)
};

// Command-line knobs of the joint rows (explored on calibration data with --tune).
struct joint_knobs {
  sq::weight_term_options term;
  std::size_t urt_budget = 0;  // 0: the builder's default
  double budget_factor = 0;    // > 0: URT budget round(budget_factor x n) per site
  bool compact = false;        // only the Hadamard, today's default and the joint rows
  std::size_t search_block = 0;  // URT greedy search block (0: the builder's default)
};
joint_knobs knobs;

std::vector<variant> make_variants() {
  std::vector<variant> v;
  v.push_back({"none", true, false, {}, false});
  sq::transform_options base;
  base.hadamard.randomized = true;
  base.hadamard.seed = 7;
  base.urt.search_block = knobs.search_block;
  variant had{"hadamard", false, true, base, false};
  had.options.use_art = false;
  had.options.use_urt = false;
  v.push_back(had);
  // ART alone on top of the Hadamard, each angle rule; tau_mag 4 (the default 16 flags nothing
  // once the Hadamard has spread the outliers).
  struct rule_name {
    sq::angle_rule rule;
    const char* name;
  };
  for (auto [rule, rname] : {rule_name{sq::angle_rule::l4, "l4"}, rule_name{sq::angle_rule::linf, "linf"},
                             rule_name{sq::angle_rule::energy, "energy"}}) {
    variant art{std::string("H+art-") + rname + " t4", false, false, base, false};
    art.options.use_urt = false;
    art.options.art.rule = rule;
    art.options.art.tau_mag = 4.0;
    v.push_back(art);
  }
  // ART without the Hadamard (statistics in the raw basis): what ART does on raw outliers.
  variant raw_art{"art-l4 t4 noH", false, false, base, false};
  raw_art.options.use_hadamard = false;
  raw_art.options.use_urt = false;
  raw_art.options.art.tau_mag = 4.0;
  v.push_back(raw_art);
  variant raw_full{"art+urt noH", false, false, base, false};
  raw_full.options.use_hadamard = false;
  v.push_back(raw_full);
  for (auto [mode, mname] : {std::pair{sq::urt_mode::greedy_l4, "l4"}, std::pair{sq::urt_mode::energy, "energy"},
                             std::pair{sq::urt_mode::chain, "chain"}}) {
    variant urt{std::string("H+urt-") + mname, false, false, base, false};
    urt.options.use_art = false;
    urt.options.urt.mode = mode;
    v.push_back(urt);
  }
  variant full{"H+art+urt", false, false, base, false};
  v.push_back(full);
  // The joint objective (issue 21): the same builders with the site's weights in the sums.
  for (const bool with_art : {false, true}) {
    variant joint{with_art ? "H+art+urt joint" : "H+urt-l4 joint", false, false, base, false};
    joint.options.use_art = with_art;
    joint.options.weight_term = knobs.term;
    joint.options.urt.budget = knobs.urt_budget;
    joint.joint = true;
    v.push_back(joint);
  }
  if (knobs.compact) {
    std::vector<variant> kept;
    for (auto& x : v)
      if (x.hadamard_only || x.name == "H+art+urt" || x.name == "H+art+urt joint")
        kept.push_back(x);
    for (auto& x : kept)
      if (!x.hadamard_only && !x.joint) x.options.urt.budget = knobs.urt_budget;
    return kept;
  }
  variant shared = full;
  shared.name = "H+art+urt shared";
  shared.shared = true;
  v.push_back(shared);
  return v;
}

}  // namespace

namespace {

bool verbose = false;  // --verbose: per-site outlier ratios and rotation counts on stderr
bool tune = false;     // --tune: build on the first half of the calibration text, measure on the second
std::vector<double> build_seconds;

std::string site_name(const site_key& k) {
  char buffer[64];
  const std::string_view kind = llama2c::to_string(k.kind);
  std::snprintf(buffer, sizeof buffer, "L%d %.*s", k.layer, static_cast<int>(kind.size()), kind.data());
  return buffer;
}

bool reads_residual(llama2c::site s) {
  return s == llama2c::site::attn_qkv || s == llama2c::site::ffn_up;
}

int run_gptq_table(std::map<site_key, site_data>& sites, bool full_grid, std::size_t group);

int run_model(const std::string& dir, const std::string& name, const std::string& tokenizer_file,
              int sequences, int length, bool full_grid, bool gptq, std::size_t group) {
  const std::string model_path = dir + "/" + name + ".bin";
  if (!std::filesystem::exists(model_path)) {
    std::printf("skipped %s: %s not found\n", name.c_str(), model_path.c_str());
    return 0;
  }
  static_cast<void>(tokenizer_file);
  auto model = llama2c::model::load(model_path);
  std::map<site_key, site_data> sites;
  const auto t0 = std::chrono::steady_clock::now();
  collect(model, 1234, calibration_sequences > 0 ? calibration_sequences : sequences, length, sites, false);
  if (tune) {
    // Calibration data only: the first half of the sequences builds, the second half measures.
    for (auto& [key, d] : sites) {
      const std::size_t half = d.calibration_rows() / 2 * d.width;
      d.held_out.assign(d.calibration.begin() + static_cast<std::ptrdiff_t>(half), d.calibration.end());
      d.calibration.resize(half);
    }
  } else {
    collect(model, 98765, sequences, length, sites, true);
  }
  attach_weights(model, sites);
  const auto t1 = std::chrono::steady_clock::now();
  if (tune)
    std::printf("\n## %s (--tune): built on %d, measured on %d other calibration sequences of %d sampled tokens (%.1f s)\n\n",
                name.c_str(), sequences / 2, sequences - sequences / 2, length,
                std::chrono::duration<double>(t1 - t0).count());
  else
    std::printf("\n## %s: %d calibration + %d held-out sequences of %d sampled tokens (%.1f s)\n\n",
                name.c_str(), calibration_sequences > 0 ? calibration_sequences : sequences, sequences, length,
                std::chrono::duration<double>(t1 - t0).count());

  if (gptq) return run_gptq_table(sites, full_grid, group);
  const auto variants = make_variants();
  // Shared residual-stream calibrator: every attn_qkv and ffn_up input of every layer.
  std::optional<sq::calibrator> shared;
  std::optional<sq::site_transform> shared_transform;
  {
    const variant* full = nullptr;  // the shared variant's rules
    for (const auto& v : variants)
      if (v.shared) full = &v;
    for (auto& [key, d] : sites) {
      if (full == nullptr) break;
      if (!reads_residual(key.kind)) continue;
      if (!shared) shared.emplace(d.width, full->options);
      shared->observe(sq::matrix_view<const float>(d.calibration, d.calibration_rows(), d.width));
    }
    if (shared) shared_transform = shared->build();
  }

  std::printf("| site | n | tokens |");
  for (const auto& v : variants) std::printf(" %s |", v.name.c_str());
  std::printf("\n|---|---|---|");
  for (std::size_t i = 0; i < variants.size(); ++i) std::printf("---|");
  std::printf("\n");
  std::vector<double> sums(variants.size(), 0.0), residual_sums(variants.size(), 0.0);
  std::vector<double> gains(variants.size(), 0.0);
  int residual_sites = 0;
  std::vector<int> wins(variants.size(), 0), losses(variants.size(), 0);
  build_seconds.assign(variants.size(), 0.0);
  const std::size_t first_rotated = knobs.compact ? 1 : 2;
  int counted = 0;
  for (auto& [key, d] : sites) {
    const sq::matrix_view<const float> calibration(d.calibration, d.calibration_rows(), d.width);
    const std::size_t hadamard_column = 1;  // "hadamard": second variant (compact: first)
    const variant& reference = knobs.compact ? variants[0] : variants[hadamard_column];
    sq::calibrator calibrator(d.width, reference.options);
    calibrator.observe(calibration);
    sq::transform_options raw_basis = reference.options;
    raw_basis.use_hadamard = false;
    sq::calibrator raw_calibrator(d.width, raw_basis);
    raw_calibrator.observe(calibration);
    if (verbose) {
      std::vector<double> peaks(d.width);
      for (std::size_t k = 0; k < d.width; ++k) peaks[k] = raw_calibrator.stats().absmax(k);
      std::vector<double> sorted = peaks;
      std::sort(sorted.begin(), sorted.end());
      std::fprintf(stderr, "%s: raw absmax max/median %.1f, top3 %.2f %.2f %.2f median %.3f\n", site_name(key).c_str(),
                   sorted.back() / sorted[sorted.size() / 2], sorted.back(), sorted[sorted.size() - 2], sorted[sorted.size() - 3], sorted[sorted.size() / 2]);
    }
    std::printf("| %s | %zu | %zu |", site_name(key).c_str(), d.width, d.held_out_rows());
    std::vector<double> row(variants.size(), std::nan(""));
    for (std::size_t v = 0; v < variants.size(); ++v) {
      const variant& var = variants[v];
      if (var.identity) {
        row[v] = w4a4_sqnr(d, nullptr, full_grid);
      } else if (var.shared) {
        if (!reads_residual(key.kind)) continue;
        row[v] = w4a4_sqnr(d, &*shared_transform, full_grid);
      } else {
        const sq::matrix_view<const float> weights[] = {
            sq::matrix_view<const float>(d.weight, d.out_features, d.width)};
        const auto start = std::chrono::steady_clock::now();
        const sq::calibrator& source = var.options.use_hadamard ? calibrator : raw_calibrator;
        sq::transform_options rules = var.options;
        if (knobs.budget_factor > 0 && (var.joint || knobs.compact))
          rules.urt.budget = static_cast<std::size_t>(std::lround(knobs.budget_factor * static_cast<double>(d.width)));
        const sq::site_transform t =
            var.joint ? source.build(std::span<const sq::matrix_view<const float>>(weights), rules)
                      : source.build(rules);
        build_seconds[v] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (verbose) std::fprintf(stderr, "%s %s: art outliers %zu rotations %zu, urt rotations %zu\n", site_name(key).c_str(), var.name.c_str(), t.report().art.outliers, t.report().art.rotations, t.report().urt.rotations);
        row[v] = w4a4_sqnr(d, &t, full_grid);
      }
    }
    const double hadamard = row[knobs.compact ? 0 : hadamard_column];
    for (std::size_t v = 0; v < variants.size(); ++v) {
      if (std::isnan(row[v])) {
        std::printf(" - |");
      } else {
        std::printf(" %.2f |", row[v]);
      }
    }
    std::printf("\n");
    ++counted;
    residual_sites += reads_residual(key.kind) ? 1 : 0;
    for (std::size_t v = 0; v < variants.size(); ++v) {
      if (std::isnan(row[v])) continue;
      sums[v] += row[v];
      if (reads_residual(key.kind)) residual_sums[v] += row[v];
      if (v >= first_rotated && row[v] > hadamard + 1e-9) ++wins[v];
      if (v >= first_rotated && row[v] < hadamard - 1e-9) ++losses[v];
      if (v >= first_rotated) gains[v] += row[v] - hadamard;
    }
    std::fflush(stdout);
  }
  std::printf("| **mean, all sites** | | |");
  for (std::size_t v = 0; v < variants.size(); ++v) {
    if (variants[v].shared) std::printf(" - |");
    else std::printf(" %.2f |", sums[v] / counted);
  }
  std::printf("\n| **mean, residual-stream sites** | | |");
  for (std::size_t v = 0; v < variants.size(); ++v) std::printf(" %.2f |", residual_sums[v] / residual_sites);
  std::printf("\n\nSites where a SingleQuant variant beats the Hadamard (of %d):", counted);
  for (std::size_t v = first_rotated; v < variants.size(); ++v) std::printf(" %s %d;", variants[v].name.c_str(), wins[v]);
  std::printf("\n\n| variant | mean dB over the Hadamard | sites above | sites below | build s (all sites) |\n|---|---|---|---|---|\n");
  for (std::size_t v = first_rotated; v < variants.size(); ++v) {
    if (variants[v].shared) continue;
    std::printf("| %s | %+.3f | %d | %d | %.3f |\n", variants[v].name.c_str(), gains[v] / counted, wins[v],
                losses[v], build_seconds[v]);
  }
  return 0;
}

int run_gptq_table(std::map<site_key, site_data>& sites, bool full_grid, std::size_t group) {
  sq::quant_options weights;
  weights.grid = full_grid ? sq::int4_grid::full8 : sq::int4_grid::symmetric7;
  weights.gran = group == 0 ? sq::granularity::per_row : sq::granularity::per_group;
  weights.group_size = group;
  weights.mse_clip_search = true;
  const auto variants = make_variants();
  const variant& hadamard = variants[1];
  const variant& full = variants[variants.size() - 2];  // H+art+urt, per site
  const char* bases[] = {"none", "hadamard", "H+art+urt"};
  std::printf("W4 output error, %% of ||X W^T||^2 (held-out); GPTQ / RTN ratio of it; GPTQ act-order = "
              "columns by decreasing H_jj\n\n| site | n | out |");
  for (const char* b : bases) std::printf(" %s RTN | GPTQ | act-order | ratio |", b);
  std::printf("\n|---|---|---|");
  for (int b = 0; b < 3; ++b) std::printf("---|---|---|---|");
  std::printf("\n");
  double ratio_sum[3] = {0, 0, 0}, ratio_max[3] = {0, 0, 0}, plain_sum[3] = {0, 0, 0};
  int counted = 0;
  for (auto& [key, d] : sites) {
    if (group != 0 && d.width % group != 0) continue;
    if (!gptq_kind.empty() && llama2c::to_string(key.kind) != gptq_kind) continue;
    sq::calibrator calibrator(d.width, hadamard.options);
    calibrator.observe(sq::matrix_view<const float>(d.calibration, d.calibration_rows(), d.width));
    const sq::site_transform had = calibrator.build(hadamard.options);
    const sq::site_transform single = gptq_basis < 0 || gptq_basis == 2 ? calibrator.build(full.options) : had;
    const sq::site_transform* transforms[] = {nullptr, &had, &single};
    std::printf("| %s | %zu | %zu |", site_name(key).c_str(), d.width, d.out_features);
    for (int b = 0; b < 3; ++b) {
      if (gptq_basis >= 0 && b != gptq_basis) {
        std::printf(" - | - | - | - |");
        continue;
      }
      const w4_errors e = gptq_vs_rtn(d, transforms[b], weights);
      const double ratio = e.gptq_act_order / e.rtn;
      std::printf(" %.3f | %.3f | %.3f | %.2f |", e.rtn, e.gptq, e.gptq_act_order, ratio);
      ratio_sum[b] += ratio;
      ratio_max[b] = std::max(ratio_max[b], ratio);
      plain_sum[b] += e.gptq / e.rtn;
    }
    std::printf("\n");
    std::fflush(stdout);
    ++counted;
  }
  if (counted == 0) return 0;
  std::printf("\nGPTQ act-order / RTN, mean (max) over %d sites:", counted);
  for (int b = 0; b < 3; ++b) std::printf(" %s %.2f (%.2f);", bases[b], ratio_sum[b] / counted, ratio_max[b]);
  std::printf("\nGPTQ (natural order) / RTN, mean:");
  for (int b = 0; b < 3; ++b) std::printf(" %s %.2f;", bases[b], plain_sum[b] / counted);
  std::printf("\nact-order gptq() + its error, all sites and bases: %.2f s\n", gptq_seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = SINGLEQUANT_MODELS_DIR;
  if (const char* env = std::getenv("SINGLEQUANT_MODELS_DIR")) dir = env;
  int sequences = 4, length = 128;
  bool full_grid = false, gptq = false;
  std::size_t group = 0;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--models" && i + 1 < argc) dir = argv[++i];
    else if (arg == "--sequences" && i + 1 < argc) sequences = std::atoi(argv[++i]);
    else if (arg == "--length" && i + 1 < argc) length = std::atoi(argv[++i]);
    else if (arg == "--model" && i + 1 < argc) only = argv[++i];
    else if (arg == "--full-grid") full_grid = true;
    else if (arg == "--verbose") verbose = true;
    else if (arg == "--gptq") gptq = true;
    else if (arg == "--group" && i + 1 < argc) group = static_cast<std::size_t>(std::atoi(argv[++i]));
    else if (arg == "--tune") tune = true;
    else if (arg == "--gptq-clip" && i + 1 < argc) {
      const std::string mode = argv[++i];
      gptq_knobs.clip_search = mode == "output" ? sq::gptq_clip_search::output : sq::gptq_clip_search::weight;
    } else if (arg == "--damping" && i + 1 < argc) gptq_knobs.damping = std::atof(argv[++i]);
    else if (arg == "--clip-min" && i + 1 < argc) gptq_knobs.output_clip_min = std::atof(argv[++i]);
    else if (arg == "--clip-step" && i + 1 < argc) gptq_knobs.output_clip_step = std::atof(argv[++i]);
    else if (arg == "--in-sample") in_sample = true;
    else if (arg == "--gptq-kind" && i + 1 < argc) gptq_kind = argv[++i];
    else if (arg == "--gptq-basis" && i + 1 < argc) gptq_basis = std::atoi(argv[++i]);
    else if (arg == "--act-order-only") gptq_act_only = true;
    else if (arg == "--rescale" && i + 1 < argc) gptq_knobs.rescale_passes = static_cast<std::size_t>(std::atol(argv[++i]));
    else if (arg == "--calibration-sequences" && i + 1 < argc) calibration_sequences = std::atoi(argv[++i]);
    else if (arg == "--refine" && i + 1 < argc) gptq_knobs.refine_passes = static_cast<std::size_t>(std::atol(argv[++i]));
    else if (arg == "--compact") knobs.compact = true;
    else if (arg == "--lambda" && i + 1 < argc) knobs.term.lambda = std::atof(argv[++i]);
    else if (arg == "--weight-rows" && i + 1 < argc) knobs.term.max_rows = static_cast<std::size_t>(std::atol(argv[++i]));
    else if (arg == "--energy-rows") knobs.term.weighting = sq::weight_row_weighting::energy;
    else if (arg == "--budget-factor" && i + 1 < argc) knobs.budget_factor = std::atof(argv[++i]);
    else if (arg == "--search-block" && i + 1 < argc) knobs.search_block = static_cast<std::size_t>(std::atol(argv[++i]));
    else if (arg == "--budget" && i + 1 < argc) knobs.urt_budget = static_cast<std::size_t>(std::atol(argv[++i]));
    else {
      std::fprintf(stderr, "usage: %s [--models DIR] [--sequences N] [--length N] [--model NAME] [--full-grid] [--verbose]\n"
                   "          [--gptq [--group N] [--gptq-clip weight|output] [--damping X] [--clip-min X] [--clip-step X] [--refine N] [--rescale N] [--in-sample] [--calibration-sequences N] [--gptq-kind K] [--gptq-basis 0|1|2] [--act-order-only]] [--tune] [--compact] [--lambda X] [--weight-rows N] [--energy-rows]\n"
                   "          [--budget N] [--budget-factor F] [--search-block N]\n", argv[0]);
      return 2;
    }
  }
  if (gptq) {
    std::printf("# W4 (weights only) output error per linear-layer input site, held-out tokens: GPTQ vs RTN\n");
    std::printf("weights INT4 %s, MSE clip search, grid %s\n", group == 0 ? "per row" : ("per group of " + std::to_string(group)).c_str(),
                full_grid ? "-8..7" : "-7..7");
  } else {
    std::printf("# W4A4 output SQNR (dB) per linear-layer input site, held-out tokens\n");
    std::printf("activations per-token symmetric INT4 (clip 0.9), weights per-row INT4 RTN + MSE clip, grid %s\n",
                full_grid ? "-8..7" : "-7..7");
  }
  if (only.empty() || only == "stories260K") run_model(dir, "stories260K", "tok512.bin", sequences, length, full_grid, gptq, group);
  if (only.empty() || only == "pycode11M") run_model(dir, "pycode11M", "tok_bytes512.bin", sequences, length, full_grid, gptq, group);
  return 0;
}
