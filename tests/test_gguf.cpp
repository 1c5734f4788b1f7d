// Tests of tools/formats/gguf.hpp: stories260K.gguf against stories260K.bin (same configuration,
// bit-identical logits, the float64 reference), small GGUF files written here (F32, F16, BF16,
// version 2 and 3) against the model they were written from, and hostile input.
#include <singlequant/model/forward.hpp>
#include <singlequant/model/quantize.hpp>

#include <formats/gguf.hpp>
#include <formats/qmodel.hpp>

#include <cstring>
#include <filesystem>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "gguf_builder.hpp"
#include "model_support.hpp"

namespace sq = singlequant;
namespace sqt = singlequant::tools;

namespace {

using sq_test::gguf_builder;

sq::llama_config tiny_config(bool tied) {
  sq::llama_config c;
  c.dim = 8;
  c.hidden_dim = 12;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.vocab_size = 6;
  c.max_seq_len = 16;
  c.rope_theta = 500.0;
  c.norm_eps = 1e-6f;
  c.tied_classifier = tied;
  return c;
}

// A random model whose values are multiples of 1/64 in (-4, 4): exact in F16 and BF16.
sq::llama_model tiny_model(bool tied) {
  sq::llama_model m = sq_test::random_model(tiny_config(tied), 7);
  auto round = [](float& v) { v = std::clamp(std::round(v * 64.0f) / 64.0f, -3.984375f, 3.984375f); };
  auto round_all = [&](sq::matrix_view<float> w) {
    for (std::size_t r = 0; r < w.rows(); ++r)
      for (std::size_t k = 0; k < w.cols(); ++k) round(w(r, k));
  };
  round_all(m.embedding());
  round_all(m.classifier());
  for (float& g : m.final_norm()) round(g);
  for (std::size_t l = 0; l < m.config().n_layers; ++l) {
    for (const auto kind : sq::layer_linears) round_all(m.linear(l, kind));
    for (float& g : m.layer_at(l).attention_norm) round(g);
    for (float& g : m.layer_at(l).ffn_norm) round(g);
  }
  return m;
}

std::vector<std::string> tiny_vocab() { return {"<unk>", "<s>", "</s>", "a", "b", "\xe2\x96\x81" "c"}; }

gguf_builder tiny_gguf(sq::llama_model& m, std::uint32_t type) {
  return sq_test::llama_gguf(m, type, tiny_vocab(), {0, 0, 0, -1.5f, -2.5f, -3.5f}, {2, 3, 3, 1, 1, 1});
}

void check_same_config(const sq::llama_config& a, const sq::llama_config& b) {
  CHECK(a.dim == b.dim);
  CHECK(a.hidden_dim == b.hidden_dim);
  CHECK(a.n_layers == b.n_layers);
  CHECK(a.n_heads == b.n_heads);
  CHECK(a.n_kv_heads == b.n_kv_heads);
  CHECK(a.vocab_size == b.vocab_size);
  CHECK(a.max_seq_len == b.max_seq_len);
  CHECK(a.norm_eps == b.norm_eps);
  CHECK(a.rope_theta == b.rope_theta);
  CHECK(a.tied_classifier == b.tied_classifier);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// read_gguf_llama must throw singlequant::error whose message contains `needle`.
void check_rejects(const std::vector<std::uint8_t>& bytes, const std::string& needle) {
  std::string message;
  try {
    (void)sqt::read_gguf_llama(bytes);
  } catch (const sq::error& e) {
    message = e.what();
  }
  CAPTURE(message);
  CHECK(message.find(needle) != std::string::npos);
}

void put_u64(std::vector<std::uint8_t>& b, std::size_t at, std::uint64_t v) {
  for (int k = 0; k < 8; ++k) b[at + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(v >> (8 * k));
}

}  // namespace

TEST_CASE("gguf stories260K: same configuration, bit-identical logits and quantised models as the llama2.c file") {
  const auto bin = sq_test::load_reference_model("stories260K.bin");
  const std::filesystem::path gguf_path = std::filesystem::path(sq_test::models_dir()) / "stories260K.gguf";
  if (!bin) return;
  if (!std::filesystem::exists(gguf_path)) {
    MESSAGE("skipping: " << gguf_path.string() << " not found");
    return;
  }
  const sqt::gguf_llama g = sqt::read_gguf_llama_file(gguf_path);
  // output.weight is a bit-identical copy of token_embd.weight: read as tied, like the .bin.
  check_same_config(g.model.config(), bin->weights.config);
  const sq::llama_weights w = g.model.weights();
  for (const auto& tokens : {std::vector<std::int32_t>{1}, std::vector<std::int32_t>{1, 400, 31, 27, 261, 9},
                             sq_test::random_tokens(40, 512, 3)}) {
    const auto a = sq::forward_logits(w, tokens), b = sq::forward_logits(bin->weights, tokens);
    CHECK(same_bits(a, b));
  }
  // Identical quantised models (same bytes in the quantised-model file) for every preset.
  std::vector<std::vector<std::int32_t>> calibration;
  for (std::uint64_t i = 0; i < 2; ++i) calibration.push_back(sq_test::random_tokens(32, 512, 20 + i));
  for (const auto method : {sq::quant_method::rtn, sq::quant_method::hadamard, sq::quant_method::singlequant}) {
    CAPTURE(int(method));
    const auto options = sq::quantize_preset(method, 1);
    CHECK(sqt::serialize_qmodel(sq::quantize_model(w, calibration, options), "") ==
          sqt::serialize_qmodel(sq::quantize_model(bin->weights, calibration, options), ""));
  }
  // The float64 reference of the README (last-position logits within 1e-4).
  const auto reference =
      llama2c::json::parse_file((std::filesystem::path(sq_test::models_dir()) / "stories260K.reference.json").string());
  std::vector<std::int32_t> tokens;
  for (const int t : reference["sequence"]["token_ids"].to_int_vector()) tokens.push_back(t);
  const std::vector<double> expected = reference["sequence"]["last_position_logits_float32"].to_double_vector();
  const auto logits = sq::forward_logits(w, tokens);
  double worst = 0;
  for (std::size_t i = 0; i < expected.size(); ++i)
    worst = std::max(worst, std::fabs(double(logits[(tokens.size() - 1) * 512 + i]) - expected[i]));
  MESSAGE("stories260K.gguf: max |logit - float64 reference| at the last position = " << worst);
  CHECK(worst < 1e-4);
  // The tokenizer.
  REQUIRE(g.tokenizer.vocab.size() == 512);
  CHECK(g.tokenizer.scores.size() == 512);
  CHECK(g.tokenizer.token_types.size() == 512);
  CHECK(g.tokenizer.bos == 1);
  CHECK(g.tokenizer.eos == 2);
  CHECK(g.tokenizer.vocab[0] == "<unk>");
  CHECK(g.tokenizer.vocab[3] == "<0x00>");
  CHECK(g.tokenizer.vocab[258] == "<0xFF>");
}

TEST_CASE("gguf: F32, F16 and BF16 files, versions 2 and 3, tied or not, load the model they were written from") {
  for (const bool tied : {false, true})
    for (const std::uint32_t type : {sqt::ggml_type_f32, sqt::ggml_type_f16, sqt::ggml_type_bf16})
      for (const std::uint32_t version : {2u, 3u}) {
        CAPTURE(tied);
        CAPTURE(type);
        CAPTURE(version);
        sq::llama_model m = tiny_model(tied);
        gguf_builder b = tiny_gguf(m, type);
        b.version = version;
        const sqt::gguf_llama g = sqt::read_gguf_llama(b.bytes());
        check_same_config(g.model.config(), m.config());
        const auto tokens = sq_test::random_tokens(10, 6, 11);
        CHECK(same_bits(sq::forward_logits(g.model.weights(), tokens), sq::forward_logits(m.weights(), tokens)));
        CHECK(g.tokenizer.vocab == tiny_vocab());
        CHECK(g.tokenizer.scores == std::vector<float>{0, 0, 0, -1.5f, -2.5f, -3.5f});
        CHECK(g.tokenizer.token_types == std::vector<std::int32_t>{2, 3, 3, 1, 1, 1});
      }
}

TEST_CASE("gguf: metadata of every value type, nested arrays, alignment other than 32") {
  sq::llama_model again = tiny_model(false);
  gguf_builder c = tiny_gguf(again, sqt::ggml_type_f32);
  c.kv.clear();
  c.kv_count = 0;
  c.alignment = 64;
  c.str("general.architecture", "llama");
  c.u32("general.alignment", 64);
  for (const auto& [k, v] : std::vector<std::pair<std::string, std::uint32_t>>{
           {"llama.context_length", 16}, {"llama.embedding_length", 8}, {"llama.block_count", 2},
           {"llama.feed_forward_length", 12}, {"llama.attention.head_count", 2}, {"llama.attention.head_count_kv", 1}})
    c.u32(k, v);
  c.f32("llama.attention.layer_norm_rms_epsilon", 1e-6f);
  c.f32("llama.rope.freq_base", 500.0f);
  c.strings("tokenizer.ggml.tokens", tiny_vocab());
  for (const auto t : {sqt::gguf_type::uint8, sqt::gguf_type::int8, sqt::gguf_type::boolean}) {
    c.key(std::string("x.") + std::string(sqt::to_string(t)), t);
    c.kv.push_back(1);
  }
  for (const auto t : {sqt::gguf_type::uint16, sqt::gguf_type::int16}) {
    c.key(std::string("x.") + std::string(sqt::to_string(t)), t);
    gguf_builder::put(c.kv, 2, 2);
  }
  for (const auto t : {sqt::gguf_type::int32, sqt::gguf_type::uint64, sqt::gguf_type::int64, sqt::gguf_type::float64}) {
    c.key(std::string("x.") + std::string(sqt::to_string(t)), t);
    gguf_builder::put(c.kv, 3, sqt::gguf_scalar_bytes(t) == 4 ? 4 : 8);
  }
  // An array of two arrays of uint16.
  c.key("x.nested", sqt::gguf_type::array);
  gguf_builder::put(c.kv, static_cast<std::uint32_t>(sqt::gguf_type::array), 4);
  gguf_builder::put(c.kv, 2, 8);
  for (int i = 0; i < 2; ++i) {
    gguf_builder::put(c.kv, static_cast<std::uint32_t>(sqt::gguf_type::uint16), 4);
    gguf_builder::put(c.kv, 3, 8);
    for (int k = 0; k < 3; ++k) gguf_builder::put(c.kv, static_cast<std::uint64_t>(k + i), 2);
  }
  const auto bytes = c.bytes();
  const sqt::gguf_file f = sqt::parse_gguf(bytes);
  CHECK(f.alignment == 64);
  CHECK(f.data_offset % 64 == 0);
  REQUIRE(f.find("x.int64") != nullptr);
  CHECK(f.find("x.int64")->as_unsigned() == 3u);
  CHECK(f.find("x.bool")->bits == 1u);
  REQUIRE(f.find("x.nested") != nullptr);
  CHECK(f.find("x.nested")->arrays.size() == 2);
  CHECK(f.find("x.nested")->arrays[1].raw.size() == 6);
  const sqt::gguf_llama g = sqt::read_gguf_llama(bytes);
  CHECK(g.model.config().rope_theta == 500.0);
  const auto tokens = sq_test::random_tokens(5, 6, 2);
  CHECK(same_bits(sq::forward_logits(g.model.weights(), tokens), sq::forward_logits(again.weights(), tokens)));
}

TEST_CASE("gguf bad input: truncation at every offset, bad magic, bad version") {
  sq::llama_model m = tiny_model(false);
  const auto good = tiny_gguf(m, sqt::ggml_type_f16).bytes();
  (void)sqt::read_gguf_llama(good);
  std::size_t rejected = 0;
  for (std::size_t n = 0; n < good.size(); ++n) {
    const std::vector<std::uint8_t> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    try {
      (void)sqt::read_gguf_llama(cut);
    } catch (const sq::error&) {
      ++rejected;
    }
  }
  CHECK(rejected == good.size());
  check_rejects(std::vector<std::uint8_t>(good.begin(), good.begin() + 100), "metadata_kv_count 17 needs at least 13 bytes each, 76 bytes follow the header (truncated");
  check_rejects(std::vector<std::uint8_t>(good.begin(), good.end() - 10), "truncated: tensor 'blk.1.ffn_down.weight'");
  check_rejects(std::vector<std::uint8_t>(good.begin(), good.begin() + 300), "tensor_count 21 needs at least 32 bytes each, 276 bytes follow the header (truncated");
  auto bad = good;
  bad[0] = 'X';
  check_rejects(bad, "bad magic");
  for (const std::uint32_t version : {1u, 4u, 0x03000000u}) {
    bad = good;
    for (int k = 0; k < 4; ++k) bad[4 + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(version >> (8 * k));
    check_rejects(bad, "unsupported GGUF version " + std::to_string(version));
  }
}

TEST_CASE("gguf bad input: huge counts and lengths are refused before allocating") {
  sq::llama_model m = tiny_model(false);
  const auto good = tiny_gguf(m, sqt::ggml_type_f32).bytes();
  auto bad = good;
  put_u64(bad, 8, ~std::uint64_t{0});
  check_rejects(bad, "tensor_count");
  bad = good;
  put_u64(bad, 16, std::uint64_t{1} << 60);
  check_rejects(bad, "metadata_kv_count");
  bad = good;
  put_u64(bad, 24, std::uint64_t{1} << 62);  // the first key's length
  check_rejects(bad, "has length");
  // A string array of 2^61 elements.
  gguf_builder g = tiny_gguf(m, sqt::ggml_type_f32);
  g.key("x.huge", sqt::gguf_type::array);
  gguf_builder::put(g.kv, static_cast<std::uint32_t>(sqt::gguf_type::string), 4);
  gguf_builder::put(g.kv, std::uint64_t{1} << 61, 8);
  check_rejects(g.bytes(), "array of 2305843009213693952 string at offset");
  // A huge dimension.
  g = tiny_gguf(m, sqt::ggml_type_f32);
  g.tensors[0].dims = {std::uint64_t{1} << 40, std::uint64_t{1} << 30};
  check_rejects(g.bytes(), "overflows the element count");
  // A tensor running past the end of the file.
  g = tiny_gguf(m, sqt::ggml_type_f32);
  g.tensors.back().dims = {4096, 4096};
  check_rejects(g.bytes(), "ends beyond");
  // Arrays nested too deep.
  g = tiny_gguf(m, sqt::ggml_type_f32);
  g.key("x.deep", sqt::gguf_type::array);
  for (int d = 0; d < 6; ++d) {
    gguf_builder::put(g.kv, static_cast<std::uint32_t>(sqt::gguf_type::array), 4);
    gguf_builder::put(g.kv, 1, 8);
  }
  check_rejects(g.bytes(), "nested deeper");
}

TEST_CASE("gguf bad input: unsupported types, architectures and layouts are named") {
  sq::llama_model m = tiny_model(false);
  gguf_builder g = tiny_gguf(m, sqt::ggml_type_f32);
  g.tensors[3].type = 2;  // Q4_0
  check_rejects(g.bytes(), "tensor '" + g.tensors[3].name + "' has unsupported type Q4_0");
  g = tiny_gguf(m, sqt::ggml_type_f32);
  g.kv.clear();
  g.kv_count = 0;
  g.str("general.architecture", "gpt2");
  check_rejects(g.bytes(), "unsupported architecture 'gpt2'");
  g = tiny_gguf(m, sqt::ggml_type_f32);
  g.str("tokenizer.ggml.model", "gpt2");
  check_rejects(g.bytes(), "duplicate metadata key 'tokenizer.ggml.model'");
  g = tiny_gguf(m, sqt::ggml_type_f32);
  g.add("blk.0.ffn_norm.weight", {8}, m.final_norm().data(), 8, sqt::ggml_type_f32);
  check_rejects(g.bytes(), "duplicate tensor name 'blk.0.ffn_norm.weight'");
  g = tiny_gguf(m, sqt::ggml_type_f32);
  g.tensors.pop_back();
  check_rejects(g.bytes(), "tensor 'blk.1.ffn_down.weight' is missing");
  g = tiny_gguf(m, sqt::ggml_type_f32);
  g.add("rope_freqs.weight", {4}, m.final_norm().data(), 4, sqt::ggml_type_f32);
  check_rejects(g.bytes(), "extra tensors");
  g = tiny_gguf(m, sqt::ggml_type_f32);
  std::swap(g.tensors[0].dims[0], g.tensors[0].dims[1]);
  check_rejects(g.bytes(), "tensor 'token_embd.weight' has dims [6, 8], the configuration needs [8, 6]");
  g = tiny_gguf(m, sqt::ggml_type_f32);
  g.u32("llama.vocab_size", 7);
  check_rejects(g.bytes(), "tokenizer.ggml.tokens has 6 tokens");
  // Misaligned and overlapping tensor offsets (edit the second tensor's offset field).
  auto bytes = tiny_gguf(m, sqt::ggml_type_f32).bytes();
  const sqt::gguf_file f = sqt::parse_gguf(bytes);
  const auto& t1 = f.tensors[1];
  const std::size_t offset_field = t1.info_offset + 8 + t1.name.size() + 4 + 8 * t1.dims.size() + 4;
  put_u64(bytes, offset_field, t1.offset + 4);
  check_rejects(bytes, "is not a multiple of the alignment");
  put_u64(bytes, offset_field, 0);
  check_rejects(bytes, "overlaps tensor");
}
