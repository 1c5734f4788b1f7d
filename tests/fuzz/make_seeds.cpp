// Writes the fuzz targets' seed corpora: real outputs of the library's own writers (serialize() of
// built transforms, to_q4_0 / to_gptq of quantised matrices) and small llama2.c files in the
// documented formats, small GGUF files and quantised-model files of a tiny random model. Usage: make_seeds <output dir>; writes <output dir>/<target>/<name>.
#include <singlequant/int4.hpp>
#include <singlequant/interop/ggml.hpp>
#include <singlequant/interop/gptq.hpp>
#include <singlequant/quant.hpp>
#include <singlequant/transform.hpp>
#include <singlequant/model/quantize.hpp>

#include <formats/qmodel.hpp>

#include "gguf_builder.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace sq = singlequant;
namespace fs = std::filesystem;

namespace {

fs::path root;

void write(const std::string& target, const std::string& name, const std::vector<std::uint8_t>& bytes) {
  fs::create_directories(root / target);
  std::ofstream out(root / target / name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("make_seeds: cannot write " + (root / target / name).string());
}

struct bytes_out {
  std::vector<std::uint8_t> b;
  void u(std::uint64_t v, int width) {
    for (int k = 0; k < width; ++k) b.push_back(static_cast<std::uint8_t>(v >> (8 * k)));
  }
  void i32(std::int32_t v) { u(static_cast<std::uint32_t>(v), 4); }
  void f32(float v) {
    std::uint32_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    u(bits, 4);
  }
  void str(const std::string& s) { b.insert(b.end(), s.begin(), s.end()); }
};

// Activations with a few outlier channels, so ART and URT find rotations.
std::vector<double> activations(std::size_t tokens, std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> x(tokens * n);
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t k = 0; k < n; ++k) x[t * n + k] = normal(rng) * (k % 7 == 3 ? 25.0 : 1.0);
  return x;
}

void transform_seed(const std::string& name, std::size_t n, const sq::transform_options& options) {
  sq::calibrator cal(n, options);
  const std::size_t tokens = 256;
  cal.observe(sq::matrix_view<const double>(activations(tokens, n, static_cast<std::uint32_t>(n)).data(), tokens, n));
  const sq::site_transform r = cal.build();
  std::printf("  transform %-24s n = %3zu, %3zu rotations\n", name.c_str(), n, r.rotation_count());
  write("transform", name, r.serialize());
}

void transform_seeds() {
  sq::transform_options full;
  transform_seed("full-64", 64, full);
  sq::transform_options randomized;
  randomized.hadamard.randomized = true;
  randomized.hadamard.seed = 12345;
  transform_seed("full-randomized-32", 32, randomized);
  sq::transform_options blocked;
  blocked.hadamard.block_size = 8;
  transform_seed("full-block8-32", 32, blocked);
  transform_seed("full-12", 12, full);  // a Paley order, not a power of two
  sq::transform_options givens_only;
  givens_only.use_hadamard = false;
  transform_seed("givens-only-16", 16, givens_only);
  sq::transform_options kronecker;
  kronecker.structure = sq::transform_structure::kronecker;
  transform_seed("kronecker-64", 64, kronecker);
  kronecker.kronecker_rows = 4;
  kronecker.hadamard.randomized = true;
  transform_seed("kronecker-4x8-randomized", 32, kronecker);
  sq::transform_options plain;
  plain.use_art = false;
  plain.use_urt = false;
  transform_seed("hadamard-only-8", 8, plain);
}

std::vector<float> weights(std::size_t rows, std::size_t cols, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> w(rows * cols);
  for (auto& v : w) v = normal(rng);
  w[0] = 1.5f;  // an outlier, so scales differ between groups
  return w;
}

void q4_0_seed(const std::string& name, std::size_t rows, std::size_t cols) {
  const auto w = weights(rows, cols, static_cast<std::uint32_t>(rows * 1000 + cols));
  sq::quant_options cfg;
  cfg.grid = sq::int4_grid::full8;
  cfg.gran = sq::granularity::per_group;
  cfg.group_size = 32;
  const auto blocks = sq::to_q4_0(sq::quantize(sq::matrix_view<const float>(w.data(), rows, cols), cfg));
  bytes_out out;
  out.u(rows, 8);
  out.u(cols, 8);
  for (const auto& block : blocks) {
    out.u(block.d, 2);
    out.b.insert(out.b.end(), std::begin(block.qs), std::end(block.qs));
  }
  write("q4_0", name, out.b);
}

void gptq_seed(const std::string& name, std::size_t rows, std::size_t cols, sq::granularity gran,
               std::size_t group, bool asymmetric, sq::gptq_zero_format format) {
  const auto w = weights(rows, cols, static_cast<std::uint32_t>(rows * 7 + cols));
  sq::quant_options cfg;
  cfg.gran = gran;
  cfg.group_size = group;
  cfg.asymmetric = asymmetric;
  const sq::packed_int4 q = sq::quantize(sq::matrix_view<const float>(w.data(), rows, cols), cfg);
  sq::gptq_tensor g;
  try {
    g = sq::to_gptq(q, format);
  } catch (const sq::error&) {  // v1 cannot store an unsigned zero point 0: keep the seed, in v2
    format = sq::gptq_zero_format::v2;
    g = sq::to_gptq(q, format);
  }
  bytes_out out;
  out.u(g.out_features, 8);
  out.u(g.in_features, 8);
  out.u(g.group_size, 8);
  out.u(format == sq::gptq_zero_format::v2 ? 1 : 0, 1);
  out.u(g.qweight.size(), 4);
  out.u(g.qzeros.size(), 4);
  out.u(g.scales.size(), 4);
  for (const auto v : g.qweight) out.u(v, 4);
  for (const auto v : g.qzeros) out.u(v, 4);
  for (const auto v : g.scales) out.f32(v);
  write("gptq", name + (format == sq::gptq_zero_format::v1 ? "-v1" : "-v2"), out.b);
}

// A llama2.c legacy checkpoint: 7 int32 header fields, then the float32 arrays in the documented order.
void model_seed(const std::string& name, int dim, int hidden, int layers, int heads, int kv_heads, int vocab,
                int seq, bool shared) {
  bytes_out out;
  for (const int v : {dim, hidden, layers, heads, kv_heads, shared ? vocab : -vocab, seq}) out.i32(v);
  const std::size_t d = std::size_t(dim), h = std::size_t(hidden), l = std::size_t(layers),
                    kv = std::size_t(dim / heads * kv_heads), v = std::size_t(vocab), s = std::size_t(seq);
  const std::size_t head = std::size_t(dim / heads);
  std::size_t floats = v * d + l * (2 * d + 2 * d * d + 2 * kv * d + 3 * h * d) + d + s * head;
  if (!shared) floats += v * d;
  std::mt19937 rng(static_cast<std::uint32_t>(floats));
  std::normal_distribution<float> normal(0.0f, 0.2f);
  for (std::size_t i = 0; i < floats; ++i) out.f32(normal(rng));
  write("llama2c_model", name, out.b);
}

// A llama2.c tokenizer.bin: int32 max_token_length, then (float score, int32 length, bytes) per token.
void tokenizer_seed(const std::string& name, bool byte_level) {
  std::vector<std::string> pieces = {"<unk>", "\n<s>\n", "\n</s>\n"};
  char hex[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    pieces.emplace_back(hex);
  }
  if (!byte_level)
    for (const char* p : {" ", "e", "a", "t", "n", "o", " t", "he", " a", "in", " the", "Once", " upon", " time",
                          ",", " Lily", " saw", " big", " red", " ball", ".", "\xC3\xA9", "\xF0\x9F\x99\x82"})
      pieces.emplace_back(p);
  std::size_t longest = 0;
  for (const auto& p : pieces) longest = std::max(longest, p.size());
  bytes_out out;
  out.i32(static_cast<std::int32_t>(longest));
  for (std::size_t id = 0; id < pieces.size(); ++id) {
    out.f32(id < 259 ? 0.0f : -static_cast<float>(id - 259));
    out.i32(static_cast<std::int32_t>(pieces[id].size()));
    out.str(pieces[id]);
  }
  write("llama2c_tokenizer", name, out.b);
}

void json_seed(const std::string& name, const std::string& text) {
  write("llama2c_json", name, std::vector<std::uint8_t>(text.begin(), text.end()));
}

// A tiny random llama model (values multiples of 1/64, exact in F16 and BF16).
sq::llama_model tiny_llama(bool tied) {
  sq::llama_config c;
  c.dim = 8;
  c.hidden_dim = 16;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.vocab_size = 8;
  c.max_seq_len = 8;
  c.tied_classifier = tied;
  sq::llama_model m(c);
  std::mt19937 rng(9);
  std::uniform_int_distribution<int> k(-60, 60);
  auto fill = [&](sq::matrix_view<float> w) {
    for (std::size_t r = 0; r < w.rows(); ++r)
      for (std::size_t j = 0; j < w.cols(); ++j) w(r, j) = static_cast<float>(k(rng)) / 64.0f;
  };
  fill(m.embedding());
  if (!tied) fill(m.classifier());
  for (const auto kind : sq::layer_linears) fill(m.linear(0, kind));
  return m;
}

void gguf_seeds() {
  const std::vector<std::string> vocab = {"<unk>", "<s>", "</s>", "a", "b", "c", "\xe2\x96\x81" "d", "<0x0A>"};
  const std::vector<float> scores = {0, 0, 0, -1, -2, -3, -4, 0};
  const std::vector<std::int32_t> types = {2, 3, 3, 1, 1, 1, 1, 6};
  for (const auto& [name, type] : std::vector<std::pair<std::string, std::uint32_t>>{
           {"f32", sq::tools::ggml_type_f32}, {"f16", sq::tools::ggml_type_f16}, {"bf16", sq::tools::ggml_type_bf16}}) {
    sq::llama_model m = tiny_llama(name != "f32");
    auto g = sq_test::llama_gguf(m, type, vocab, scores, types);
    if (name == "bf16") g.version = 2;
    write("gguf", "tiny-" + name, g.bytes());
  }
}

void qmodel_seeds() {
  const sq::llama_model m = tiny_llama(false);
  const std::vector<std::vector<std::int32_t>> calibration = {{1, 3, 4, 5, 6, 7, 2, 3}, {1, 5, 5, 4, 3, 2, 1, 0}};
  for (const auto method : {sq::quant_method::rtn, sq::quant_method::hadamard, sq::quant_method::singlequant}) {
    sq::quantize_model_options options = sq::quantize_preset(method, 1);
    if (method == sq::quant_method::singlequant) {
      options.residual = sq::residual_mode::per_site;
      options.quantize_classifier = true;
      options.weights.gran = sq::granularity::per_group;
      options.weights.group_size = 4;
      options.weights.asymmetric = true;
    }
    const sq::quantized_model q = sq::quantize_model(m.weights(), calibration, options);
    write("qmodel", "tiny-" + std::to_string(static_cast<int>(method)),
          sq::tools::serialize_qmodel(q, method == sq::quant_method::rtn ? sq::tools::describe_options(options) : "o"));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output dir>\n", argv[0]);
    return 2;
  }
  root = argv[1];
  try {
    transform_seeds();
    gguf_seeds();
    qmodel_seeds();
    q4_0_seed("q4_0-4x64", 4, 64);
    q4_0_seed("q4_0-1x32", 1, 32);
    q4_0_seed("q4_0-3x96", 3, 96);
    gptq_seed("gptq-asym-g16-16x32", 16, 32, sq::granularity::per_group, 16, true, sq::gptq_zero_format::v1);
    gptq_seed("gptq-asym-row-8x32", 8, 32, sq::granularity::per_row, 0, true, sq::gptq_zero_format::v2);
    gptq_seed("gptq-sym-row-8x16", 8, 16, sq::granularity::per_row, 0, false, sq::gptq_zero_format::v1);
    gptq_seed("gptq-sym-g8-8x24", 8, 24, sq::granularity::per_group, 8, false, sq::gptq_zero_format::v1);
    model_seed("model-shared", 8, 16, 2, 2, 1, 16, 8, true);
    model_seed("model-unshared", 8, 12, 1, 4, 4, 10, 4, false);
    tokenizer_seed("tokenizer-bpe", false);
    tokenizer_seed("tokenizer-bytes", true);
    json_seed("reference",
              R"({"model": {"file": "stories260K.bin", "config": {"dim": 64, "hidden_dim": 172, "n_layers": 5,)"
              R"( "head_size": 8, "shared_classifier": true}}, "sequence": {"token_ids": [1, 403, 407],)"
              R"( "top5_token_ids_per_position": [[403, 9, 79, 1, 2], [407, 261, 0, 3, 4]],)"
              R"( "last_position_logits_float32": [-3.25, 1.5e-3, 6.02E+2, -0.0, 0]}, "note": null})");
    json_seed("escapes", R"(["a\"b\\c\/d\b\f\n\r\t", "\u00e9\ud83d\ude42", true, false, null, [], {}, -12.5e-7])");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
