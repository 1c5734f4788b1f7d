// llama2c_model.hpp — loader for llama2.c "legacy" (version 0) float32 checkpoints.
//
// Header-only, C++20 standard library only. Semantics follow llama2.c run.c (docs in
// models/stories260K/README.md): a header of 7 int32, then the float32 arrays each kind for all
// layers back to back. Every matrix is (out_features, in_features) row-major: y = W x.
// Errors: std::runtime_error naming the file and the offending sizes. Bytes are hostile: every size
// is bounded by the file size before anything is allocated.
//
// Namespace: `llama2c` (tool-side code; the library is `singlequant`). `to_weights` gives the
// library's `singlequant::llama_weights` views over a loaded model.
#pragma once

#include <singlequant/model/llama.hpp>

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


/// The model's parameters as the library's views (valid while `m` lives and keeps its shape).
inline singlequant::llama_weights to_weights(const model& m) {
  namespace sq = singlequant;
  const config& c = m.cfg();
  sq::llama_weights w;
  const auto size = [](int n) { return static_cast<std::size_t>(n); };
  w.config.dim = size(c.dim);
  w.config.hidden_dim = size(c.hidden_dim);
  w.config.n_layers = size(c.n_layers);
  w.config.n_heads = size(c.n_heads);
  w.config.n_kv_heads = size(c.n_kv_heads);
  w.config.vocab_size = size(c.vocab_size);
  w.config.max_seq_len = size(c.seq_len);
  w.config.norm_eps = 1e-5f;
  w.config.rope_theta = 10000.0;
  w.config.tied_classifier = c.shared_classifier;
  const auto view = [&](const_matrix_ref r) {
    return sq::matrix_view<const float>(r.data, size(r.out_features), size(r.in_features));
  };
  w.embedding = view(m.token_embedding());
  w.classifier = view(m.classifier());
  w.final_norm = sq::vector_view<const float>(m.rms_final().data(), m.rms_final().size());
  w.layers.resize(w.config.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    sq::llama_layer_view& layer = w.layers[size(l)];
    layer.attention_norm = sq::vector_view<const float>(m.rms_att(l).data(), m.rms_att(l).size());
    layer.ffn_norm = sq::vector_view<const float>(m.rms_ffn(l).data(), m.rms_ffn(l).size());
    layer.q = view(m.linear(weight_id::wq, l));
    layer.k = view(m.linear(weight_id::wk, l));
    layer.v = view(m.linear(weight_id::wv, l));
    layer.o = view(m.linear(weight_id::wo, l));
    layer.gate = view(m.linear(weight_id::w1, l));
    layer.up = view(m.linear(weight_id::w3, l));
    layer.down = view(m.linear(weight_id::w2, l));
  }
  return w;
}

}  // namespace llama2c
