// A small GGUF writer for the tests and the fuzz seeds (test_gguf.cpp, fuzz/make_seeds.cpp): metadata
// pairs, tensor descriptions and aligned data, and a llama model written as llama.cpp lays it out.
#ifndef SINGLEQUANT_TESTS_GGUF_BUILDER_HPP
#define SINGLEQUANT_TESTS_GGUF_BUILDER_HPP

#include <singlequant/fp16.hpp>
#include <singlequant/model/llama.hpp>

#include <formats/gguf.hpp>

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace sq_test {

namespace sq = singlequant;
namespace sqt = singlequant::tools;

/// A tiny GGUF writer: metadata pairs, tensor descriptions, aligned data.
struct gguf_builder {
  std::vector<std::uint8_t> kv;
  std::uint64_t kv_count = 0;
  struct tensor {
    std::string name;
    std::vector<std::uint64_t> dims;
    std::uint32_t type;
    std::vector<std::uint8_t> data;
  };
  std::vector<tensor> tensors;
  std::uint32_t version = 3;
  std::uint64_t alignment = 32;

  static void put(std::vector<std::uint8_t>& b, std::uint64_t v, int width) {
    for (int k = 0; k < width; ++k) b.push_back(static_cast<std::uint8_t>(v >> (8 * k)));
  }
  static void put_string(std::vector<std::uint8_t>& b, const std::string& s) {
    put(b, s.size(), 8);
    b.insert(b.end(), s.begin(), s.end());
  }
  void key(const std::string& k, sqt::gguf_type t) {
    put_string(kv, k);
    put(kv, static_cast<std::uint32_t>(t), 4);
    ++kv_count;
  }
  void u32(const std::string& k, std::uint32_t v) {
    key(k, sqt::gguf_type::uint32);
    put(kv, v, 4);
  }
  void f32(const std::string& k, float v) {
    key(k, sqt::gguf_type::float32);
    put(kv, std::bit_cast<std::uint32_t>(v), 4);
  }
  void str(const std::string& k, const std::string& v) {
    key(k, sqt::gguf_type::string);
    put_string(kv, v);
  }
  void strings(const std::string& k, const std::vector<std::string>& v) {
    key(k, sqt::gguf_type::array);
    put(kv, static_cast<std::uint32_t>(sqt::gguf_type::string), 4);
    put(kv, v.size(), 8);
    for (const auto& s : v) put_string(kv, s);
  }
  template <class T>
  void numbers(const std::string& k, sqt::gguf_type element, const std::vector<T>& v) {
    key(k, sqt::gguf_type::array);
    put(kv, static_cast<std::uint32_t>(element), 4);
    put(kv, v.size(), 8);
    for (const T& x : v) {
      std::uint64_t bits = 0;
      std::memcpy(&bits, &x, sizeof x);
      put(kv, bits, sizeof x);
    }
  }
  // Values as F32, F16 or BF16 (the values must be exact in the type).
  void add(const std::string& name, std::vector<std::uint64_t> dims, const float* values, std::size_t n,
           std::uint32_t type) {
    tensor t{name, std::move(dims), type, {}};
    for (std::size_t i = 0; i < n; ++i) {
      if (type == sqt::ggml_type_f32) put(t.data, std::bit_cast<std::uint32_t>(values[i]), 4);
      else if (type == sqt::ggml_type_f16) put(t.data, sq::float_to_half_bits(values[i]), 2);
      else put(t.data, std::bit_cast<std::uint32_t>(values[i]) >> 16, 2);
    }
    tensors.push_back(std::move(t));
  }
  [[nodiscard]] std::vector<std::uint8_t> bytes() const {
    std::vector<std::uint8_t> b = {'G', 'G', 'U', 'F'};
    put(b, version, 4);
    put(b, tensors.size(), 8);
    put(b, kv_count, 8);
    b.insert(b.end(), kv.begin(), kv.end());
    std::uint64_t offset = 0;
    for (const auto& t : tensors) {
      put_string(b, t.name);
      put(b, t.dims.size(), 4);
      for (const auto d : t.dims) put(b, d, 8);
      put(b, t.type, 4);
      put(b, offset, 8);
      offset += (t.data.size() + alignment - 1) / alignment * alignment;
    }
    while (b.size() % alignment != 0) b.push_back(0);
    for (const auto& t : tensors) {
      b.insert(b.end(), t.data.begin(), t.data.end());
      while (b.size() % alignment != 0) b.push_back(0);
    }
    return b;
  }
};

/// A llama GGUF of `m` (output.weight written unless tied) with the given vocabulary.
inline gguf_builder llama_gguf(sq::llama_model& m, std::uint32_t type, const std::vector<std::string>& vocab,
                               const std::vector<float>& scores, const std::vector<std::int32_t>& token_types) {
  const sq::llama_config& c = m.config();
  gguf_builder g;
  g.str("general.architecture", "llama");
  g.u32("general.alignment", 32);
  g.u32("llama.context_length", static_cast<std::uint32_t>(c.max_seq_len));
  g.u32("llama.embedding_length", static_cast<std::uint32_t>(c.dim));
  g.u32("llama.block_count", static_cast<std::uint32_t>(c.n_layers));
  g.u32("llama.feed_forward_length", static_cast<std::uint32_t>(c.hidden_dim));
  g.u32("llama.rope.dimension_count", static_cast<std::uint32_t>(c.head_dim()));
  g.u32("llama.attention.head_count", static_cast<std::uint32_t>(c.n_heads));
  g.u32("llama.attention.head_count_kv", static_cast<std::uint32_t>(c.n_kv_heads));
  g.f32("llama.attention.layer_norm_rms_epsilon", c.norm_eps);
  g.f32("llama.rope.freq_base", static_cast<float>(c.rope_theta));
  g.str("tokenizer.ggml.model", "llama");
  g.strings("tokenizer.ggml.tokens", vocab);
  g.numbers("tokenizer.ggml.scores", sqt::gguf_type::float32, scores);
  g.numbers("tokenizer.ggml.token_type", sqt::gguf_type::int32, token_types);
  g.u32("tokenizer.ggml.bos_token_id", 1);
  g.u32("tokenizer.ggml.eos_token_id", 2);
  auto matrix = [&](const std::string& name, sq::matrix_view<float> w) {
    g.add(name, {w.cols(), w.rows()}, w.data(), w.rows() * w.cols(), type);
  };
  matrix("token_embd.weight", m.embedding());
  g.add("output_norm.weight", {c.dim}, m.final_norm().data(), c.dim, type);
  if (!c.tied_classifier) matrix("output.weight", m.classifier());
  const char* names[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
  for (std::size_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    g.add(p + "attn_norm.weight", {c.dim}, m.layer_at(l).attention_norm.data(), c.dim, type);
    g.add(p + "ffn_norm.weight", {c.dim}, m.layer_at(l).ffn_norm.data(), c.dim, type);
    for (const auto kind : sq::layer_linears) matrix(p + names[sq::llama_model::index(kind)] + ".weight", m.linear(l, kind));
  }
  return g;
}

}  // namespace sq_test

#endif  // SINGLEQUANT_TESTS_GGUF_BUILDER_HPP
