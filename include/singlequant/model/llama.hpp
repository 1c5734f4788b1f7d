// singlequant/model/llama.hpp - configuration and weights of a Llama-family decoder.
//
// The decoder (llama2.c / Hugging Face Llama semantics, row vectors, y = x W^T with W out x in):
//   x = embedding[token]; per layer l:
//     a = rmsnorm(x) * attention_norm          (site attention_input, read by q, k, v)
//     q, k, v = a Wq^T, a Wk^T, a Wv^T; RoPE on adjacent pairs (2i, 2i + 1) of every head of q and k,
//       angle pos * rope_theta^(-2i / head_dim); causal softmax attention, scale 1 / sqrt(head_dim),
//       query head h reads kv head h / (n_heads / n_kv_heads) (grouped-query attention)
//     x += o Wo^T                              (o: attention output, site o_proj_input)
//     f = rmsnorm(x) * ffn_norm                (site ffn_input, read by gate and up)
//     x += (silu(f Wg^T) * (f Wu^T)) Wd^T      (the product: site down_input)
//   logits = (rmsnorm(x) * final_norm) C^T     (C = embedding when the classifier is tied)
//   rmsnorm(x) = x / sqrt(mean(x^2) + norm_eps).
// llama_weights views the user's memory (nothing is copied); llama_model owns a copy and is what the
// function-preserving transformations (fusion.hpp) edit. No file I/O here: readers live in tools/.
#ifndef SINGLEQUANT_MODEL_LLAMA_HPP
#define SINGLEQUANT_MODEL_LLAMA_HPP

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "../config.hpp"
#include "../view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// The shape of a Llama-family decoder.
struct llama_config {
  std::size_t dim = 0;          ///< residual width d
  std::size_t hidden_dim = 0;   ///< FFN width
  std::size_t n_layers = 0;
  std::size_t n_heads = 0;      ///< query heads; head_dim = dim / n_heads (even)
  std::size_t n_kv_heads = 0;   ///< key/value heads (divides n_heads)
  std::size_t vocab_size = 0;
  std::size_t max_seq_len = 0;  ///< longest sequence a KV cache holds
  float norm_eps = 1e-5f;       ///< rmsnorm epsilon
  double rope_theta = 10000.0;  ///< RoPE base
  bool tied_classifier = true;  ///< classifier == token embedding

  [[nodiscard]] constexpr std::size_t head_dim() const noexcept { return n_heads == 0 ? 0 : dim / n_heads; }
  [[nodiscard]] constexpr std::size_t kv_dim() const noexcept { return head_dim() * n_kv_heads; }
  /// Query heads per kv head.
  [[nodiscard]] constexpr std::size_t kv_group() const noexcept {
    return n_kv_heads == 0 ? 0 : n_heads / n_kv_heads;
  }
};

/// The activation sites of a layer: inputs shared by the linears that read them.
enum class site_kind {
  attention_input,  ///< rmsnorm(x) * attention_norm, read by q, k, v (width dim)
  o_proj_input,     ///< attention output, read by o (width dim)
  ffn_input,        ///< rmsnorm(x) * ffn_norm, read by gate, up (width dim)
  down_input,       ///< silu(gate) * up, read by down (width hidden_dim)
  classifier_input  ///< rmsnorm(x) * final_norm, read by the classifier (layer index n_layers)
};
inline constexpr std::array<site_kind, 4> layer_sites = {site_kind::attention_input, site_kind::o_proj_input,
                                                         site_kind::ffn_input, site_kind::down_input};

/// The linear layers (seven per layer, then the classifier).
enum class linear_kind { q, k, v, o, gate, up, down, classifier };
inline constexpr std::array<linear_kind, 7> layer_linears = {linear_kind::q,    linear_kind::k,  linear_kind::v,
                                                             linear_kind::o,    linear_kind::gate,
                                                             linear_kind::up,   linear_kind::down};

[[nodiscard]] constexpr std::string_view to_string(site_kind s) noexcept {
  switch (s) {
    case site_kind::attention_input: return "attention_input";
    case site_kind::o_proj_input: return "o_proj_input";
    case site_kind::ffn_input: return "ffn_input";
    case site_kind::down_input: return "down_input";
    case site_kind::classifier_input: return "classifier_input";
  }
  return "?";
}
[[nodiscard]] constexpr std::string_view to_string(linear_kind k) noexcept {
  switch (k) {
    case linear_kind::q: return "q";
    case linear_kind::k: return "k";
    case linear_kind::v: return "v";
    case linear_kind::o: return "o";
    case linear_kind::gate: return "gate";
    case linear_kind::up: return "up";
    case linear_kind::down: return "down";
    case linear_kind::classifier: return "classifier";
  }
  return "?";
}
/// The site a linear reads.
[[nodiscard]] constexpr site_kind site_of(linear_kind k) noexcept {
  switch (k) {
    case linear_kind::q:
    case linear_kind::k:
    case linear_kind::v: return site_kind::attention_input;
    case linear_kind::o: return site_kind::o_proj_input;
    case linear_kind::gate:
    case linear_kind::up: return site_kind::ffn_input;
    case linear_kind::down: return site_kind::down_input;
    case linear_kind::classifier: return site_kind::classifier_input;
  }
  return site_kind::classifier_input;
}
/// (out_features, in_features) of a linear under a configuration.
[[nodiscard]] constexpr std::array<std::size_t, 2> linear_shape(const llama_config& c, linear_kind k) noexcept {
  switch (k) {
    case linear_kind::q:
    case linear_kind::o: return {c.dim, c.dim};
    case linear_kind::k:
    case linear_kind::v: return {c.kv_dim(), c.dim};
    case linear_kind::gate:
    case linear_kind::up: return {c.hidden_dim, c.dim};
    case linear_kind::down: return {c.dim, c.hidden_dim};
    case linear_kind::classifier: return {c.vocab_size, c.dim};
  }
  return {0, 0};
}

/// Checks a configuration: positive sizes, dim = n_heads x even head_dim, n_kv_heads divides
/// n_heads, eps > 0 and finite, theta > 0 and finite, no size overflow. Errors name `function`.
inline void check_config(const llama_config& c, std::string_view function) {
  detail::check(c.dim > 0 && c.hidden_dim > 0 && c.n_layers > 0 && c.n_heads > 0 && c.n_kv_heads > 0 &&
                    c.vocab_size > 0 && c.max_seq_len > 0,
                function, "every size must be positive: dim ", c.dim, ", hidden_dim ", c.hidden_dim,
                ", n_layers ", c.n_layers, ", n_heads ", c.n_heads, ", n_kv_heads ", c.n_kv_heads,
                ", vocab_size ", c.vocab_size, ", max_seq_len ", c.max_seq_len);
  detail::check(c.dim % c.n_heads == 0 && c.head_dim() % 2 == 0, function, "dim ", c.dim,
                " is not n_heads ", c.n_heads, " x an even head_dim");
  detail::check(c.n_heads % c.n_kv_heads == 0, function, "n_kv_heads ", c.n_kv_heads,
                " does not divide n_heads ", c.n_heads);
  detail::check(std::isfinite(c.norm_eps) && c.norm_eps > 0, function, "norm_eps ", c.norm_eps,
                " must be finite and > 0");
  detail::check(std::isfinite(c.rope_theta) && c.rope_theta > 0, function, "rope_theta ", c.rope_theta,
                " must be finite and > 0");
  // Every size the model layer allocates, overflow-checked step by step: the parameters (at most
  // 4 per-layer matrices of dim x max(dim, hidden)) and the KV cache (2 n_layers max_seq_len kv_dim).
  const std::size_t wide = c.dim > c.hidden_dim ? c.dim : c.hidden_dim;
  std::size_t embedding = 0, matrix = 0, layer = 0, layers = 0, total = 0, cache = 0;
  const bool overflow = detail::multiply_overflows(c.vocab_size, c.dim, embedding) ||
                        detail::multiply_overflows(c.dim, wide, matrix) ||
                        detail::multiply_overflows(matrix, 7, layer) ||
                        detail::multiply_overflows(layer, c.n_layers, layers) ||
                        detail::multiply_overflows(embedding, 2, total) || detail::add_overflows(total, layers, total) ||
                        total > ~std::size_t{0} / 8 ||  // parameter_count (< 2 total) in bytes fits
                        detail::multiply_overflows(c.max_seq_len, 2, cache) ||
                        detail::multiply_overflows(cache, c.n_layers, cache) ||
                        detail::multiply_overflows(cache, c.kv_dim(), cache);
  detail::check(!overflow, function, "sizes overflow (vocab ", c.vocab_size, ", dim ", c.dim, ", hidden ",
                c.hidden_dim, ", n_layers ", c.n_layers, ", max_seq_len ", c.max_seq_len, ")");
}

/// The float parameters of an owning model of configuration c (embedding, classifier unless tied,
/// norms, the seven linears of every layer); c must pass check_config.
[[nodiscard]] inline std::size_t parameter_count(const llama_config& c) noexcept {
  std::size_t count = c.vocab_size * c.dim * (c.tied_classifier ? 1 : 2) + c.dim;
  for (const linear_kind kind : layer_linears) {
    const auto shape = linear_shape(c, kind);
    count += c.n_layers * shape[0] * shape[1];
  }
  return count + 2 * c.n_layers * c.dim;
}

/// Views of one layer's parameters (float32, row-major, each linear out x in).
struct llama_layer_view {
  vector_view<const float> attention_norm;  ///< dim gains (empty: all ones, e.g. after folding)
  matrix_view<const float> q, k, v, o;
  vector_view<const float> ffn_norm;        ///< dim gains (empty: all ones)
  matrix_view<const float> gate, up, down;

  [[nodiscard]] matrix_view<const float> linear(linear_kind kind) const noexcept {
    switch (kind) {
      case linear_kind::q: return q;
      case linear_kind::k: return k;
      case linear_kind::v: return v;
      case linear_kind::o: return o;
      case linear_kind::gate: return gate;
      case linear_kind::up: return up;
      case linear_kind::down: return down;
      case linear_kind::classifier: break;
    }
    return {};
  }
};

/// A decoder's parameters as views over the user's memory (nothing is copied; the memory must
/// outlive the view). check_weights() validates the shapes against the configuration.
struct llama_weights {
  llama_config config;
  matrix_view<const float> embedding;    ///< vocab x dim
  std::vector<llama_layer_view> layers;  ///< n_layers
  vector_view<const float> final_norm;   ///< dim gains (empty: all ones)
  matrix_view<const float> classifier;   ///< vocab x dim (the embedding when tied)
};

/// Checks every view against the configuration (shapes, n_layers, norms of length dim or empty,
/// the classifier equal to the embedding when tied). Errors name `function` and the tensor.
inline void check_weights(const llama_weights& w, std::string_view function) {
  const llama_config& c = w.config;
  check_config(c, function);
  auto matrix = [&](matrix_view<const float> m, std::size_t rows, std::size_t cols, const char* name,
                    std::size_t layer) {
    detail::check(m.rows() == rows && m.cols() == cols && m.data() != nullptr, function, name, " of layer ",
                  layer, " is ", m.rows(), " x ", m.cols(), ", the configuration needs ", rows, " x ", cols);
  };
  auto norm = [&](vector_view<const float> g, const char* name, std::size_t layer) {
    detail::check(g.empty() || g.size() == c.dim, function, name, " of layer ", layer, " has ", g.size(),
                  " gains, dim is ", c.dim);
  };
  detail::check(w.layers.size() == c.n_layers, function, w.layers.size(), " layers, the configuration has ",
                c.n_layers);
  matrix(w.embedding, c.vocab_size, c.dim, "embedding", 0);
  matrix(w.classifier, c.vocab_size, c.dim, "classifier", c.n_layers);
  detail::check(!c.tied_classifier || w.classifier.data() == w.embedding.data(), function,
                "the configuration ties the classifier to the embedding but they are different memory");
  norm(w.final_norm, "final_norm", c.n_layers);
  for (std::size_t l = 0; l < c.n_layers; ++l) {
    const llama_layer_view& layer = w.layers[l];
    norm(layer.attention_norm, "attention_norm", l);
    norm(layer.ffn_norm, "ffn_norm", l);
    for (const linear_kind kind : layer_linears) {
      const auto shape = linear_shape(c, kind);
      matrix(layer.linear(kind), shape[0], shape[1], to_string(kind).data(), l);
    }
  }
}

/// check_weights, and every parameter finite: an error of `function` naming the tensor, the layer
/// and the element of the first NaN or Inf (one pass over the weights; quantize_model's entry check,
/// since a NaN weight would otherwise surface as a NaN calibration activation or a zeroed row).
inline void check_weights_finite(const llama_weights& w, std::string_view function) {
  check_weights(w, function);
  auto scan = [&](matrix_view<const float> m, const char* name, std::size_t layer) {
    detail::check_finite(m, function, detail::message(name, " of layer ", layer));
  };
  auto scan_vector = [&](vector_view<const float> g, const char* name, std::size_t layer) {
    scan(matrix_view<const float>(g.data(), 1, g.size()), name, layer);
  };
  const llama_config& c = w.config;
  scan(w.embedding, "embedding", 0);
  if (!c.tied_classifier) scan(w.classifier, "classifier", c.n_layers);
  scan_vector(w.final_norm, "final_norm", c.n_layers);
  for (std::size_t l = 0; l < c.n_layers; ++l) {
    const llama_layer_view& layer = w.layers[l];
    scan_vector(layer.attention_norm, "attention_norm", l);
    scan_vector(layer.ffn_norm, "ffn_norm", l);
    for (const linear_kind kind : layer_linears) scan(layer.linear(kind), to_string(kind).data(), l);
  }
}

/// A decoder that owns its parameters (float32). Built zero-filled from a configuration, or as a
/// copy of views; weights() gives the views the forward pass reads. Norm gains can be dropped
/// (has_norms() false: all ones) once folded into the consuming linears.
class llama_model {
 public:
  struct layer {
    std::vector<float> attention_norm, ffn_norm;  // empty: all ones
    std::array<std::vector<float>, 7> linears;    // by linear_kind q, k, v, o, gate, up, down
  };

  llama_model() = default;
  /// Zero weights, unit norm gains (stored), for the given configuration.
  explicit llama_model(const llama_config& c) : config_(c) {
    check_config(c, "llama_model");
    // One bound for the whole model, so a header read from a file cannot ask for more.
    detail::check_allocation("llama_model", "parameters", parameter_count(c), sizeof(float));
    embedding_.assign(c.vocab_size * c.dim, 0.0f);
    if (!c.tied_classifier) classifier_.assign(c.vocab_size * c.dim, 0.0f);
    final_norm_.assign(c.dim, 1.0f);
    layers_.resize(c.n_layers);
    for (layer& l : layers_) {
      l.attention_norm.assign(c.dim, 1.0f);
      l.ffn_norm.assign(c.dim, 1.0f);
      for (const linear_kind kind : layer_linears) {
        const auto shape = linear_shape(c, kind);
        l.linears[index(kind)].assign(shape[0] * shape[1], 0.0f);
      }
    }
  }
  /// A copy of the viewed parameters (validated with check_weights).
  explicit llama_model(const llama_weights& w) {
    check_weights(w, "llama_model");
    config_ = w.config;
    auto copy = [](matrix_view<const float> m) {
      std::vector<float> out(m.rows() * m.cols());
      for (std::size_t r = 0; r < m.rows(); ++r)
        for (std::size_t c = 0; c < m.cols(); ++c) out[r * m.cols() + c] = m(r, c);
      return out;
    };
    embedding_ = copy(w.embedding);
    if (!config_.tied_classifier) classifier_ = copy(w.classifier);
    final_norm_.assign(w.final_norm.begin(), w.final_norm.end());
    layers_.resize(config_.n_layers);
    for (std::size_t l = 0; l < config_.n_layers; ++l) {
      const llama_layer_view& v = w.layers[l];
      layers_[l].attention_norm.assign(v.attention_norm.begin(), v.attention_norm.end());
      layers_[l].ffn_norm.assign(v.ffn_norm.begin(), v.ffn_norm.end());
      for (const linear_kind kind : layer_linears) layers_[l].linears[index(kind)] = copy(v.linear(kind));
    }
  }

  [[nodiscard]] const llama_config& config() const noexcept { return config_; }
  /// Views of every parameter (valid until the model changes shape or is destroyed).
  [[nodiscard]] llama_weights weights() const {
    llama_weights w;
    w.config = config_;
    w.embedding = matrix_view<const float>(embedding_.data(), config_.vocab_size, config_.dim);
    w.classifier = config_.tied_classifier ? w.embedding
                                           : matrix_view<const float>(classifier_.data(), config_.vocab_size, config_.dim);
    w.final_norm = vector_view<const float>(final_norm_.data(), final_norm_.size());
    w.layers.resize(config_.n_layers);
    for (std::size_t l = 0; l < config_.n_layers; ++l) {
      const layer& src = layers_[l];
      llama_layer_view& dst = w.layers[l];
      dst.attention_norm = vector_view<const float>(src.attention_norm.data(), src.attention_norm.size());
      dst.ffn_norm = vector_view<const float>(src.ffn_norm.data(), src.ffn_norm.size());
      matrix_view<const float>* slots[] = {&dst.q, &dst.k, &dst.v, &dst.o, &dst.gate, &dst.up, &dst.down};
      for (const linear_kind kind : layer_linears) {
        const auto shape = linear_shape(config_, kind);
        *slots[index(kind)] = matrix_view<const float>(src.linears[index(kind)].data(), shape[0], shape[1]);
      }
    }
    return w;
  }

  /// Mutable parameters (the shapes are fixed; do not resize the vectors except the norms, which
  /// may be cleared to mean all ones).
  [[nodiscard]] matrix_view<float> embedding() noexcept {
    return {embedding_.data(), config_.vocab_size, config_.dim};
  }
  /// The classifier; while tied this is the embedding (untie_classifier() first to change one alone).
  [[nodiscard]] matrix_view<float> classifier() noexcept {
    return {config_.tied_classifier ? embedding_.data() : classifier_.data(), config_.vocab_size, config_.dim};
  }
  [[nodiscard]] matrix_view<float> linear(std::size_t l, linear_kind kind) {
    detail::check(l < config_.n_layers, "llama_model::linear", "layer ", l, " of ", config_.n_layers);
    if (kind == linear_kind::classifier) return classifier();
    const auto shape = linear_shape(config_, kind);
    return {layers_[l].linears[index(kind)].data(), shape[0], shape[1]};
  }
  [[nodiscard]] layer& layer_at(std::size_t l) {
    detail::check(l < config_.n_layers, "llama_model::layer_at", "layer ", l, " of ", config_.n_layers);
    return layers_[l];
  }
  [[nodiscard]] std::vector<float>& final_norm() noexcept { return final_norm_; }
  /// Gives the classifier its own copy of the embedding (no-op when already separate).
  void untie_classifier() {
    if (!config_.tied_classifier) return;
    classifier_ = embedding_;
    config_.tied_classifier = false;
  }
  /// Index of a per-layer linear in layer::linears.
  [[nodiscard]] static constexpr std::size_t index(linear_kind kind) noexcept {
    return static_cast<std::size_t>(kind);
  }

 private:
  llama_config config_;
  std::vector<float> embedding_, classifier_, final_norm_;
  std::vector<layer> layers_;
};

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_MODEL_LLAMA_HPP
