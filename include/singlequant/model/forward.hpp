// singlequant/model/forward.hpp - the reference float32 forward pass of a Llama-family decoder
// (llama.hpp has the equations), with hooks at every site and a KV cache.
//
// forward() runs a chunk of tokens of one sequence at the positions after those already in its
// kv_cache (prefill and decoding are the same call), optionally writing logits; hooks see (and may
// rewrite) every site input, tokens x width, before the linears read it. forward_batch() runs
// independent sequences on several threads; every sequence's result is the same for any thread
// count (each is computed by one thread, in the fixed order of detail/float_gemm.hpp).
// The pass is generic over an executor (detail::decoder_forward) so the quantised models of
// quantize.hpp run the same code with their own site inputs and linears.
#ifndef SINGLEQUANT_MODEL_FORWARD_HPP
#define SINGLEQUANT_MODEL_FORWARD_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <vector>

#include "../config.hpp"
#include "../detail/float_gemm.hpp"
#include "../view.hpp"
#include "llama.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// A site of a given layer (layer == n_layers for the classifier input).
struct site_id {
  site_kind kind = site_kind::attention_input;
  std::size_t layer = 0;
};

/// Called at every site input of a chunk: x is tokens x width (the chunk's rows in order) and may
/// be changed in place; `sequence` is the index of the sequence in a batch (0 for forward()). With
/// forward_batch on several threads the hook is called concurrently for different sequences.
using site_hook = std::function<void(site_id site, std::size_t sequence, matrix_view<float> x)>;

struct forward_hooks {
  site_hook on_site_input;  ///< empty: no hook
};

/// Keys and values of every layer for the positions run so far (float32; [layer][position][kv_dim]).
class kv_cache {
 public:
  kv_cache() = default;
  /// A cache for up to `capacity` positions (0: config.max_seq_len).
  explicit kv_cache(const llama_config& config, std::size_t capacity = 0)
      : layers_(config.n_layers), kv_dim_(config.kv_dim()),
        capacity_(capacity == 0 ? config.max_seq_len : capacity) {
    check_config(config, "kv_cache");
    std::size_t total = 0;
    detail::check(!detail::multiply_overflows(layers_ * capacity_, kv_dim_, total), "kv_cache",
                  "capacity ", capacity_, " x ", layers_, " layers x kv_dim ", kv_dim_, " overflows");
    keys_.assign(total, 0.0f);
    values_.assign(total, 0.0f);
  }
  [[nodiscard]] std::size_t length() const noexcept { return length_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
  /// Forgets every position (the storage is kept).
  void clear() noexcept { length_ = 0; }
  /// Keeps the first `length` positions (to rerun from there).
  void truncate(std::size_t length) {
    detail::check(length <= length_, "kv_cache::truncate", "length ", length, " > cached ", length_);
    length_ = length;
  }
  [[nodiscard]] float* keys(std::size_t layer, std::size_t position) noexcept {
    return keys_.data() + (layer * capacity_ + position) * kv_dim_;
  }
  [[nodiscard]] float* values(std::size_t layer, std::size_t position) noexcept {
    return values_.data() + (layer * capacity_ + position) * kv_dim_;
  }
  /// Marks `count` more positions as cached (the forward pass has written them).
  void advance(std::size_t count) noexcept { length_ += count; }
  [[nodiscard]] bool fits(const llama_config& c) const noexcept {
    return layers_ == c.n_layers && kv_dim_ == c.kv_dim();
  }

 private:
  std::size_t layers_ = 0, kv_dim_ = 0, capacity_ = 0, length_ = 0;
  std::vector<float> keys_, values_;
};

namespace detail {

/// out = x / sqrt(mean(x^2) + eps) * gain (gain empty: 1), rows of width n; the sum in double.
inline void rmsnorm_rows(const float* x, std::size_t rows, std::size_t n, const float* gain, float eps,
                         float* out) noexcept {
  for (std::size_t t = 0; t < rows; ++t) {
    const float* xr = x + t * n;
    float* yr = out + t * n;
    double squares = 0;
    for (std::size_t i = 0; i < n; ++i) squares += static_cast<double>(xr[i]) * static_cast<double>(xr[i]);
    const auto inv = static_cast<float>(1.0 / std::sqrt(squares / static_cast<double>(n) + static_cast<double>(eps)));
    if (gain == nullptr) {
      for (std::size_t i = 0; i < n; ++i) yr[i] = xr[i] * inv;
    } else {
      for (std::size_t i = 0; i < n; ++i) yr[i] = gain[i] * (xr[i] * inv);
    }
  }
}

/// RoPE in place on rows (width a multiple of head_dim): pair (2i, 2i + 1) of every head turns by
/// position * theta^(-2i / head_dim) (angle in double, rotation in float).
inline void rope_rows(float* x, std::size_t rows, std::size_t width, std::size_t head_dim, std::size_t first_position,
                      double theta, std::vector<float>& table) {
  const std::size_t pairs = head_dim / 2;
  table.resize(rows * pairs * 2);
  for (std::size_t t = 0; t < rows; ++t)
    for (std::size_t i = 0; i < pairs; ++i) {
      const double freq = std::pow(theta, -static_cast<double>(2 * i) / static_cast<double>(head_dim));
      const double angle = static_cast<double>(first_position + t) * freq;
      table[(t * pairs + i) * 2] = static_cast<float>(std::cos(angle));
      table[(t * pairs + i) * 2 + 1] = static_cast<float>(std::sin(angle));
    }
  for (std::size_t t = 0; t < rows; ++t) {
    float* row = x + t * width;
    for (std::size_t e = 0; e < width; e += 2) {
      const std::size_t i = (e % head_dim) / 2;
      const float c = table[(t * pairs + i) * 2], s = table[(t * pairs + i) * 2 + 1];
      const float a = row[e], b = row[e + 1];
      row[e] = a * c - b * s;
      row[e + 1] = a * s + b * c;
    }
  }
}

/// Scratch of one forward call (reused across layers).
struct forward_scratch {
  std::vector<float> x, a, q, k, v, att, gate, up, out, scores, rope;
};

/// Sizes the scratch for T tokens after `base` cached positions.
inline void prepare_scratch(forward_scratch& s, const llama_config& c, std::size_t T, std::size_t base) {
  s.x.resize(T * c.dim);
  s.a.resize(T * c.dim);
  s.q.resize(T * c.dim);
  s.k.resize(T * c.kv_dim());
  s.v.resize(T * c.kv_dim());
  s.att.resize(T * c.dim);
  s.gate.resize(T * c.hidden_dim);
  s.up.resize(T * c.hidden_dim);
  s.out.resize(T * c.dim);
  s.scores.resize(base + T);
}

/// One decoder layer on the residual rows s.x (T x dim) of tokens at positions base .. base + T - 1;
/// keys / values: this layer's cache rows [position][kv_dim], positions < base already filled,
/// base .. base + T - 1 written here. Executor provides:
///   const float* norm(site_kind site, std::size_t layer)                (dim gains or nullptr)
///   void site_input(site_id, std::size_t sequence, matrix_view<float>)  (may rewrite the rows)
///   void linear(linear_kind, std::size_t layer, matrix_view<const float> x, matrix_view<float> y)
///                                                                       (y = x W^T)
template <class Executor>
void decoder_layer(Executor& ex, const llama_config& c, std::size_t l, std::size_t T, std::size_t base,
                   float* keys, float* values, std::size_t sequence, forward_scratch& s) {
  const std::size_t d = c.dim, hd = c.head_dim(), kv = c.kv_dim(), hidden = c.hidden_dim;
  const matrix_view<float> a(s.a.data(), T, d), att(s.att.data(), T, d), hid(s.gate.data(), T, hidden);
  const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  rmsnorm_rows(s.x.data(), T, d, ex.norm(site_kind::attention_input, l), c.norm_eps, s.a.data());
  ex.site_input(site_id{site_kind::attention_input, l}, sequence, a);
  ex.linear(linear_kind::q, l, a, matrix_view<float>(s.q.data(), T, d));
  ex.linear(linear_kind::k, l, a, matrix_view<float>(keys + base * kv, T, kv));
  ex.linear(linear_kind::v, l, a, matrix_view<float>(values + base * kv, T, kv));
  rope_rows(s.q.data(), T, d, hd, base, c.rope_theta, s.rope);
  rope_rows(keys + base * kv, T, kv, hd, base, c.rope_theta, s.rope);
  for (std::size_t t = 0; t < T; ++t) {
    const std::size_t visible = base + t + 1;
    for (std::size_t h = 0; h < c.n_heads; ++h) {
      const float* qh = s.q.data() + t * d + h * hd;
      const std::size_t kv_offset = (h / c.kv_group()) * hd;
      float peak = -std::numeric_limits<float>::infinity();
      for (std::size_t p = 0; p < visible; ++p) {
        const float* kp = keys + p * kv + kv_offset;
        float dot = 0;
        for (std::size_t i = 0; i < hd; ++i) dot += qh[i] * kp[i];
        s.scores[p] = dot * scale;
        peak = std::max(peak, s.scores[p]);
      }
      float total = 0;
      for (std::size_t p = 0; p < visible; ++p) total += s.scores[p] = std::exp(s.scores[p] - peak);
      float* out = s.att.data() + t * d + h * hd;
      std::fill_n(out, hd, 0.0f);
      for (std::size_t p = 0; p < visible; ++p) {
        const float weight = s.scores[p] / total;
        const float* vp = values + p * kv + kv_offset;
        for (std::size_t i = 0; i < hd; ++i) out[i] += weight * vp[i];
      }
    }
  }
  ex.site_input(site_id{site_kind::o_proj_input, l}, sequence, att);
  ex.linear(linear_kind::o, l, att, matrix_view<float>(s.out.data(), T, d));
  for (std::size_t e = 0; e < T * d; ++e) s.x[e] += s.out[e];
  rmsnorm_rows(s.x.data(), T, d, ex.norm(site_kind::ffn_input, l), c.norm_eps, s.a.data());
  ex.site_input(site_id{site_kind::ffn_input, l}, sequence, a);
  ex.linear(linear_kind::gate, l, a, hid);
  ex.linear(linear_kind::up, l, a, matrix_view<float>(s.up.data(), T, hidden));
  for (std::size_t e = 0; e < T * hidden; ++e) {
    const float g = s.gate[e];
    s.gate[e] = g / (1.0f + std::exp(-g)) * s.up[e];
  }
  ex.site_input(site_id{site_kind::down_input, l}, sequence, hid);
  ex.linear(linear_kind::down, l, hid, matrix_view<float>(s.out.data(), T, d));
  for (std::size_t e = 0; e < T * d; ++e) s.x[e] += s.out[e];
}

/// Final norm and classifier of the residual rows s.x: logits rows T (every position) or 1 (last).
template <class Executor>
void decoder_head(Executor& ex, const llama_config& c, std::size_t T, matrix_view<float> logits,
                  std::size_t sequence, forward_scratch& s) {
  if (logits.rows() == 0 || T == 0) return;
  const std::size_t d = c.dim;
  const std::size_t first = logits.rows() == T ? 0 : T - 1;
  const std::size_t rows = T - first;
  rmsnorm_rows(s.x.data() + first * d, rows, d, ex.norm(site_kind::classifier_input, c.n_layers), c.norm_eps,
               s.a.data());
  const matrix_view<float> final_rows(s.a.data(), rows, d);
  ex.site_input(site_id{site_kind::classifier_input, c.n_layers}, sequence, final_rows);
  ex.linear(linear_kind::classifier, c.n_layers, final_rows, logits);
}

/// Checks the arguments of a forward call (names "forward").
inline void check_forward(const llama_config& c, std::span<const std::int32_t> tokens, const kv_cache& cache,
                          matrix_view<float> logits) {
  constexpr const char* fn = "forward";
  const std::size_t T = tokens.size();
  detail::check(cache.fits(c), fn, "the KV cache was made for another configuration");
  detail::check(T <= cache.capacity() - cache.length(), fn, T, " tokens after ", cache.length(),
                " cached positions exceed the cache capacity ", cache.capacity());
  detail::check(logits.rows() == 0 || ((logits.rows() == T || logits.rows() == 1) && logits.cols() == c.vocab_size),
                fn, "logits are ", logits.rows(), " x ", logits.cols(), ", expected ", T, " or 1 or 0 rows x ",
                c.vocab_size);
  for (std::size_t t = 0; t < T; ++t)
    detail::check(tokens[t] >= 0 && static_cast<std::size_t>(tokens[t]) < c.vocab_size, fn, "token ", tokens[t],
                  " at index ", t, " is outside the vocabulary of ", c.vocab_size);
}

/// The decoder pass over tokens of one sequence at positions cache.length() + t (decoder_layer's
/// executor, plus void embed(std::int32_t token, float* row) writing dim floats).
/// logits: tokens x vocab (every position), 1 x vocab (the last), or 0 rows (none).
template <class Executor>
void decoder_forward(Executor& ex, const llama_config& c, std::span<const std::int32_t> tokens, kv_cache& cache,
                     matrix_view<float> logits, std::size_t sequence, forward_scratch& s) {
  check_forward(c, tokens, cache, logits);
  const std::size_t T = tokens.size();
  if (T == 0) return;
  const std::size_t base = cache.length();
  prepare_scratch(s, c, T, base);
  for (std::size_t t = 0; t < T; ++t) ex.embed(tokens[t], s.x.data() + t * c.dim);
  for (std::size_t l = 0; l < c.n_layers; ++l)
    decoder_layer(ex, c, l, T, base, cache.keys(l, 0), cache.values(l, 0), sequence, s);
  cache.advance(T);
  decoder_head(ex, c, T, logits, sequence, s);
}

/// y = x W^T through the fixed-order kernel.
inline void linear_float(matrix_view<const float> x, matrix_view<const float> w, matrix_view<float> y) {
  gemm_xwt(x.data(), x.row_stride(), x.rows(), w.data(), w.row_stride(), w.rows(), w.cols(), y.data(),
           y.row_stride(), false);
}

/// The float32 executor over views (the reference semantics).
struct reference_executor {
  const llama_weights* weights;
  const forward_hooks* hooks;
  void embed(std::int32_t token, float* row) const {
    const auto e = weights->embedding.row(static_cast<std::size_t>(token));
    std::copy(e.begin(), e.end(), row);
  }
  [[nodiscard]] const float* norm(site_kind site, std::size_t layer) const noexcept {
    vector_view<const float> g;
    if (site == site_kind::attention_input) g = weights->layers[layer].attention_norm;
    else if (site == site_kind::ffn_input) g = weights->layers[layer].ffn_norm;
    else g = weights->final_norm;
    return g.empty() ? nullptr : g.data();
  }
  void site_input(site_id site, std::size_t sequence, matrix_view<float> x) const {
    if (hooks != nullptr && hooks->on_site_input) hooks->on_site_input(site, sequence, x);
  }
  void linear(linear_kind kind, std::size_t layer, matrix_view<const float> x, matrix_view<float> y) const {
    linear_float(x, kind == linear_kind::classifier ? weights->classifier : weights->layers[layer].linear(kind), y);
  }
};

}  // namespace detail

/// Runs `tokens` of one sequence at positions cache.length(), cache.length() + 1, ... through the
/// float32 decoder, appending their keys and values to `cache`. logits: tokens x vocab (every
/// position), 1 x vocab (last position only) or empty (none). Hooks see every site input.
/// Errors: bad weights, a token outside the vocabulary, the cache full or of another shape, logits
/// of another shape. NaN/Inf in the weights propagate to the logits.
inline void forward(const llama_weights& weights, std::span<const std::int32_t> tokens, kv_cache& cache,
                    matrix_view<float> logits, const forward_hooks& hooks = {}, std::size_t sequence = 0) {
  check_weights(weights, "forward");
  detail::reference_executor ex{&weights, &hooks};
  detail::forward_scratch scratch;
  detail::decoder_forward(ex, weights.config, tokens, cache, logits, sequence, scratch);
}

/// The logits of every position of one sequence run from position 0 (tokens x vocab, row-major).
[[nodiscard]] inline std::vector<float> forward_logits(const llama_weights& weights,
                                                       std::span<const std::int32_t> tokens,
                                                       const forward_hooks& hooks = {}) {
  kv_cache cache(weights.config, std::max<std::size_t>(tokens.size(), 1));
  std::vector<float> logits(tokens.size() * weights.config.vocab_size);
  forward(weights, tokens, cache, matrix_view<float>(logits.data(), tokens.size(), weights.config.vocab_size),
          hooks);
  return logits;
}

/// Options of the batched passes.
struct batch_options {
  std::size_t threads = 0;  ///< 0: every core
  forward_hooks hooks;      ///< called concurrently for different sequences when threads > 1
};

/// Runs every sequence from position 0 (independently, on options.threads threads) and returns the
/// logits of every position of each (sequence i: sequences[i].size() x vocab). Same result for any
/// thread count.
[[nodiscard]] inline std::vector<std::vector<float>> forward_batch(const llama_weights& weights,
                                                                   std::span<const std::vector<std::int32_t>> sequences,
                                                                   const batch_options& options = {}) {
  check_weights(weights, "forward_batch");
  std::vector<std::vector<float>> logits(sequences.size());
  detail::parallel_for(sequences.size(), options.threads, [&](std::size_t i) {
    const auto& tokens = sequences[i];
    kv_cache cache(weights.config, std::max<std::size_t>(tokens.size(), 1));
    logits[i].resize(tokens.size() * weights.config.vocab_size);
    detail::reference_executor ex{&weights, &options.hooks};
    detail::forward_scratch scratch;
    detail::decoder_forward(ex, weights.config, tokens, cache,
                            matrix_view<float>(logits[i].data(), tokens.size(), weights.config.vocab_size), i,
                            scratch);
  });
  return logits;
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_MODEL_FORWARD_HPP
