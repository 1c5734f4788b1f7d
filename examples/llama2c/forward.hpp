// forward.hpp — the examples' float32 llama2.c forward pass with hooks at every linear input
// (measure_sites observes and rewrites activations through them; tests check it against the
// float64 references). The library's own forward pass is include/singlequant/model/forward.hpp;
// this one stays because its hooks work per weight (linear_override) and per site.
//
//   x = emb[token]; per layer:
//     xb = rmsnorm(x) * rms_att;  q,k,v = wq xb, wk xb, wv xb;  RoPE(q, k)
//     attn = causal softmax attention (GQA);  x += wo attn
//     xb = rmsnorm(x) * rms_ffn;  x += w2 (silu(w1 xb) * (w3 xb))
//   logits = classifier (rmsnorm(x) * rms_final)
#pragma once

#include <formats/llama2c_model.hpp>

#include <functional>

namespace llama2c {

// An activation site: the input vector of one or more linear layers.
// Weights that read the same input share a site, so a caller that quantizes
// activations quantizes that input once, exactly like a fused kernel would.
enum class site {
  attn_qkv,    // rmsnorm(x) * rms_att, read by wq, wk, wv          (length dim)
  attn_out,    // attention output, read by wo                      (length dim)
  ffn_up,      // rmsnorm(x) * rms_ffn, read by w1 (gate), w3 (up)  (length dim)
  ffn_down,    // silu(w1 xb) * (w3 xb), read by w2                 (length hidden_dim)
  classifier,  // rmsnorm(x) * rms_final, read by the classifier    (length dim); layer == n_layers
};

inline std::string_view to_string(site s) {
  switch (s) {
    case site::attn_qkv:
      return "attn_qkv";
    case site::attn_out:
      return "attn_out";
    case site::ffn_up:
      return "ffn_up";
    case site::ffn_down:
      return "ffn_down";
    case site::classifier:
      return "classifier";
  }
  return "?";
}

inline site site_of(weight_id w) {
  switch (w) {
    case weight_id::wq:
    case weight_id::wk:
    case weight_id::wv:
      return site::attn_qkv;
    case weight_id::wo:
      return site::attn_out;
    case weight_id::w1:
    case weight_id::w3:
      return site::ffn_up;
    case weight_id::w2:
      return site::ffn_down;
    case weight_id::classifier:
      return site::classifier;
  }
  return site::classifier;
}

// out = W x in float32, the reference semantics of every linear layer.
// Exposed so a linear_override can fall back to it or compare against it.
inline void matvec(const_matrix_ref w, std::span<const float> x, std::span<float> out) {
  if (x.size() != std::size_t(w.in_features) || out.size() != std::size_t(w.out_features))
    throw std::invalid_argument("llama2c::matvec: shape mismatch");
  const std::size_t n = x.size();
  for (int r = 0; r < w.out_features; ++r) {
    const float* row = w.data + std::size_t(r) * n;
    // Four independent partial sums break the serial dependency chain;
    // the result stays a float32 dot product.
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
      s0 += row[i] * x[i];
      s1 += row[i + 1] * x[i + 1];
      s2 += row[i + 2] * x[i + 2];
      s3 += row[i + 3] * x[i + 3];
    }
    for (; i < n; ++i) s0 += row[i] * x[i];
    out[std::size_t(r)] = (s0 + s1) + (s2 + s3);
  }
}

namespace detail {

inline void rmsnorm(std::span<float> out, std::span<const float> x, std::span<const float> gain) {
  float sum_squares = 0.f;
  for (float v : x) sum_squares += v * v;
  const float inv_rms = 1.f / std::sqrt(sum_squares / float(x.size()) + 1e-5f);
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = gain[i] * (x[i] * inv_rms);
}

inline void softmax_inplace(std::span<float> x) {
  const float max_value = *std::max_element(x.begin(), x.end());
  float sum = 0.f;
  for (float& v : x) {
    v = std::exp(v - max_value);
    sum += v;
  }
  for (float& v : x) v /= sum;
}

}  // namespace detail


// ---------------------------------------------------------------------------
// Hooks
// ---------------------------------------------------------------------------

// Called once per site and token, before the linear layers that read `x`.
// `x` is the actual input buffer: record it (calibration) or modify it in
// place (quantize-dequantize, rotate); the linear layers then read the
// modified values. `layer` is the block index, or n_layers for site::classifier.
using activation_hook = std::function<void(site s, int layer, std::span<float> x)>;

// Called for every single linear layer (after the activation hook of its
// site). Return true after writing all of `out` (= W x by whatever method,
// e.g. an integer kernel); return false to use the float32 matvec with `w`.
using linear_override = std::function<bool(site s, int layer, weight_id w, std::span<const float> x,
                                           const_matrix_ref weight, std::span<float> out)>;

struct linear_hooks {
  activation_hook on_linear_input;  // empty = no hook
  linear_override override_linear;  // empty = always float32 matvec
};

// ---------------------------------------------------------------------------
// Session: KV cache + scratch buffers for one sequence
// ---------------------------------------------------------------------------

class session {
 public:
  // The model must outlive the session. Weight changes made between
  // forward() calls take effect on the next call (cached K/V keep the old ones).
  explicit session(const model& m)
      : model_(&m),
        x_(size(m.cfg().dim)),
        xb_(size(m.cfg().dim)),
        xb2_(size(m.cfg().dim)),
        hb_(size(m.cfg().hidden_dim)),
        hb2_(size(m.cfg().hidden_dim)),
        q_(size(m.cfg().dim)),
        scores_(size(m.cfg().seq_len)),
        key_cache_(size(m.cfg().n_layers) * size(m.cfg().seq_len) * size(m.cfg().kv_dim())),
        value_cache_(key_cache_.size()) {}

  linear_hooks hooks;  // set freely between forward() calls

  const model& get_model() const { return *model_; }

  // Number of leading positions whose keys/values are in the cache.
  int cached_positions() const { return cached_; }
  void reset() { cached_ = 0; }

  // Runs token `token` at position `pos` and returns the vocab_size logits.
  // Positions 0..pos-1 must already have been run in this session (pos may
  // also go back to rewrite the cache from there on).
  std::vector<float> forward(int token, int pos) {
    const model& m = *model_;
    const config& c = m.cfg();
    if (token < 0 || token >= c.vocab_size)
      throw std::out_of_range("llama2c::session::forward: token " + std::to_string(token) +
                              " outside vocabulary of " + std::to_string(c.vocab_size));
    if (pos < 0 || pos >= c.seq_len || pos > cached_)
      throw std::out_of_range("llama2c::session::forward: position " + std::to_string(pos) +
                              " invalid (seq_len " + std::to_string(c.seq_len) + ", " +
                              std::to_string(cached_) + " positions cached)");

    const std::size_t dim = size(c.dim), kv_dim = size(c.kv_dim()), head_size = size(c.head_size());
    const auto emb = m.token_embedding().row(token);
    std::copy(emb.begin(), emb.end(), x_.begin());

    for (int layer = 0; layer < c.n_layers; ++layer) {
      const std::size_t cache_offset = (size(layer) * size(c.seq_len) + size(pos)) * kv_dim;
      const std::span<float> k(key_cache_.data() + cache_offset, kv_dim);
      const std::span<float> v(value_cache_.data() + cache_offset, kv_dim);

      detail::rmsnorm(xb_, x_, m.rms_att(layer));
      notify(site::attn_qkv, layer, xb_);
      apply(site::attn_qkv, layer, weight_id::wq, xb_, q_);
      apply(site::attn_qkv, layer, weight_id::wk, xb_, k);
      apply(site::attn_qkv, layer, weight_id::wv, xb_, v);

      rotate(q_, pos, head_size);
      rotate(k, pos, head_size);
      attend(layer, pos, xb_);

      notify(site::attn_out, layer, xb_);
      apply(site::attn_out, layer, weight_id::wo, xb_, xb2_);
      for (std::size_t i = 0; i < dim; ++i) x_[i] += xb2_[i];

      detail::rmsnorm(xb_, x_, m.rms_ffn(layer));
      notify(site::ffn_up, layer, xb_);
      apply(site::ffn_up, layer, weight_id::w1, xb_, hb_);
      apply(site::ffn_up, layer, weight_id::w3, xb_, hb2_);
      for (std::size_t i = 0; i < hb_.size(); ++i) {
        const float gate = hb_[i];
        hb_[i] = gate / (1.f + std::exp(-gate)) * hb2_[i];  // silu(gate) * up
      }
      notify(site::ffn_down, layer, hb_);
      apply(site::ffn_down, layer, weight_id::w2, hb_, xb2_);
      for (std::size_t i = 0; i < dim; ++i) x_[i] += xb2_[i];
    }
    cached_ = pos + 1;

    detail::rmsnorm(xb_, x_, m.rms_final());
    notify(site::classifier, c.n_layers, xb_);
    std::vector<float> logits(size(c.vocab_size));
    apply(site::classifier, c.n_layers, weight_id::classifier, xb_, logits);
    return logits;
  }

 private:
  static std::size_t size(int n) { return static_cast<std::size_t>(n); }

  void notify(site s, int layer, std::span<float> x) {
    if (hooks.on_linear_input) hooks.on_linear_input(s, layer, x);
  }

  void apply(site s, int layer, weight_id w, std::span<const float> x, std::span<float> out) {
    const const_matrix_ref weight = model_->linear(w, layer);
    if (hooks.override_linear && hooks.override_linear(s, layer, w, x, weight, out)) return;
    matvec(weight, x, out);
  }

  // RoPE on adjacent pairs (2i, 2i+1) of each head, angle pos * 10000^(-2i/head_size).
  // The angle is computed in double: cheap, and it keeps large positions accurate.
  static void rotate(std::span<float> vec, int pos, std::size_t head_size) {
    for (std::size_t i = 0; i < vec.size(); i += 2) {
      const std::size_t pair_dim = i % head_size;
      const double freq = std::pow(10000.0, -double(pair_dim) / double(head_size));
      const double angle = double(pos) * freq;
      const float cos_a = float(std::cos(angle)), sin_a = float(std::sin(angle));
      const float a = vec[i], b = vec[i + 1];
      vec[i] = a * cos_a - b * sin_a;
      vec[i + 1] = a * sin_a + b * cos_a;
    }
  }

  // Causal multi-head attention over cached positions 0..pos; writes the
  // concatenated head outputs to `out` (length dim).
  void attend(int layer, int pos, std::span<float> out) {
    const config& c = model_->cfg();
    const std::size_t head_size = size(c.head_size()), kv_dim = size(c.kv_dim());
    const std::size_t layer_offset = size(layer) * size(c.seq_len) * kv_dim;
    const float scale = 1.f / std::sqrt(float(head_size));
    const std::span<float> scores(scores_.data(), size(pos) + 1);

    for (int h = 0; h < c.n_heads; ++h) {
      const float* q = q_.data() + size(h) * head_size;
      const std::size_t kv_head_offset = size(h / c.kv_group_size()) * head_size;
      for (std::size_t t = 0; t < scores.size(); ++t) {
        const float* k = key_cache_.data() + layer_offset + t * kv_dim + kv_head_offset;
        float dot = 0.f;
        for (std::size_t i = 0; i < head_size; ++i) dot += q[i] * k[i];
        scores[t] = dot * scale;
      }
      detail::softmax_inplace(scores);
      float* head_out = out.data() + size(h) * head_size;
      std::fill(head_out, head_out + head_size, 0.f);
      for (std::size_t t = 0; t < scores.size(); ++t) {
        const float* v = value_cache_.data() + layer_offset + t * kv_dim + kv_head_offset;
        for (std::size_t i = 0; i < head_size; ++i) head_out[i] += scores[t] * v[i];
      }
    }
  }

  const model* model_;
  std::vector<float> x_, xb_, xb2_, hb_, hb2_, q_, scores_;
  std::vector<float> key_cache_, value_cache_;  // [layer][pos][kv_dim]
  int cached_ = 0;
};

inline int argmax(std::span<const float> v) {
  return static_cast<int>(std::distance(v.begin(), std::max_element(v.begin(), v.end())));
}

// Greedy (argmax) decoding: runs `prompt` from position 0, then appends
// n_new argmax tokens. Returns only the new tokens. Does not stop at BOS/EOS,
// so the output length is always n_new. Uses (and resets) the session, so
// any hooks installed on it are active.
inline std::vector<int> generate_greedy(session& s, const std::vector<int>& prompt, int n_new) {
  const config& c = s.get_model().cfg();
  if (prompt.empty()) throw std::invalid_argument("llama2c::generate_greedy: empty prompt");
  if (n_new < 0 || std::size_t(c.seq_len) < prompt.size() + std::size_t(n_new))
    throw std::invalid_argument("llama2c::generate_greedy: prompt + n_new exceeds seq_len " +
                                std::to_string(c.seq_len));
  s.reset();
  std::vector<int> generated;
  generated.reserve(std::size_t(n_new));
  std::vector<float> logits;
  int pos = 0;
  for (int token : prompt) logits = s.forward(token, pos++);
  for (int i = 0; i < n_new; ++i) {
    const int next = argmax(logits);
    generated.push_back(next);
    if (i + 1 < n_new) logits = s.forward(next, pos++);
  }
  return generated;
}

inline std::vector<int> generate_greedy(const model& m, const std::vector<int>& prompt, int n_new) {
  session s(m);
  return generate_greedy(s, prompt, n_new);
}

}  // namespace llama2c
