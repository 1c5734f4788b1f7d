// singlequant/model/quantize.hpp - a Llama-family decoder to W4A4 in a single pass.
//
// quantize_model(weights, calibration sequences, options):
//   1. statistics (only when a transform is built from data): the float model, norms folded, runs
//      layer by layer over the calibration sequences; each site's rows feed its calibrator (in the
//      transform's Hadamard basis). The residual sites (attention_input and ffn_input of every layer)
//      pool into one calibrator for the shared residual transform, or one per site (per_site).
//   2. build: the shared residual transform R1 (fused: zero run-time cost), and per layer the online
//      transforms R_o (o_proj input) and R_d (down input), and with residual_mode::per_site the online
//      R_a (q/k/v input) and R_f (gate/up input). A rule set without ART and URT is the (randomised)
//      Hadamard alone and needs no statistics. The builds use the joint objective of the rules'
//      weight_term (docs/method.md section 11): an online transform sees the layer's weights that
//      read its site (norms folded), the shared residual transform weight_term.max_rows / n_layers
//      sampled rows of every layer's q/k/v/gate/up; weight_term.lambda = 0 is activation-only.
//   3. fold + pack, per linear in double: W <- W diag(g) (norm gains), inputs W <- W R (R1, or the
//      site's online R), o / down outputs W <- R1^T W; then INT4 with the weight quant_options
//      (per row or per group, both grids, MSE clip search). Embedding E R1 and classifier
//      C diag(g_final) R1 stay float32 by default; the KV cache is float32.
// The quantised forward pass (quantized_model::forward) applies each site's online transform, then
// quantises the activations per token (activation quant_options) at every linear input, then runs
// the linears. Backend today: simulated (dequantised weights, float32 products in the reference
// order); the INT4 GEMM backend plugs in at detail::quantized_executor::linear.
// Threads: options.threads (0: every core). Every stage splits its work into tasks that write
// disjoint results and reduce in a fixed order, so the model is bit-identical for any thread count.
// Memory: one layer's float copy and site rows of the calibration tokens, plus the statistics.
#ifndef SINGLEQUANT_MODEL_QUANTIZE_HPP
#define SINGLEQUANT_MODEL_QUANTIZE_HPP

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "../config.hpp"
#include "../detail/float_gemm.hpp"
#include "../detail/random.hpp"
#include "../gptq.hpp"
#include "../int4.hpp"
#include "../int4_gemm.hpp"
#include "../quant.hpp"
#include "../stats.hpp"
#include "../transform.hpp"
#include "../view.hpp"
#include "forward.hpp"
#include "llama.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// How the residual-stream sites (q/k/v input, gate/up input) are transformed.
enum class residual_mode {
  none,      ///< no rotation
  shared,    ///< one transform for every residual site of every layer, fused into the weights
  per_site,  ///< an online transform per site and layer (weights folded, activations at run time)
};

/// The method presets (quantize_preset); every rule stays an option of quantize_model_options.
enum class quant_method {
  rtn,          ///< no rotation: round-to-nearest INT4 weights (MSE clip), per-token INT4 activations
  hadamard,     ///< QuaRot-style: randomised Hadamard fused on the residual stream, online at o_proj and down
  singlequant,  ///< Hadamard + ART + URT from calibration statistics: shared residual, per-layer online o_proj / down
};

/// How the linear weights are rounded to INT4 (both with the `weights` quant_options).
enum class weight_quantizer {
  rtn,   ///< round to nearest (with the config's MSE clip search)
  gptq,  ///< GPTQ (gptq.hpp) with each linear's H = X^T X in the basis it is quantised in
};

/// Everything quantize_model decides (see the file comment for the flow).
struct quantize_model_options {
  /// Weights: per output row, -7..7, MSE clip search (ratios 1.0 .. 0.5).
  quant_options weights{.grid = int4_grid::symmetric7, .gran = granularity::per_row, .group_size = 0,
                       .clip_ratio = 1.0, .asymmetric = false, .mse_clip_search = true};
  /// Activations: per token (per_row or per_group), clip 0.9 (QuaRot's default); no MSE search online.
  quant_options activations{.grid = int4_grid::symmetric7, .gran = granularity::per_row, .group_size = 0,
                           .clip_ratio = 0.9};
  residual_mode residual = residual_mode::shared;
  transform_options residual_rules;  ///< rules of the residual transform(s)
  bool online_o_proj = true;         ///< an online transform at every o_proj input
  bool online_down = true;           ///< an online transform at every down input
  transform_options online_rules;    ///< rules of the online o_proj / down transforms
  /// Per-layer Hadamard seeds are derived from the rules' seed, the layer and the site.
  bool quantize_classifier = false;  ///< INT4 classifier (weights and its input) instead of float32
  weight_quantizer quantizer = weight_quantizer::rtn;
  /// GPTQ's damping, block size and act_order (its quant and threads come from weights / threads).
  gptq_options gptq;
  std::size_t threads = 0;           ///< 0: every core
};

/// The options of a preset (Hadamard seeds from `seed`). singlequant: ART (l4) + URT (greedy l4)
/// after a randomised Hadamard on the joint activation + weight objective (weight_term, lambda 1),
/// statistics with sampled pair sums (the builders read the row sample).
[[nodiscard]] inline quantize_model_options quantize_preset(quant_method method, std::uint64_t seed = 0) {
  detail::check_enum("quantize_preset", "method", method, quant_method::singlequant);
  quantize_model_options o;
  transform_options rules;
  rules.hadamard.randomized = true;
  rules.hadamard.seed = seed;
  rules.stats.cross = cross_moments::sampled;
  switch (method) {
    case quant_method::rtn:
      o.residual = residual_mode::none;
      o.online_o_proj = o.online_down = false;
      rules.use_art = rules.use_urt = false;
      break;
    case quant_method::hadamard:
      rules.use_art = rules.use_urt = false;
      break;
    case quant_method::singlequant:
      break;
  }
  o.residual_rules = rules;
  o.online_rules = rules;
  o.online_rules.hadamard.seed = seed ^ 0x5851f42d4c957f2dULL;
  return o;
}

/// What quantize_model did, with the wall time of every stage.
struct quantize_report {
  std::size_t calibration_tokens = 0;
  double seconds_forward = 0;     ///< float forward over the calibration tokens (collecting site rows)
  double seconds_statistics = 0;  ///< calibrators observing the rows
  double seconds_build = 0;       ///< ART / URT (and Hadamards) of every transform
  double seconds_fold_pack = 0;   ///< folding norms and rotations into the weights, INT4 quantisation
  double seconds_total = 0;
  std::size_t residual_rotations = 0;  ///< Givens rotations in the residual transform(s)
  std::size_t online_rotations = 0;    ///< in the online transforms
  quant_report weights;                ///< what the weight quantiser saw (all linears)
};

/// How quantized_model::forward multiplies by its INT4 linears.
enum class w4a4_backend {
  simulated,  ///< float32 product with the dequantised weights (the reference semantics)
  int4,       ///< int4_gemm on the packed weights and the per-token packed activations
};

/// A W4A4 decoder: packed INT4 linears (and their dequantised copies for the simulated backend),
/// online transforms per site, float32 embedding / classifier / KV cache.
class quantized_model {
 public:
  struct layer {
    std::array<packed_int4, 7> linears;                    ///< by linear_kind, W (R) quantised
    std::array<std::optional<site_transform>, 4> online;   ///< by site_kind: x <- x R before quantising
  };

  quantized_model() = default;
  /// Assembles a model from its stored parts (what quantize_model produced, e.g. read back from a
  /// file), checking every shape against `config` and recomputing the dequantised weights. The
  /// configuration is untied (tied_classifier false); exactly one of `classifier` (vocab x dim
  /// floats) and `classifier_weights` (INT4, vocab x dim) is given; online transforms have their
  /// site's width, the residual transform dim. Errors name the part and the sizes.
  [[nodiscard]] static quantized_model from_parts(const llama_config& config, const quant_options& activations,
                                                  std::vector<float> embedding, std::vector<float> classifier,
                                                  std::optional<packed_int4> classifier_weights,
                                                  std::optional<site_transform> residual, std::vector<layer> layers) {
    constexpr const char* fn = "quantized_model::from_parts";
    check_config(config, fn);
    const std::size_t d = config.dim, vd = config.vocab_size * config.dim;
    detail::check(!config.tied_classifier, fn, "the configuration ties the classifier (a quantised model never does)");
    detail::check_config(activations, d, fn);
    detail::check_config(activations, config.hidden_dim, fn);
    detail::check(embedding.size() == vd, fn, "embedding of ", embedding.size(), " floats, vocab x dim is ", vd);
    const bool float_classifier = !classifier.empty();
    detail::check(float_classifier != classifier_weights.has_value(), fn,
                  "give exactly one of a float classifier and INT4 classifier weights");
    detail::check(!float_classifier || classifier.size() == vd, fn, "classifier of ", classifier.size(),
                  " floats, vocab x dim is ", vd);
    detail::check(float_classifier || (classifier_weights->rows() == config.vocab_size && classifier_weights->cols() == d),
                  fn, "INT4 classifier is not vocab x dim = ", config.vocab_size, " x ", d);
    detail::check(!residual || residual->size() == d, fn, "residual transform of width ", residual ? residual->size() : 0,
                  ", dim is ", d);
    detail::check(layers.size() == config.n_layers, fn, layers.size(), " layers, the configuration has ", config.n_layers);
    for (std::size_t l = 0; l < layers.size(); ++l) {
      for (const linear_kind kind : layer_linears) {
        const auto shape = linear_shape(config, kind);
        const packed_int4& w = layers[l].linears[static_cast<std::size_t>(kind)];
        detail::check(w.rows() == shape[0] && w.cols() == shape[1], fn, to_string(kind), " of layer ", l, " is ",
                      w.rows(), " x ", w.cols(), ", the configuration needs ", shape[0], " x ", shape[1]);
      }
      for (const site_kind site : layer_sites) {
        const auto& t = layers[l].online[static_cast<std::size_t>(site)];
        const std::size_t width = site == site_kind::down_input ? config.hidden_dim : d;
        detail::check(!t || t->size() == width, fn, "online transform of ", to_string(site), " in layer ", l,
                      " has width ", t ? t->size() : 0, ", the site ", width);
      }
    }
    quantized_model q;
    q.config_ = config;
    q.activations_ = activations;
    q.embedding_ = std::move(embedding);
    q.classifier_ = std::move(classifier);
    q.classifier_q_ = std::move(classifier_weights);
    if (q.classifier_q_) {
      q.classifier_dq_.resize(vd);
      dequantize(*q.classifier_q_, matrix_view<float>(q.classifier_dq_.data(), config.vocab_size, d));
    }
    q.residual_ = std::move(residual);
    q.layers_ = std::move(layers);
    q.dequantized_.resize(config.n_layers);
    for (std::size_t l = 0; l < config.n_layers; ++l)
      for (const linear_kind kind : layer_linears) {
        const packed_int4& w = q.layers_[l].linears[static_cast<std::size_t>(kind)];
        auto& dq = q.dequantized_[l][static_cast<std::size_t>(kind)];
        dq.resize(w.rows() * w.cols());
        dequantize(w, matrix_view<float>(dq.data(), w.rows(), w.cols()));
      }
    return q;
  }

  [[nodiscard]] const llama_config& config() const noexcept { return config_; }
  [[nodiscard]] const quant_options& activation_config() const noexcept { return activations_; }
  [[nodiscard]] std::span<const layer> layers() const noexcept { return layers_; }
  [[nodiscard]] const packed_int4& weight(std::size_t l, linear_kind kind) const {
    detail::check(l < layers_.size() && kind != linear_kind::classifier, "quantized_model::weight", "layer ", l,
                  " of ", layers_.size(), " (the classifier is classifier_weights())");
    return layers_[l].linears[static_cast<std::size_t>(kind)];
  }
  [[nodiscard]] const site_transform* online(std::size_t l, site_kind site) const noexcept {
    if (l >= layers_.size() || site == site_kind::classifier_input) return nullptr;
    const auto& t = layers_[l].online[static_cast<std::size_t>(site)];
    return t ? &*t : nullptr;
  }
  /// The residual transform fused into the weights (nullptr: none or per-site).
  [[nodiscard]] const site_transform* residual() const noexcept { return residual_ ? &*residual_ : nullptr; }
  /// Float32 embedding (vocab x dim, already rotated).
  [[nodiscard]] matrix_view<const float> embedding() const noexcept {
    return {embedding_.data(), config_.vocab_size, config_.dim};
  }
  /// Float32 classifier (vocab x dim, final norm folded and rotated); empty when quantised.
  [[nodiscard]] matrix_view<const float> classifier() const noexcept {
    return classifier_.empty() ? matrix_view<const float>() : matrix_view<const float>(classifier_.data(), config_.vocab_size, config_.dim);
  }
  [[nodiscard]] const std::optional<packed_int4>& classifier_weights() const noexcept { return classifier_q_; }
  /// The dequantised weights the simulated backend multiplies with (out x in).
  [[nodiscard]] matrix_view<const float> dequantized(std::size_t l, linear_kind kind) const {
    if (kind == linear_kind::classifier) {
      return classifier_q_ ? matrix_view<const float>(classifier_dq_.data(), config_.vocab_size, config_.dim)
                           : classifier();
    }
    const auto shape = linear_shape(config_, kind);
    return {dequantized_.at(l)[static_cast<std::size_t>(kind)].data(), shape[0], shape[1]};
  }

  /// Chooses the product of forward(). int4 repacks every INT4 linear once (int4_gemm_weights, about
  /// the packed bytes again) and quantises each site input per token with activation_config() into a
  /// packed_int4 that int4_gemm multiplies; the logits match the simulated backend up to float
  /// summation order (integer sums are exact). Errors (int4): activation scales other than per_row,
  /// asymmetric activations or weights.
  void set_backend(w4a4_backend backend) {
    constexpr const char* fn = "quantized_model::set_backend";
    detail::check_enum(fn, "backend", backend, w4a4_backend::int4);
    if (backend == w4a4_backend::simulated) {
      gemm_.clear();
      classifier_gemm_.reset();
    } else {
      detail::check(activations_.gran == granularity::per_row && !activations_.asymmetric, fn,
                    "the int4 backend needs symmetric per_row activations");
      std::vector<std::array<int4_gemm_weights, 7>> gemm(layers_.size());
      for (std::size_t l = 0; l < layers_.size(); ++l)
        for (const linear_kind kind : layer_linears)
          gemm[l][static_cast<std::size_t>(kind)] = int4_gemm_weights(layers_[l].linears[static_cast<std::size_t>(kind)]);
      if (classifier_q_) classifier_gemm_.emplace(*classifier_q_);
      gemm_ = std::move(gemm);
    }
    backend_ = backend;
  }
  [[nodiscard]] w4a4_backend backend() const noexcept { return backend_; }
  /// The int4 backend's kernel layout of a linear (nullptr with the simulated backend).
  [[nodiscard]] const int4_gemm_weights* gemm_weights(std::size_t l, linear_kind kind) const noexcept {
    if (backend_ != w4a4_backend::int4) return nullptr;
    if (kind == linear_kind::classifier) return classifier_gemm_ ? &*classifier_gemm_ : nullptr;
    return l < gemm_.size() ? &gemm_[l][static_cast<std::size_t>(kind)] : nullptr;
  }

  /// Runs tokens of one sequence through the W4A4 model (positions cache.length() + t; logits as in
  /// forward()). hooks.on_site_input sees each site input after its online transform, before the
  /// activations are quantised.
  void forward(std::span<const std::int32_t> tokens, kv_cache& cache, matrix_view<float> logits,
               const forward_hooks& hooks = {}, std::size_t sequence = 0) const;
  /// Logits of every position of one sequence from position 0 (tokens x vocab).
  [[nodiscard]] std::vector<float> logits(std::span<const std::int32_t> tokens) const {
    kv_cache cache(config_, std::max<std::size_t>(tokens.size(), 1));
    std::vector<float> out(tokens.size() * config_.vocab_size);
    forward(tokens, cache, matrix_view<float>(out.data(), tokens.size(), config_.vocab_size));
    return out;
  }

 private:
  friend quantized_model quantize_model(const llama_weights&, std::span<const std::vector<std::int32_t>>,
                                        const quantize_model_options&, quantize_report*);
  llama_config config_;
  quant_options activations_;
  std::vector<float> embedding_, classifier_, classifier_dq_;
  std::optional<packed_int4> classifier_q_;
  std::optional<site_transform> residual_;
  std::vector<layer> layers_;
  std::vector<std::array<std::vector<float>, 7>> dequantized_;
  w4a4_backend backend_ = w4a4_backend::simulated;
  std::vector<std::array<int4_gemm_weights, 7>> gemm_;
  std::optional<int4_gemm_weights> classifier_gemm_;
};

namespace detail {

/// The W4A4 executor of decoder_forward: online transform, per-token activation quantisation,
/// then the linear on the dequantised weights (the simulated backend).
struct quantized_executor {
  const quantized_model* model;
  const forward_hooks* hooks;
  mutable packed_int4 packed{};       // int4 backend: the last site input, quantised per token
  mutable bool packed_valid = false;
  void embed(std::int32_t token, float* row) const {
    const auto e = model->embedding().row(static_cast<std::size_t>(token));
    std::copy(e.begin(), e.end(), row);
  }
  [[nodiscard]] static const float* norm(site_kind, std::size_t) noexcept { return nullptr; }
  void site_input(site_id site, std::size_t sequence, matrix_view<float> x) const {
    if (const site_transform* r = model->online(site.layer, site.kind)) r->apply_rows(x);
    if (hooks != nullptr && hooks->on_site_input) hooks->on_site_input(site, sequence, x);
    packed_valid = false;
    if (site.kind == site_kind::classifier_input && !model->classifier_weights()) return;
    if (model->backend() == w4a4_backend::int4) {
      // x keeps the simulated backend's values (fake_quantize is exactly this pair).
      packed = quantize(matrix_view<const float>(x), model->activation_config());
      dequantize(packed, x);
      packed_valid = true;
      return;
    }
    fake_quantize<float>(x, x, model->activation_config());
  }
  void linear(linear_kind kind, std::size_t layer, matrix_view<const float> x, matrix_view<float> y) const {
    if (const int4_gemm_weights* w = model->gemm_weights(layer, kind); packed_valid && w != nullptr) {
      int4_gemm(packed, *w, y);
      return;
    }
    linear_float(x, model->dequantized(layer, kind), y);
  }
};

/// A per-site seed: the rules' seed mixed with the layer and the site.
inline std::uint64_t site_seed(std::uint64_t seed, std::size_t layer, site_kind site) noexcept {
  splitmix64 g{seed ^ (static_cast<std::uint64_t>(layer) << 8) ^ static_cast<std::uint64_t>(site)};
  return g.next();
}

inline bool needs_statistics(const transform_options& rules) noexcept {
  return rules.use_art || (rules.use_urt && rules.urt.mode != urt_mode::none);
}

/// A transform that needs no statistics: the (randomised) Hadamard of the rules, or nullopt for none.
inline site_transform data_free_transform(std::size_t n, const transform_options& rules, const char* fn) {
  transform_factor f;
  f.size = n;
  f.use_hadamard = rules.use_hadamard;
  f.hadamard = rules.hadamard;
  f.rotations = givens_sequence<double>(n);
  check(!rules.use_hadamard || is_hadamard_order_supported(n), fn, "no Hadamard of order ", n,
        " (a site width); turn the Hadamard off or choose another structure");
  if (rules.structure == transform_structure::kronecker) {
    const kronecker_split split = resolve_split(n, rules, fn);
    transform_factor a{split.a, rules.use_hadamard, factor_hadamard(rules, false), givens_sequence<double>(split.a)};
    transform_factor b{split.b, rules.use_hadamard, factor_hadamard(rules, true), givens_sequence<double>(split.b)};
    return site_transform(std::move(a), std::move(b));
  }
  return site_transform(std::move(f));
}

/// W (out x in, double, row-major) <- R^T W: the columns turn as row vectors.
inline void rotate_output_rows(std::vector<double>& w, std::size_t rows, std::size_t cols, const site_transform& r) {
  std::vector<double> t(rows * cols);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) t[j * rows + i] = w[i * cols + j];
  r.apply_rows(matrix_view<double>(t.data(), cols, rows));
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) w[i * cols + j] = t[j * rows + i];
}

/// The calibration executor: the float layer with folded norms, recording every site's rows.
struct calibration_executor {
  const std::array<std::vector<float>, 7>* linears;  // this layer, norms folded
  const llama_config* config;
  std::array<std::vector<float>, 4>* rows;  // by site_kind, appended
  [[nodiscard]] static const float* norm(site_kind, std::size_t) noexcept { return nullptr; }
  void site_input(site_id site, std::size_t, matrix_view<float> x) const {
    auto& out = (*rows)[static_cast<std::size_t>(site.kind)];
    for (std::size_t t = 0; t < x.rows(); ++t) out.insert(out.end(), x.row(t).begin(), x.row(t).end());
  }
  void linear(linear_kind kind, std::size_t, matrix_view<const float> x, matrix_view<float> y) const {
    const auto shape = linear_shape(*config, kind);
    linear_float(x, matrix_view<const float>((*linears)[static_cast<std::size_t>(kind)].data(), shape[0], shape[1]), y);
  }
};

using clock = std::chrono::steady_clock;
inline double seconds_since(clock::time_point start) {
  return std::chrono::duration<double>(clock::now() - start).count();
}

}  // namespace detail

inline void quantized_model::forward(std::span<const std::int32_t> tokens, kv_cache& cache,
                                     matrix_view<float> logits, const forward_hooks& hooks,
                                     std::size_t sequence) const {
  detail::check(!layers_.empty(), "quantized_model::forward", "empty model (use quantize_model)");
  detail::quantized_executor ex{this, &hooks, {}, false};
  detail::forward_scratch scratch;
  detail::decoder_forward(ex, config_, tokens, cache, logits, sequence, scratch);
}

namespace detail {

/// Layer l's float linears with the norm gains folded in (W diag(g)), by linear_kind.
inline std::array<std::vector<float>, 7> folded_linears(const llama_weights& w, std::size_t l) {
  std::array<std::vector<float>, 7> linears;
  const llama_layer_view& lw = w.layers[l];
  for (const linear_kind kind : layer_linears) {
    const matrix_view<const float> m = lw.linear(kind);
    auto& out = linears[static_cast<std::size_t>(kind)];
    out.resize(m.rows() * m.cols());
    const site_kind site = site_of(kind);
    const vector_view<const float> g = site == site_kind::attention_input ? lw.attention_norm
                                       : site == site_kind::ffn_input     ? lw.ffn_norm
                                                                          : vector_view<const float>();
    for (std::size_t r = 0; r < m.rows(); ++r)
      for (std::size_t k = 0; k < m.cols(); ++k)
        out[r * m.cols() + k] = g.empty() ? m(r, k)
                                          : static_cast<float>(static_cast<double>(m(r, k)) * static_cast<double>(g[k]));
  }
  return linears;
}

/// The float model (norms folded) run layer by layer over the calibration sequences, one layer per
/// call, giving each sequence's rows at the four sites of that layer.
class calibration_pass {
 public:
  using site_rows = std::array<std::vector<float>, 4>;  // by site_kind, tokens x width
  calibration_pass(const llama_weights& w, std::span<const std::vector<std::int32_t>> calibration,
                   std::size_t threads)
      : w_(&w), calibration_(calibration), threads_(threads) {
    const llama_config& c = w.config;
    const std::size_t S = calibration.size(), d = c.dim, kv = c.kv_dim();
    states_.resize(S);
    keys_.resize(S);
    values_.resize(S);
    for (std::size_t s = 0; s < S; ++s) {
      const auto& seq = calibration[s];
      states_[s].resize(seq.size() * d);
      for (std::size_t t = 0; t < seq.size(); ++t) {
        const auto e = w.embedding.row(static_cast<std::size_t>(seq[t]));
        std::copy(e.begin(), e.end(), states_[s].begin() + static_cast<std::ptrdiff_t>(t * d));
      }
      keys_[s].resize(seq.size() * kv);
      values_[s].resize(seq.size() * kv);
    }
  }
  /// Runs layer l (its folded linears) on every sequence; layers must come in order 0, 1, ...
  [[nodiscard]] std::vector<site_rows> layer(std::size_t l, const std::array<std::vector<float>, 7>& linears) {
    const llama_config& c = w_->config;
    std::vector<site_rows> rows(calibration_.size());
    parallel_for(calibration_.size(), threads_, [&](std::size_t s) {
      const std::size_t T = calibration_[s].size();
      if (T == 0) return;
      forward_scratch scratch;
      prepare_scratch(scratch, c, T, 0);
      std::swap(scratch.x, states_[s]);
      calibration_executor ex{&linears, &c, &rows[s]};
      decoder_layer(ex, c, l, T, 0, keys_[s].data(), values_[s].data(), s, scratch);
      std::swap(scratch.x, states_[s]);
    });
    return rows;
  }

 private:
  const llama_weights* w_;
  std::span<const std::vector<std::int32_t>> calibration_;
  std::size_t threads_;
  std::vector<std::vector<float>> states_, keys_, values_;
};

}  // namespace detail

/// Quantises a decoder to W4A4 in one pass over the calibration sequences (see the file comment).
/// Calibration sequences run from position 0 (each at most max_seq_len tokens); they are needed only
/// when a rule set builds ART or URT (rtn and hadamard need none). Errors: bad weights (shapes, or a
/// NaN or Inf parameter, named), a site
/// width the Hadamard cannot take, no calibration tokens when statistics are needed, bad quant
/// configs (group sizes that do not divide a width), tokens outside the vocabulary.
[[nodiscard]] inline quantized_model quantize_model(const llama_weights& w,
                                                    std::span<const std::vector<std::int32_t>> calibration,
                                                    const quantize_model_options& options = quantize_preset(quant_method::singlequant),
                                                    quantize_report* report = nullptr) {
  constexpr const char* fn = "quantize_model";
  detail::check_enum(fn, "quantize_model_options::residual", options.residual, residual_mode::per_site);
  check_weights_finite(w, fn);
  const llama_config& c = w.config;
  const std::size_t d = c.dim, L = c.n_layers, hidden = c.hidden_dim, threads = options.threads;
  for (const linear_kind kind : layer_linears)
    detail::check_config(options.weights, linear_shape(c, kind)[1], fn);
  detail::check_config(options.activations, d, fn);
  detail::check_config(options.activations, hidden, fn);
  const auto total_start = detail::clock::now();
  quantize_report local;

  // Which transforms exist, and which need statistics.
  const bool shared = options.residual == residual_mode::shared;
  const bool per_site = options.residual == residual_mode::per_site;
  const bool stats_residual = options.residual != residual_mode::none && detail::needs_statistics(options.residual_rules);
  const bool stats_online = (options.online_o_proj || options.online_down) && detail::needs_statistics(options.online_rules);
  auto rules_for = [&](std::size_t layer, site_kind site) {
    const bool residual_site = site == site_kind::attention_input || site == site_kind::ffn_input;
    transform_options r = residual_site ? options.residual_rules : options.online_rules;
    if (!(residual_site && shared)) r.hadamard.seed = detail::site_seed(r.hadamard.seed, layer, site);
    return r;
  };
  auto has_online = [&](site_kind site) {
    switch (site) {
      case site_kind::attention_input:
      case site_kind::ffn_input: return per_site;
      case site_kind::o_proj_input: return options.online_o_proj;
      case site_kind::down_input: return options.online_down;
      case site_kind::classifier_input: return false;
    }
    return false;
  };
  auto width_of = [&](site_kind site) { return site == site_kind::down_input ? hidden : d; };
  auto needs_stats_at = [&](site_kind site) {
    if (!has_online(site) && !(shared && (site == site_kind::attention_input || site == site_kind::ffn_input)))
      return false;
    return (site == site_kind::attention_input || site == site_kind::ffn_input) ? stats_residual : stats_online;
  };

  std::vector<std::array<std::optional<site_transform>, 4>> online(L);
  std::optional<site_transform> residual;
  std::optional<calibrator> residual_cal;
  if (shared) {
    if (stats_residual) residual_cal.emplace(d, options.residual_rules);
    else residual.emplace(detail::data_free_transform(d, options.residual_rules, fn));
  }
  // Data-free online transforms now; data-driven ones after their layer's statistics.
  for (std::size_t l = 0; l < L; ++l)
    for (const site_kind site : layer_sites)
      if (has_online(site) && !needs_stats_at(site))
        online[l][static_cast<std::size_t>(site)].emplace(detail::data_free_transform(width_of(site), rules_for(l, site), fn));

  // Calibration tokens are needed for statistics and for GPTQ's H.
  const bool use_gptq = options.quantizer == weight_quantizer::gptq;
  detail::check_enum(fn, "quantize_model_options::quantizer", options.quantizer, weight_quantizer::gptq);
  const std::size_t S = calibration.size();
  if (stats_residual || stats_online || use_gptq) {
    std::size_t tokens_total = 0;
    for (const auto& seq : calibration) {
      detail::check(seq.size() <= c.max_seq_len, fn, "a calibration sequence of ", seq.size(),
                    " tokens exceeds max_seq_len ", c.max_seq_len);
      for (std::size_t t = 0; t < seq.size(); ++t)
        detail::check(seq[t] >= 0 && static_cast<std::size_t>(seq[t]) < c.vocab_size, fn, "calibration token ", seq[t],
                      " outside the vocabulary of ", c.vocab_size);
      tokens_total += seq.size();
    }
    detail::check(tokens_total > 0, fn, use_gptq ? "GPTQ needs calibration tokens but the calibration is empty"
                                                 : "the rules build ART / URT from statistics but the calibration is empty");
    local.calibration_tokens = tokens_total;
  }

  // 1. Statistics, layer by layer over the calibration tokens (float model, norms folded).
  if (stats_residual || stats_online) {
    detail::calibration_pass pass(w, calibration, threads);
    std::vector<double> residual_weight_rows;  // sampled residual readers, all layers
    for (std::size_t l = 0; l < L; ++l) {
      auto start = detail::clock::now();
      const std::array<std::vector<float>, 7> linears = detail::folded_linears(w, l);
      // The weights that read a site (norms folded), for the joint objective (weight_term).
      auto readers = [&](site_kind site) {
        std::vector<matrix_view<const float>> views;
        for (const linear_kind kind : layer_linears)
          if (site_of(kind) == site) {
            const auto shape = linear_shape(c, kind);
            views.emplace_back(linears[static_cast<std::size_t>(kind)].data(), shape[0], shape[1]);
          }
        return views;
      };
      // The pooled residual transform reads every layer's q/k/v/gate/up: keep an equal share of
      // its row budget from each layer (only a sample outlives the layer).
      if (shared && stats_residual && options.residual_rules.weight_term.lambda > 0) {
        std::vector<matrix_view<const float>> views = readers(site_kind::attention_input);
        for (const auto& v : readers(site_kind::ffn_input)) views.push_back(v);
        const std::size_t budget = options.residual_rules.weight_term.max_rows;
        const std::size_t quota = budget == 0 ? 0 : std::max<std::size_t>(1, budget / L);
        const detail::dense_rows sample = detail::sample_weight_rows(
            std::span<const matrix_view<const float>>(views), d, quota, fn);
        residual_weight_rows.insert(residual_weight_rows.end(), sample.values.begin(), sample.values.end());
      }
      const std::vector<detail::calibration_pass::site_rows> rows = pass.layer(l, linears);
      local.seconds_forward += detail::seconds_since(start);
      // Observe: one task per calibrator, rows in sequence order; build the layer's online transforms.
      start = detail::clock::now();
      std::vector<site_kind> tasks;
      if (shared && stats_residual) tasks.push_back(site_kind::classifier_input);  // stands for the pooled residual
      for (const site_kind site : layer_sites)
        if (has_online(site) && needs_stats_at(site)) tasks.push_back(site);
      std::vector<double> build_seconds(tasks.size(), 0.0), observe_seconds(tasks.size(), 0.0);
      detail::parallel_for(tasks.size(), threads, [&](std::size_t i) {
        const site_kind site = tasks[i];
        auto observe = [&](calibrator& cal, site_kind which) {
          for (std::size_t s = 0; s < S; ++s) {
            const auto& r = rows[s][static_cast<std::size_t>(which)];
            const std::size_t width = width_of(which);
            if (!r.empty()) cal.observe(matrix_view<const float>(r.data(), r.size() / width, width));
          }
        };
        const auto t0 = detail::clock::now();
        if (site == site_kind::classifier_input) {
          observe(*residual_cal, site_kind::attention_input);
          observe(*residual_cal, site_kind::ffn_input);
          observe_seconds[i] = detail::seconds_since(t0);
          return;
        }
        calibrator cal(width_of(site), rules_for(l, site));
        observe(cal, site);
        observe_seconds[i] = detail::seconds_since(t0);
        const auto t1 = detail::clock::now();
        const std::vector<matrix_view<const float>> weights = readers(site);
        online[l][static_cast<std::size_t>(site)].emplace(
            cal.build(std::span<const matrix_view<const float>>(weights)));
        build_seconds[i] = detail::seconds_since(t1);
      });
      const double wall = detail::seconds_since(start);
      double observe_total = 0, build_total = 0;
      for (std::size_t i = 0; i < tasks.size(); ++i) {
        observe_total += observe_seconds[i];
        build_total += build_seconds[i];
      }
      // Split the stage's wall time between observing and building in proportion to their work.
      const double busy = observe_total + build_total;
      local.seconds_statistics += busy > 0 ? wall * observe_total / busy : wall;
      local.seconds_build += busy > 0 ? wall * build_total / busy : 0;
    }
    if (residual_cal) {
      const auto start = detail::clock::now();
      const std::size_t weight_rows = residual_weight_rows.size() / d;
      const matrix_view<const double> sampled(residual_weight_rows.data(), weight_rows, d);
      residual.emplace(residual_cal->build(std::span<const matrix_view<const double>>(&sampled, weight_rows > 0 ? 1 : 0)));
      residual_weight_rows = {};
      residual_cal.reset();
      local.seconds_build += detail::seconds_since(start);
    }
  }
  if (residual) local.residual_rotations = residual->rotation_count();
  for (const auto& layer : online)
    for (const site_kind site : layer_sites)
      if (const auto& t = layer[static_cast<std::size_t>(site)]) {
        const bool residual_site = site == site_kind::attention_input || site == site_kind::ffn_input;
        (residual_site ? local.residual_rotations : local.online_rotations) += t->rotation_count();
      }

  // 3. Fold and pack: one task per linear (and one for the embedding, one for the classifier).
  const auto fold_start = detail::clock::now();
  quantized_model q;
  q.config_ = c;
  q.config_.tied_classifier = false;
  q.activations_ = options.activations;
  q.layers_.resize(L);
  q.dequantized_.resize(L);
  const std::size_t linear_tasks = 7 * L;
  std::vector<quant_report> reports(linear_tasks + 1);
  q.embedding_.resize(c.vocab_size * d);
  // W (double) with the norm gains, the input transforms and the output rotation folded in.
  auto fold_linear = [&](std::size_t l, linear_kind kind) {
    const site_kind site = site_of(kind);
    const llama_layer_view& lw = w.layers[l];
    const matrix_view<const float> src = lw.linear(kind);
    const std::size_t rows = src.rows(), cols = src.cols();
    const vector_view<const float> g = site == site_kind::attention_input ? lw.attention_norm
                                       : site == site_kind::ffn_input     ? lw.ffn_norm
                                                                          : vector_view<const float>();
    std::vector<double> m(rows * cols);
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t k = 0; k < cols; ++k)
        m[r * cols + k] = static_cast<double>(src(r, k)) * (g.empty() ? 1.0 : static_cast<double>(g[k]));
    const matrix_view<double> mv(m.data(), rows, cols);
    const bool residual_input = site == site_kind::attention_input || site == site_kind::ffn_input;
    if (residual_input && residual) residual->apply_rows(mv);
    if (const auto& r = online[l][static_cast<std::size_t>(site)]) r->apply_rows(mv);
    if ((kind == linear_kind::o || kind == linear_kind::down) && residual) detail::rotate_output_rows(m, rows, cols, *residual);
    return m;
  };
  auto store = [&](std::size_t l, linear_kind kind, packed_int4 packed) {
    auto& dq = q.dequantized_[l][static_cast<std::size_t>(kind)];
    dq.resize(packed.rows() * packed.cols());
    dequantize(packed, matrix_view<float>(dq.data(), packed.rows(), packed.cols()));
    q.layers_[l].linears[static_cast<std::size_t>(kind)] = std::move(packed);
  };
  if (use_gptq) {
    // GPTQ: a second pass of the float model over the calibration tokens, one layer at a time (so
    // only one layer's H are held); each site's H = X^T X of its rows, changed to the basis its
    // weights are quantised in (R1 and / or the site's online transform), then GPTQ per linear.
    // Inputs come from the float layers below, not the quantised ones.
    detail::calibration_pass pass(w, calibration, threads);
    gptq_options go = options.gptq;
    go.quant = options.weights;
    go.threads = threads;
    for (std::size_t l = 0; l < L; ++l) {
      auto start = detail::clock::now();
      const std::vector<detail::calibration_pass::site_rows> rows = pass.layer(l, detail::folded_linears(w, l));
      local.seconds_forward += detail::seconds_since(start);
      for (const site_kind site : layer_sites) {
        const std::size_t width = width_of(site);
        hessian_stats h(width, {.threads = threads});
        for (std::size_t s = 0; s < S; ++s) {
          const auto& r = rows[s][static_cast<std::size_t>(site)];
          if (!r.empty()) h.accumulate(matrix_view<const float>(r.data(), r.size() / width, width));
        }
        const bool residual_site = site == site_kind::attention_input || site == site_kind::ffn_input;
        const auto& site_online = online[l][static_cast<std::size_t>(site)];
        h.change_basis([&](matrix_view<double> m) {
          if (residual_site && residual) residual->apply_rows(m);
          if (site_online) site_online->apply_rows(m);
        });
        for (std::size_t k = 0; k < layer_linears.size(); ++k) {
          const linear_kind kind = layer_linears[k];
          if (site_of(kind) != site) continue;
          const std::vector<double> m = fold_linear(l, kind);
          const auto shape = linear_shape(c, kind);
          gptq_report gr;
          store(l, kind, gptq(matrix_view<const double>(m.data(), shape[0], shape[1]), h, go, &gr));
          reports[l * 7 + k] = gr.quant;
        }
      }
    }
  }
  detail::parallel_for(linear_tasks + 2, threads, [&](std::size_t task) {
    if (task >= linear_tasks) {
      // Embedding E R1, or classifier C diag(g_final) R1.
      const bool is_embedding = task == linear_tasks;
      const matrix_view<const float> src = is_embedding ? w.embedding : w.classifier;
      std::vector<double> m(c.vocab_size * d);
      for (std::size_t r = 0; r < c.vocab_size; ++r)
        for (std::size_t k = 0; k < d; ++k) {
          const double g = (!is_embedding && !w.final_norm.empty()) ? static_cast<double>(w.final_norm[k]) : 1.0;
          m[r * d + k] = static_cast<double>(src(r, k)) * g;
        }
      if (residual) residual->apply_rows(matrix_view<double>(m.data(), c.vocab_size, d));
      if (is_embedding) {
        for (std::size_t e = 0; e < m.size(); ++e) q.embedding_[e] = static_cast<float>(m[e]);
      } else if (options.quantize_classifier) {
        q.classifier_q_.emplace(quantize(matrix_view<const double>(m.data(), c.vocab_size, d), options.weights,
                                         &reports[linear_tasks]));
        q.classifier_dq_.resize(m.size());
        dequantize(*q.classifier_q_, matrix_view<float>(q.classifier_dq_.data(), c.vocab_size, d));
      } else {
        q.classifier_.resize(m.size());
        for (std::size_t e = 0; e < m.size(); ++e) q.classifier_[e] = static_cast<float>(m[e]);
      }
      return;
    }
    if (use_gptq) return;  // packed above
    const std::size_t l = task / 7;
    const linear_kind kind = layer_linears[task % 7];
    const std::vector<double> m = fold_linear(l, kind);
    const auto shape = linear_shape(c, kind);
    store(l, kind, quantize(matrix_view<const double>(m.data(), shape[0], shape[1]), options.weights, &reports[task]));
  });
  for (const quant_report& r : reports) {
    local.weights.nan_count += r.nan_count;
    local.weights.inf_count += r.inf_count;
    local.weights.zero_scale_count += r.zero_scale_count;
    local.weights.scale_count += r.scale_count;
    local.weights.clip_ratio_sum += r.clip_ratio_sum;
  }
  for (std::size_t l = 0; l < L; ++l)
    for (std::size_t s = 0; s < 4; ++s) q.layers_[l].online[s] = std::move(online[l][s]);
  q.residual_ = std::move(residual);
  local.seconds_fold_pack = detail::seconds_since(fold_start);
  local.seconds_total = detail::seconds_since(total_start);
  if (report != nullptr) *report = local;
  return q;
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_MODEL_QUANTIZE_HPP
