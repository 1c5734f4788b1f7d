// llama2c.hpp — float32 loader, forward pass and tokenizers for llama2.c "legacy"
// (version 0) checkpoints, plus a tiny JSON reader for the reference files.
//
// Header-only, C++20 standard library only. Written to drive quantization
// experiments: every linear layer's input can be observed or rewritten through
// hooks, every linear layer can be replaced, and every weight matrix is mutable.
//
// Semantics follow /work/shared/models/README.md (llama2.c run.c):
//   x = emb[token]; per layer:
//     xb = rmsnorm(x) * rms_att;  q,k,v = wq xb, wk xb, wv xb;  RoPE(q, k)
//     attn = causal softmax attention (GQA);  x += wo attn
//     xb = rmsnorm(x) * rms_ffn;  x += w2 (silu(w1 xb) * (w3 xb))
//   logits = classifier (rmsnorm(x) * rms_final)
// Every matrix is (out_features, in_features) row-major: y = W x.
#pragma once

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace llama2c {

// The file format is little-endian and we read it with memcpy; supporting
// big-endian hosts would need byte swapping that nobody here can test.
static_assert(std::endian::native == std::endian::little,
              "llama2c.hpp reads little-endian files directly; big-endian hosts are not supported");

// ---------------------------------------------------------------------------
// Configuration and weight views
// ---------------------------------------------------------------------------

struct config {
  int dim = 0;
  int hidden_dim = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int vocab_size =
      0;  // always positive here; the sign in the file is decoded into shared_classifier
  int seq_len = 0;
  bool shared_classifier = true;  // classifier == token embedding matrix

  int head_size() const { return dim / n_heads; }
  int kv_dim() const { return head_size() * n_kv_heads; }
  // Number of query heads that share one key/value head (grouped-query attention).
  int kv_group_size() const { return n_heads / n_kv_heads; }
};

// Mutable view of a row-major (out_features, in_features) matrix, y = W x.
struct matrix_ref {
  float* data = nullptr;
  int out_features = 0;
  int in_features = 0;

  std::size_t size() const { return std::size_t(out_features) * std::size_t(in_features); }
  std::span<float> values() const { return {data, size()}; }
  std::span<float> row(int r) const {
    return {data + std::size_t(r) * std::size_t(in_features), std::size_t(in_features)};
  }
  float& at(int r, int c) const {
    return data[std::size_t(r) * std::size_t(in_features) + std::size_t(c)];
  }
};

// Read-only view of a row-major (out_features, in_features) matrix.
struct const_matrix_ref {
  const float* data = nullptr;
  int out_features = 0;
  int in_features = 0;

  const_matrix_ref() = default;
  const_matrix_ref(const float* d, int out, int in) : data(d), out_features(out), in_features(in) {}
  const_matrix_ref(const matrix_ref& m)
      : data(m.data), out_features(m.out_features), in_features(m.in_features) {}

  std::size_t size() const { return std::size_t(out_features) * std::size_t(in_features); }
  std::span<const float> values() const { return {data, size()}; }
  std::span<const float> row(int r) const {
    return {data + std::size_t(r) * std::size_t(in_features), std::size_t(in_features)};
  }
  float at(int r, int c) const {
    return data[std::size_t(r) * std::size_t(in_features) + std::size_t(c)];
  }
};

// The linear weights of the model. Per-layer weights use a layer index in
// [0, n_layers); the classifier has no layer (pass any value, it is ignored).
enum class weight_id { wq, wk, wv, wo, w1, w2, w3, classifier };

inline constexpr weight_id per_layer_weights[] = {weight_id::wq, weight_id::wk, weight_id::wv,
                                                  weight_id::wo, weight_id::w1, weight_id::w2,
                                                  weight_id::w3};

inline std::string_view to_string(weight_id w) {
  switch (w) {
    case weight_id::wq:
      return "wq";
    case weight_id::wk:
      return "wk";
    case weight_id::wv:
      return "wv";
    case weight_id::wo:
      return "wo";
    case weight_id::w1:
      return "w1";
    case weight_id::w2:
      return "w2";
    case weight_id::w3:
      return "w3";
    case weight_id::classifier:
      return "classifier";
  }
  return "?";
}

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

[[noreturn]] inline void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("llama2c: '" + path + "': " + what);
}

// Whole file into memory; the files here are small enough, and it makes the
// size check exact before any parsing happens.
inline std::vector<char> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail(path, "cannot open file");
  const std::streamoff end = in.tellg();
  if (end < 0) fail(path, "cannot determine file size");
  std::vector<char> bytes(static_cast<std::size_t>(end));
  in.seekg(0);
  if (!bytes.empty() && !in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())))
    fail(path, "read error");
  return bytes;
}

// Sequential little-endian reader over a byte buffer with bounds checks.
class byte_reader {
 public:
  byte_reader(std::span<const char> bytes, const std::string& path) : bytes_(bytes), path_(path) {}

  std::size_t remaining() const { return bytes_.size() - offset_; }
  std::size_t offset() const { return offset_; }

  template <class T>
  T read() {
    T v;
    copy_out(&v, sizeof v);
    return v;
  }
  void read_floats(std::vector<float>& out, std::size_t count) {
    out.resize(count);
    copy_out(out.data(), count * sizeof(float));
  }
  std::string read_string(std::size_t n) {
    require(n);
    std::string s(bytes_.data() + offset_, n);
    offset_ += n;
    return s;
  }
  void skip(std::size_t n) {
    require(n);
    offset_ += n;
  }

 private:
  void require(std::size_t n) const {
    if (n > remaining())
      fail(path_, "unexpected end of file at byte " + std::to_string(offset_) + " (needed " +
                      std::to_string(n) + " more bytes, file is " + std::to_string(bytes_.size()) +
                      ")");
  }
  void copy_out(void* dst, std::size_t n) {
    require(n);
    if (n != 0) std::memcpy(dst, bytes_.data() + offset_, n);
    offset_ += n;
  }

  std::span<const char> bytes_;
  const std::string& path_;
  std::size_t offset_ = 0;
};

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
// Model: header + float32 weights
// ---------------------------------------------------------------------------

class model {
 public:
  // Loads a llama2.c legacy checkpoint. Throws std::runtime_error naming the
  // file and the offending sizes if the header is inconsistent or the file
  // size is not exactly what the header implies.
  static model load(const std::string& path) { return load_bytes(detail::read_file_bytes(path), path); }
  // The same from bytes already in memory; `name` stands for the file in messages.
  static model load_bytes(std::span<const char> bytes, const std::string& name = "<memory>") {
    const std::string& path = name;
    constexpr std::size_t header_bytes = 7 * sizeof(std::int32_t);
    if (bytes.size() < header_bytes)
      detail::fail(path, "file is " + std::to_string(bytes.size()) + " bytes, too small for the " +
                             std::to_string(header_bytes) + "-byte header");
    detail::byte_reader reader(bytes, path);

    config c;
    c.dim = reader.read<std::int32_t>();
    c.hidden_dim = reader.read<std::int32_t>();
    c.n_layers = reader.read<std::int32_t>();
    c.n_heads = reader.read<std::int32_t>();
    c.n_kv_heads = reader.read<std::int32_t>();
    const std::int32_t signed_vocab = reader.read<std::int32_t>();
    c.seq_len = reader.read<std::int32_t>();
    // llama2.c marks an unshared classifier by a negative vocab_size.
    c.shared_classifier = signed_vocab > 0;
    c.vocab_size = signed_vocab == std::numeric_limits<std::int32_t>::min() ? 0
                   : signed_vocab < 0                                       ? -signed_vocab
                                                                            : signed_vocab;

    const std::string header_text = describe(c);
    const auto bad_header = [&](const std::string& why) {
      detail::fail(path, "invalid header (" + header_text + "): " + why);
    };
    if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
        c.vocab_size <= 0 || c.seq_len <= 0)
      bad_header("all sizes must be positive");
    if (c.dim % c.n_heads != 0) bad_header("dim is not a multiple of n_heads");
    if (c.n_heads % c.n_kv_heads != 0) bad_header("n_heads is not a multiple of n_kv_heads");
    if (c.head_size() % 2 != 0) bad_header("head_size is odd; RoPE rotates pairs of dimensions");

    // Header values are untrusted, so every size product is overflow-checked.
    constexpr std::uint64_t max_u64 = std::numeric_limits<std::uint64_t>::max();
    const auto mul = [&](std::uint64_t a, std::uint64_t b) {
      if (a != 0 && b > max_u64 / a) bad_header("implied file size overflows 64 bits");
      return a * b;
    };
    const auto add = [&](std::uint64_t a, std::uint64_t b) {
      if (b > max_u64 - a) bad_header("implied file size overflows 64 bits");
      return a + b;
    };
    const std::uint64_t dim = std::uint64_t(c.dim), hidden = std::uint64_t(c.hidden_dim),
                        layers = std::uint64_t(c.n_layers), kv_dim = std::uint64_t(c.kv_dim()),
                        vocab = std::uint64_t(c.vocab_size), seq = std::uint64_t(c.seq_len);
    // rms_att + rms_ffn, wq + wo, wk + wv, w1 + w2 + w3
    const std::uint64_t per_layer = add(add(mul(dim, 2), mul(mul(dim, dim), 2)),
                                        add(mul(mul(kv_dim, dim), 2), mul(mul(hidden, dim), 3)));
    const std::uint64_t rope_floats =
        mul(mul(seq, std::uint64_t(c.head_size() / 2)), 2);  // unused tables
    std::uint64_t floats = add(add(mul(vocab, dim), mul(layers, per_layer)), add(dim, rope_floats));
    if (!c.shared_classifier) floats = add(floats, mul(vocab, dim));
    const std::uint64_t expected = add(header_bytes, mul(floats, sizeof(float)));
    if (expected != bytes.size())
      detail::fail(path, "file is " + std::to_string(bytes.size()) + " bytes but the header (" +
                             header_text + ") implies " + std::to_string(expected) + " bytes");

    model m;
    m.config_ = c;
    const auto count = [](std::uint64_t n) { return static_cast<std::size_t>(n); };
    reader.read_floats(m.token_embedding_, count(vocab * dim));
    reader.read_floats(m.rms_att_, count(layers * dim));
    reader.read_floats(m.wq_, count(layers * dim * dim));
    reader.read_floats(m.wk_, count(layers * kv_dim * dim));
    reader.read_floats(m.wv_, count(layers * kv_dim * dim));
    reader.read_floats(m.wo_, count(layers * dim * dim));
    reader.read_floats(m.rms_ffn_, count(layers * dim));
    reader.read_floats(m.w1_, count(layers * hidden * dim));
    reader.read_floats(m.w2_, count(layers * dim * hidden));
    reader.read_floats(m.w3_, count(layers * hidden * dim));
    reader.read_floats(m.rms_final_, count(dim));
    reader.skip(count(rope_floats * sizeof(float)));
    if (!c.shared_classifier) reader.read_floats(m.classifier_, count(vocab * dim));
    return m;
  }

  const config& cfg() const { return config_; }

  // Linear weight `w` of layer `layer` (layer is ignored for the classifier).
  // Writes through the returned view change the model, e.g. to install
  // quantized-dequantized weights.
  matrix_ref linear(weight_id w, int layer) {
    const_matrix_ref v = std::as_const(*this).linear(w, layer);
    return {const_cast<float*>(v.data), v.out_features, v.in_features};
  }
  const_matrix_ref linear(weight_id w, int layer) const {
    const config& c = config_;
    if (w == weight_id::classifier) return classifier();
    if (layer < 0 || layer >= c.n_layers)
      throw std::out_of_range("llama2c::model::linear: layer " + std::to_string(layer) +
                              " out of range");
    const auto slice = [layer](const std::vector<float>& all, int out, int in) {
      const std::size_t stride = std::size_t(out) * std::size_t(in);
      return const_matrix_ref(all.data() + stride * std::size_t(layer), out, in);
    };
    switch (w) {
      case weight_id::wq:
        return slice(wq_, c.dim, c.dim);
      case weight_id::wk:
        return slice(wk_, c.kv_dim(), c.dim);
      case weight_id::wv:
        return slice(wv_, c.kv_dim(), c.dim);
      case weight_id::wo:
        return slice(wo_, c.dim, c.dim);
      case weight_id::w1:
        return slice(w1_, c.hidden_dim, c.dim);
      case weight_id::w2:
        return slice(w2_, c.dim, c.hidden_dim);
      case weight_id::w3:
        return slice(w3_, c.hidden_dim, c.dim);
      case weight_id::classifier:
        break;
    }
    return classifier();
  }

  // With a shared classifier this is the token-embedding matrix itself, so
  // writing to it also changes the embedding lookup; call
  // unshare_classifier() first to modify the two independently.
  matrix_ref classifier() {
    std::vector<float>& storage = config_.shared_classifier ? token_embedding_ : classifier_;
    return {storage.data(), config_.vocab_size, config_.dim};
  }
  const_matrix_ref classifier() const {
    const std::vector<float>& storage = config_.shared_classifier ? token_embedding_ : classifier_;
    return {storage.data(), config_.vocab_size, config_.dim};
  }
  void unshare_classifier() {
    if (!config_.shared_classifier) return;
    classifier_ = token_embedding_;
    config_.shared_classifier = false;
  }

  // Calls fn(weight_id, layer, matrix_ref) for the 7 linear weights of every
  // layer (not the classifier, which W4A4 setups usually keep in high precision).
  template <class Fn>
  void for_each_linear(Fn&& fn) {
    for (int layer = 0; layer < config_.n_layers; ++layer)
      for (weight_id w : per_layer_weights) fn(w, layer, linear(w, layer));
  }

  matrix_ref token_embedding() {
    return {token_embedding_.data(), config_.vocab_size, config_.dim};
  }
  const_matrix_ref token_embedding() const {
    return {token_embedding_.data(), config_.vocab_size, config_.dim};
  }
  std::span<const float> rms_att(int layer) const {
    return {rms_att_.data() + gain_offset(layer), dim_size()};
  }
  std::span<const float> rms_ffn(int layer) const {
    return {rms_ffn_.data() + gain_offset(layer), dim_size()};
  }
  std::span<const float> rms_final() const { return rms_final_; }
  // RMSNorm gains are mutable too, since rotation schemes fold them into weights.
  std::span<float> rms_att(int layer) { return {rms_att_.data() + gain_offset(layer), dim_size()}; }
  std::span<float> rms_ffn(int layer) { return {rms_ffn_.data() + gain_offset(layer), dim_size()}; }
  std::span<float> rms_final() { return rms_final_; }

  static std::string describe(const config& c) {
    return "dim=" + std::to_string(c.dim) + " hidden_dim=" + std::to_string(c.hidden_dim) +
           " n_layers=" + std::to_string(c.n_layers) + " n_heads=" + std::to_string(c.n_heads) +
           " n_kv_heads=" + std::to_string(c.n_kv_heads) +
           " vocab_size=" + std::to_string(c.vocab_size) +
           (c.shared_classifier ? "" : " (unshared classifier)") +
           " seq_len=" + std::to_string(c.seq_len);
  }

 private:
  model() = default;

  std::size_t dim_size() const { return std::size_t(config_.dim); }
  std::size_t gain_offset(int layer) const {
    if (layer < 0 || layer >= config_.n_layers)
      throw std::out_of_range("llama2c::model: layer " + std::to_string(layer) + " out of range");
    return dim_size() * std::size_t(layer);
  }

  config config_;
  // Stored exactly as in the file: each kind for all layers back to back.
  std::vector<float> token_embedding_, rms_att_, wq_, wk_, wv_, wo_, rms_ffn_, w1_, w2_, w3_,
      rms_final_;
  std::vector<float> classifier_;  // empty while shared with token_embedding_
};

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

// ---------------------------------------------------------------------------
// Tokenizer (llama2.c tokenizer.bin)
// ---------------------------------------------------------------------------

class tokenizer {
 public:
  static constexpr int unk_id = 0;
  static constexpr int bos_id = 1;
  static constexpr int eos_id = 2;
  static constexpr int byte_fallback_offset = 3;  // id of <0x00>; <0xXX> has id XX + 3

  // Reads int32 max_token_length, then (float score, int32 length, bytes)
  // entries until the end of the file. If expected_vocab_size >= 0, the
  // number of entries must match it (use the model's vocab_size).
  static tokenizer load(const std::string& path, int expected_vocab_size = -1) {
    return load_bytes(detail::read_file_bytes(path), path, expected_vocab_size);
  }
  // The same from bytes already in memory; `name` stands for the file in messages.
  static tokenizer load_bytes(std::span<const char> bytes, const std::string& name = "<memory>",
                              int expected_vocab_size = -1) {
    const std::string& path = name;
    detail::byte_reader reader(bytes, path);
    tokenizer t;
    t.max_token_length_ = reader.read<std::int32_t>();
    if (t.max_token_length_ <= 0)
      detail::fail(path, "invalid max_token_length " + std::to_string(t.max_token_length_));
    while (reader.remaining() > 0) {
      const float score = reader.read<float>();
      const std::int32_t length = reader.read<std::int32_t>();
      if (length < 0)
        detail::fail(path, "negative piece length " + std::to_string(length) + " for token " +
                               std::to_string(t.pieces_.size()));
      t.scores_.push_back(score);
      t.pieces_.push_back(reader.read_string(std::size_t(length)));
    }
    if (expected_vocab_size >= 0 && t.pieces_.size() != std::size_t(expected_vocab_size))
      detail::fail(path, "holds " + std::to_string(t.pieces_.size()) +
                             " tokens but the model has vocab_size " +
                             std::to_string(expected_vocab_size));
    if (t.pieces_.size() < std::size_t(byte_fallback_offset + 256))
      detail::fail(path, "holds " + std::to_string(t.pieces_.size()) +
                             " tokens, fewer than the 259 special + byte-fallback tokens");
    for (std::size_t id = 0; id < t.pieces_.size(); ++id)
      t.lookup_.emplace(t.pieces_[id], int(id));  // first id wins for duplicate pieces
    return t;
  }

  int vocab_size() const { return int(pieces_.size()); }
  int max_token_length() const { return max_token_length_; }
  const std::string& piece(int id) const { return pieces_.at(std::size_t(id)); }
  float score(int id) const { return scores_.at(std::size_t(id)); }
  // Id of an exact piece, or -1.
  int find(std::string_view piece_text) const {
    const auto it = lookup_.find(std::string(piece_text));
    return it == lookup_.end() ? -1 : it->second;
  }

  // Byte-level vocabularies (like tok_bytes512.bin) have no " " piece,
  // which SentencePiece BPE vocabularies need for their dummy prefix.
  bool is_byte_level() const { return find(" ") < 0; }

  // Bytes of `token` as run.c prints them: a piece that follows BOS loses
  // its leading space, and <0xXX> pieces become the raw byte.
  std::string decode(int prev_token, int token) const {
    std::string_view text = piece(token);
    if (prev_token == bos_id && !text.empty() && text.front() == ' ') text.remove_prefix(1);
    if (const int byte = parse_byte_piece(text); byte >= 0) return std::string(1, char(byte));
    return std::string(text);
  }

  // Concatenated decode of `tokens`, where the first token follows `prev_token`.
  std::string decode(std::span<const int> tokens, int prev_token = -1) const {
    std::string text;
    for (int token : tokens) {
      text += decode(prev_token, token);
      prev_token = token;
    }
    return text;
  }

  // Byte-level encoding: optional BOS, then byte + 3 for each byte of the
  // UTF-8 text; no dummy prefix and no merges.
  std::vector<int> encode_bytes(std::string_view text, bool add_bos = true,
                                bool add_eos = false) const {
    std::vector<int> ids;
    ids.reserve(text.size() + 2);
    if (add_bos) ids.push_back(bos_id);
    for (char ch : text) ids.push_back(byte_id(ch));
    if (add_eos) ids.push_back(eos_id);
    return ids;
  }

  // SentencePiece-style BPE as in run.c encode(): dummy-prefix space, one
  // token per UTF-8 code point (byte fallback when the code point is not a
  // piece), then repeatedly merge the adjacent pair whose concatenation is
  // the highest-scoring piece (leftmost on ties) until no pair merges.
  std::vector<int> encode_bpe(std::string_view text, bool add_bos = true,
                              bool add_eos = false) const {
    std::vector<int> ids;
    if (add_bos) ids.push_back(bos_id);
    std::vector<int> pieces;
    if (!text.empty()) {
      // The dummy prefix goes through the same lookup as the text, so a
      // vocabulary without " " falls back to the byte token.
      const std::string prefixed = " " + std::string(text);
      std::size_t i = 0;
      while (i < prefixed.size()) {
        std::size_t end = i + 1;  // code point = lead byte + continuation bytes (at most 4)
        while (end < prefixed.size() && end - i < 4 &&
               (static_cast<unsigned char>(prefixed[end]) & 0xC0) == 0x80)
          ++end;
        const std::string_view code_point(prefixed.data() + i, end - i);
        if (const int id = find(code_point); id >= 0) {
          pieces.push_back(id);
        } else {
          for (char ch : code_point) pieces.push_back(byte_id(ch));
        }
        i = end;
      }
    }
    merge_pairs(pieces);
    ids.insert(ids.end(), pieces.begin(), pieces.end());
    if (add_eos) ids.push_back(eos_id);
    return ids;
  }

  // encode_bytes for byte-level vocabularies, encode_bpe otherwise.
  std::vector<int> encode(std::string_view text, bool add_bos = true, bool add_eos = false) const {
    return is_byte_level() ? encode_bytes(text, add_bos, add_eos)
                           : encode_bpe(text, add_bos, add_eos);
  }

 private:
  tokenizer() = default;

  static int byte_id(char ch) { return int(static_cast<unsigned char>(ch)) + byte_fallback_offset; }

  // "<0xXX>" -> XX, anything else -> -1.
  static int parse_byte_piece(std::string_view p) {
    if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
    int value = 0;
    const auto [end, error] = std::from_chars(p.data() + 3, p.data() + 5, value, 16);
    return (error == std::errc() && end == p.data() + 5) ? value : -1;
  }

  void merge_pairs(std::vector<int>& ids) const {
    std::string candidate;
    while (ids.size() >= 2) {
      float best_score = -std::numeric_limits<float>::infinity();
      int best_id = -1;
      std::size_t best_index = 0;
      for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
        candidate = pieces_[std::size_t(ids[i])];
        candidate += pieces_[std::size_t(ids[i + 1])];
        const int id = find(candidate);
        if (id >= 0 && (best_id < 0 || scores_[std::size_t(id)] > best_score)) {
          best_score = scores_[std::size_t(id)];
          best_id = id;
          best_index = i;
        }
      }
      if (best_id < 0) break;
      ids[best_index] = best_id;
      ids.erase(ids.begin() + std::ptrdiff_t(best_index) + 1);
    }
  }

  int max_token_length_ = 0;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> lookup_;
};

// ---------------------------------------------------------------------------
// Minimal JSON reader (enough for the reference files)
// ---------------------------------------------------------------------------

namespace json {

class value {
 public:
  enum class kind { null, boolean, number, string, array, object };
  using array_type = std::vector<value>;
  using object_type = std::vector<std::pair<std::string, value>>;  // keeps file order

  value() = default;
  static value make_bool(bool b) {
    value v;
    v.kind_ = kind::boolean;
    v.bool_ = b;
    return v;
  }
  static value make_number(double d) {
    value v;
    v.kind_ = kind::number;
    v.number_ = d;
    return v;
  }
  static value make_string(std::string s) {
    value v;
    v.kind_ = kind::string;
    v.string_ = std::move(s);
    return v;
  }
  static value make_array(array_type a) {
    value v;
    v.kind_ = kind::array;
    v.array_ = std::move(a);
    return v;
  }
  static value make_object(object_type o) {
    value v;
    v.kind_ = kind::object;
    v.object_ = std::move(o);
    return v;
  }

  kind type() const { return kind_; }
  bool is_null() const { return kind_ == kind::null; }
  bool is_bool() const { return kind_ == kind::boolean; }
  bool is_number() const { return kind_ == kind::number; }
  bool is_string() const { return kind_ == kind::string; }
  bool is_array() const { return kind_ == kind::array; }
  bool is_object() const { return kind_ == kind::object; }

  bool as_bool() const {
    expect(kind::boolean, "a boolean");
    return bool_;
  }
  double as_number() const {
    expect(kind::number, "a number");
    return number_;
  }
  // Numbers that must be exact integers (token ids, sizes).
  int as_int() const {
    const double d = as_number();
    if (d != std::floor(d) || d < double(std::numeric_limits<int>::min()) ||
        d > double(std::numeric_limits<int>::max()))
      throw std::runtime_error("json: " + std::to_string(d) + " is not an int");
    return int(d);
  }
  const std::string& as_string() const {
    expect(kind::string, "a string");
    return string_;
  }
  const array_type& as_array() const {
    expect(kind::array, "an array");
    return array_;
  }
  const object_type& as_object() const {
    expect(kind::object, "an object");
    return object_;
  }

  // Object member, or nullptr when absent.
  const value* find(std::string_view key) const {
    for (const auto& [k, v] : as_object())
      if (k == key) return &v;
    return nullptr;
  }
  const value& operator[](std::string_view key) const {
    if (const value* v = find(key)) return *v;
    throw std::runtime_error("json: missing key \"" + std::string(key) + "\"");
  }
  const value& operator[](std::size_t index) const {
    const array_type& a = as_array();
    if (index >= a.size())
      throw std::runtime_error("json: index " + std::to_string(index) + " out of range " +
                               std::to_string(a.size()));
    return a[index];
  }
  std::size_t size() const { return is_array() ? array_.size() : as_object().size(); }

  std::vector<int> to_int_vector() const {
    std::vector<int> out;
    for (const value& v : as_array()) out.push_back(v.as_int());
    return out;
  }
  std::vector<double> to_double_vector() const {
    std::vector<double> out;
    for (const value& v : as_array()) out.push_back(v.as_number());
    return out;
  }

 private:
  void expect(kind k, const char* what) const {
    if (kind_ != k) throw std::runtime_error(std::string("json: value is not ") + what);
  }

  kind kind_ = kind::null;
  bool bool_ = false;
  double number_ = 0.0;
  std::string string_;
  array_type array_;
  object_type object_;
};

namespace detail {

// Recursive-descent parser over RFC 8259 JSON.
class parser {
 public:
  explicit parser(std::string_view text) : text_(text) {}

  value parse_document() {
    value v = parse_value(0);
    skip_whitespace();
    if (pos_ != text_.size()) error("trailing characters after the JSON value");
    return v;
  }

 private:
  // Nesting limit so hostile input cannot overflow the stack.
  static constexpr int max_depth = 256;

  [[noreturn]] void error(const std::string& what) const {
    throw std::runtime_error("json: " + what + " at offset " + std::to_string(pos_));
  }

  void skip_whitespace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool at_end() const { return pos_ >= text_.size(); }
  void expect_char(char c) {
    if (peek() != c) error(std::string("expected '") + c + "'");
    ++pos_;
  }
  void expect_literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) error("invalid literal");
    pos_ += word.size();
  }

  value parse_value(int depth) {
    if (depth > max_depth) error("nesting too deep");
    skip_whitespace();
    if (at_end()) error("unexpected end of input");
    switch (peek()) {
      case '{':
        return parse_object(depth);
      case '[':
        return parse_array(depth);
      case '"':
        return value::make_string(parse_string());
      case 't':
        expect_literal("true");
        return value::make_bool(true);
      case 'f':
        expect_literal("false");
        return value::make_bool(false);
      case 'n':
        expect_literal("null");
        return value();
      default:
        return value::make_number(parse_number());
    }
  }

  value parse_object(int depth) {
    expect_char('{');
    value::object_type members;
    skip_whitespace();
    if (peek() == '}') {
      ++pos_;
      return value::make_object(std::move(members));
    }
    while (true) {
      skip_whitespace();
      if (peek() != '"') error("expected a string key");
      std::string key = parse_string();
      skip_whitespace();
      expect_char(':');
      members.emplace_back(std::move(key), parse_value(depth + 1));
      skip_whitespace();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect_char('}');
      return value::make_object(std::move(members));
    }
  }

  value parse_array(int depth) {
    expect_char('[');
    value::array_type items;
    skip_whitespace();
    if (peek() == ']') {
      ++pos_;
      return value::make_array(std::move(items));
    }
    while (true) {
      items.push_back(parse_value(depth + 1));
      skip_whitespace();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect_char(']');
      return value::make_array(std::move(items));
    }
  }

  // Validates the JSON number grammar, then converts with from_chars
  // (locale-independent, correctly rounded).
  double parse_number() {
    const std::size_t start = pos_;
    const auto is_digit = [this] { return !at_end() && peek() >= '0' && peek() <= '9'; };
    const auto digits = [&] {
      if (!is_digit()) error("invalid number");
      while (is_digit()) ++pos_;
    };
    if (peek() == '-') ++pos_;
    if (peek() == '0')
      ++pos_;
    else
      digits();
    if (peek() == '.') {
      ++pos_;
      digits();
    }
    if ((peek() == 'e' || peek() == 'E')) {
      ++pos_;
      if ((peek() == '+' || peek() == '-')) ++pos_;
      digits();
    }
    double result = 0.0;
    const auto [end, err] = std::from_chars(text_.data() + start, text_.data() + pos_, result);
    if (err != std::errc() || end != text_.data() + pos_) error("number out of range");
    return result;
  }

  unsigned parse_hex4() {
    if (text_.size() - pos_ < 4) error("truncated \\u escape");
    unsigned code = 0;
    const auto [end, err] = std::from_chars(text_.data() + pos_, text_.data() + pos_ + 4, code, 16);
    if (err != std::errc() || end != text_.data() + pos_ + 4) error("invalid \\u escape");
    pos_ += 4;
    return code;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  std::string parse_string() {
    expect_char('"');
    std::string out;
    while (true) {
      if (at_end()) error("unterminated string");
      const char c = text_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) error("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (at_end()) error("unterminated escape");
      const char e = text_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          unsigned cp = parse_hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {  // high surrogate: must pair with a low one
            if (text_.substr(pos_, 2) != "\\u") error("unpaired surrogate");
            pos_ += 2;
            const unsigned low = parse_hex4();
            if (low < 0xDC00 || low >= 0xE000) error("invalid low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            error("unpaired surrogate");
          }
          append_utf8(out, cp);
          break;
        }
        default:
          error("invalid escape");
      }
    }
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace detail

inline value parse(std::string_view text) { return detail::parser(text).parse_document(); }

inline value parse_file(const std::string& path) {
  const std::vector<char> bytes = llama2c::detail::read_file_bytes(path);
  try {
    return parse(std::string_view(bytes.data(), bytes.size()));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("'" + path + "': " + e.what());
  }
}

}  // namespace json

}  // namespace llama2c
