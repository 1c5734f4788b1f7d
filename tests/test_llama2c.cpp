// Tests of examples/llama2c/llama2c.hpp against the reference outputs in the
// models directory (float64 numpy forward passes of the same float32 weights).
//
// Models directory: $SINGLEQUANT_MODELS_DIR, else the compile-time macro
// SINGLEQUANT_MODELS_DIR, else "../shared/models". Tests that need files
// which are absent print why and pass, since the models live outside the repo.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include <formats/json.hpp>
#include <formats/llama2c_tokenizer.hpp>

#include "llama2c/forward.hpp"

namespace {

namespace fs = std::filesystem;

fs::path models_dir() {
  if (const char* env = std::getenv("SINGLEQUANT_MODELS_DIR"); env != nullptr && *env != '\0')
    return env;
#ifdef SINGLEQUANT_MODELS_DIR
  return SINGLEQUANT_MODELS_DIR;
#else
  return "../shared/models";
#endif
}

// True if every file exists; otherwise reports the first missing one.
bool have_files(std::initializer_list<const char*> names) {
  for (const char* name : names) {
    const fs::path path = models_dir() / name;
    if (!fs::exists(path)) {
      MESSAGE("skipping: " << path.string()
                           << " not found (set SINGLEQUANT_MODELS_DIR to the models directory)");
      return false;
    }
  }
  return true;
}

std::string model_path(const char* name) { return (models_dir() / name).string(); }

// Token ids sorted by descending logit; ties keep the lower id first.
std::vector<int> top_k(const std::vector<float>& logits, std::size_t k) {
  std::vector<int> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + std::ptrdiff_t(k), ids.end(), [&](int a, int b) {
    const float la = logits[std::size_t(a)], lb = logits[std::size_t(b)];
    return la != lb ? la > lb : a < b;
  });
  ids.resize(k);
  return ids;
}

// Runs the reference sequence through a fresh session and checks top-5 ids at
// every position and the last-position logits against the reference JSON.
void check_sequence_against_reference(const llama2c::model& model,
                                      const llama2c::json::value& reference) {
  const auto& sequence = reference["sequence"];
  const std::vector<int> tokens = sequence["token_ids"].to_int_vector();
  const auto& expected_top5 = sequence["top5_token_ids_per_position"];
  const std::vector<double> expected_last =
      sequence["last_position_logits_float32"].to_double_vector();
  REQUIRE(expected_top5.size() == tokens.size());
  REQUIRE(expected_last.size() == std::size_t(model.cfg().vocab_size));

  llama2c::session session(model);
  std::vector<float> logits;
  int top5_mismatches = 0;
  for (std::size_t pos = 0; pos < tokens.size(); ++pos) {
    logits = session.forward(tokens[pos], int(pos));
    const std::vector<int> got = top_k(logits, 5);
    const std::vector<int> want = expected_top5[pos].to_int_vector();
    if (got != want) {
      ++top5_mismatches;
      CAPTURE(pos);
      CHECK(got == want);
    }
  }
  CHECK(top5_mismatches == 0);

  double max_abs_diff = 0.0;
  for (std::size_t i = 0; i < logits.size(); ++i)
    max_abs_diff = std::max(max_abs_diff, std::abs(double(logits[i]) - expected_last[i]));
  MESSAGE(reference["model"]["file"].as_string()
          << ": max |logit - reference| at last position = " << max_abs_diff);
  CHECK(max_abs_diff < 1e-4);
}

void check_config(const llama2c::model& model, const llama2c::json::value& reference) {
  const auto& expected = reference["model"]["config"];
  const llama2c::config& c = model.cfg();
  CHECK(c.dim == expected["dim"].as_int());
  CHECK(c.hidden_dim == expected["hidden_dim"].as_int());
  CHECK(c.n_layers == expected["n_layers"].as_int());
  CHECK(c.n_heads == expected["n_heads"].as_int());
  CHECK(c.n_kv_heads == expected["n_kv_heads"].as_int());
  CHECK(c.vocab_size == expected["vocab_size"].as_int());
  CHECK(c.seq_len == expected["seq_len"].as_int());
  CHECK(c.head_size() == expected["head_size"].as_int());
  CHECK(c.shared_classifier == expected["shared_classifier"].as_bool());
}

// Copy of `source` with a callback applied to its bytes, in the temp directory.
struct temp_copy {
  fs::path path;
  template <class Edit>
  temp_copy(const std::string& source, const std::string& name, Edit&& edit) {
    std::ifstream in(source, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    edit(bytes);
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path = fs::temp_directory_path() / ("llama2c_test_" + std::to_string(stamp) + "_" + name);
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
  }
  ~temp_copy() {
    std::error_code ignored;
    fs::remove(path, ignored);
  }
  temp_copy(const temp_copy&) = delete;
  temp_copy& operator=(const temp_copy&) = delete;
};

// Loading must throw std::runtime_error whose message names the file.
void check_load_fails(const fs::path& path) {
  bool threw = false;
  try {
    (void)llama2c::model::load(path.string());
  } catch (const std::runtime_error& e) {
    threw = true;
    const std::string message = e.what();
    MESSAGE("load error: " << message);
    CHECK(message.find(path.filename().string()) != std::string::npos);
  }
  CHECK(threw);
}

void set_header_field(std::vector<char>& bytes, int index, std::int32_t value) {
  std::memcpy(bytes.data() + index * 4, &value, sizeof value);
}

}  // namespace

TEST_CASE("llama2c json: parses the value kinds and escapes") {
  using llama2c::json::parse;
  const auto v = parse(
      R"( {"a": [1, -2.5e1, 0.125], "s": "x\n\u00e9\ud83d\ude00\"", "t": true, "f": false, "n": null, "o": {}} )");
  CHECK(v["a"].to_double_vector() == std::vector<double>{1.0, -25.0, 0.125});
  CHECK(v["s"].as_string() == "x\n\xC3\xA9\xF0\x9F\x98\x80\"");
  CHECK(v["t"].as_bool());
  CHECK_FALSE(v["f"].as_bool());
  CHECK(v["n"].is_null());
  CHECK(v["o"].size() == 0);
  CHECK(v.find("missing") == nullptr);
  CHECK_THROWS_AS(parse("[1, 2"), std::runtime_error);
  CHECK_THROWS_AS(parse("{\"a\" 1}"), std::runtime_error);
  CHECK_THROWS_AS(parse("01"), std::runtime_error);
  CHECK_THROWS_AS(parse("[1] x"), std::runtime_error);
  CHECK_THROWS_AS(parse("\"\\ud800\""), std::runtime_error);
  CHECK_THROWS_AS(parse(std::string(1000, '[')), std::runtime_error);
}

TEST_CASE("llama2c stories260K: forward pass matches the float64 reference") {
  if (!have_files({"stories260K.bin", "stories260K.reference.json"})) return;
  const auto model = llama2c::model::load(model_path("stories260K.bin"));
  const auto reference = llama2c::json::parse_file(model_path("stories260K.reference.json"));
  check_config(model, reference);
  check_sequence_against_reference(model, reference);
}

TEST_CASE("llama2c stories260K: greedy generation and tok512 tokenizer") {
  if (!have_files({"stories260K.bin", "tok512.bin", "stories260K.reference.json"})) return;
  const auto model = llama2c::model::load(model_path("stories260K.bin"));
  const auto tok = llama2c::tokenizer::load(model_path("tok512.bin"), model.cfg().vocab_size);
  const auto reference = llama2c::json::parse_file(model_path("stories260K.reference.json"));
  CHECK_FALSE(tok.is_byte_level());

  const auto& greedy = reference["greedy_from_bos"];
  const std::vector<int> expected = greedy["token_ids"].to_int_vector();  // BOS + new tokens
  REQUIRE(expected.size() >= 2);
  REQUIRE(expected.front() == llama2c::tokenizer::bos_id);
  const std::vector<int> expected_new(expected.begin() + 1, expected.end());
  const std::vector<int> generated =
      llama2c::generate_greedy(model, {llama2c::tokenizer::bos_id}, int(expected_new.size()));
  CHECK(generated == expected_new);

  const std::string text = tok.decode(std::span<const int>(generated), llama2c::tokenizer::bos_id);
  CHECK(text == greedy["text"].as_string());

  // BPE encode must invert decode on the reference text.
  const std::string sequence_text = reference["sequence"]["text"].as_string();
  const std::vector<int> encoded = tok.encode_bpe(sequence_text);
  REQUIRE(encoded.size() >= 2);
  CHECK(encoded.front() == llama2c::tokenizer::bos_id);
  CHECK(tok.decode(std::span<const int>(encoded).subspan(1), llama2c::tokenizer::bos_id) ==
        sequence_text);
  CHECK(encoded == reference["sequence"]["token_ids"].to_int_vector());

  // Byte fallback: a code point without a piece becomes its UTF-8 bytes + 3.
  const std::vector<int> snowman = tok.encode_bpe("\xE2\x98\x83", false);
  CHECK(tok.decode(std::span<const int>(snowman)) == " \xE2\x98\x83");
}

TEST_CASE("llama2c pycode11M: forward pass matches the float64 reference") {
  if (!have_files({"pycode11M.bin", "pycode11M.reference.json"})) return;
  const auto model = llama2c::model::load(model_path("pycode11M.bin"));
  const auto reference = llama2c::json::parse_file(model_path("pycode11M.reference.json"));
  check_config(model, reference);
  check_sequence_against_reference(model, reference);
}

TEST_CASE("llama2c pycode11M: greedy continuation and byte-level tokenizer") {
  if (!have_files({"pycode11M.bin", "tok_bytes512.bin", "pycode11M.reference.json"})) return;
  const auto model = llama2c::model::load(model_path("pycode11M.bin"));
  const auto tok = llama2c::tokenizer::load(model_path("tok_bytes512.bin"), model.cfg().vocab_size);
  const auto reference = llama2c::json::parse_file(model_path("pycode11M.reference.json"));
  CHECK(tok.is_byte_level());

  const std::string prompt_text = reference["prompt"]["text"].as_string();
  const std::vector<int> prompt = reference["prompt"]["token_ids"].to_int_vector();
  CHECK(tok.encode_bytes(prompt_text) == prompt);
  CHECK(tok.encode(prompt_text) == prompt);

  const auto& continuation = reference["greedy_continuation"];
  const std::vector<int> expected = continuation["token_ids"].to_int_vector();
  const std::vector<int> generated = llama2c::generate_greedy(model, prompt, int(expected.size()));
  CHECK(generated == expected);
  CHECK(tok.decode(std::span<const int>(generated), prompt.back()) ==
        continuation["text"].as_string());
}

TEST_CASE("llama2c hooks: every site is visited and overrides replace the matmul") {
  if (!have_files({"stories260K.bin"})) return;
  auto model = llama2c::model::load(model_path("stories260K.bin"));
  const llama2c::config& c = model.cfg();
  llama2c::session session(model);
  const std::vector<float> plain = session.forward(llama2c::tokenizer::bos_id, 0);

  // Observe: each layer reports its four sites with the right lengths, then the classifier.
  std::vector<std::pair<llama2c::site, int>> visits;
  session.hooks.on_linear_input = [&](llama2c::site s, int layer, std::span<float> x) {
    visits.emplace_back(s, layer);
    const int expected_length = s == llama2c::site::ffn_down ? c.hidden_dim : c.dim;
    CHECK(x.size() == std::size_t(expected_length));
  };
  int overrides_called = 0;
  session.hooks.override_linear = [&](llama2c::site s, int, llama2c::weight_id w,
                                      std::span<const float> x, llama2c::const_matrix_ref weight,
                                      std::span<float> out) {
    ++overrides_called;
    CHECK(llama2c::site_of(w) == s);
    CHECK(x.size() == std::size_t(weight.in_features));
    CHECK(out.size() == std::size_t(weight.out_features));
    llama2c::matvec(weight, x, out);  // same math, so logits must not change
    return true;
  };
  const std::vector<float> hooked = session.forward(llama2c::tokenizer::bos_id, 0);
  CHECK(hooked == plain);
  REQUIRE(visits.size() == std::size_t(4 * c.n_layers + 1));
  CHECK(visits[0] == std::pair{llama2c::site::attn_qkv, 0});
  CHECK(visits[3] == std::pair{llama2c::site::ffn_down, 0});
  CHECK(visits.back() == std::pair{llama2c::site::classifier, c.n_layers});
  CHECK(overrides_called == 7 * c.n_layers + 1);

  // Modify: zeroing the classifier input makes every logit zero.
  session.hooks = {};
  session.hooks.on_linear_input = [](llama2c::site s, int, std::span<float> x) {
    if (s == llama2c::site::classifier) std::fill(x.begin(), x.end(), 0.f);
  };
  const std::vector<float> zeroed = session.forward(llama2c::tokenizer::bos_id, 0);
  CHECK(std::all_of(zeroed.begin(), zeroed.end(), [](float v) { return v == 0.f; }));

  // Weights are mutable: zeroing every w2 removes the FFN contribution, which changes the logits.
  session.hooks = {};
  model.for_each_linear([](llama2c::weight_id w, int, llama2c::matrix_ref m) {
    if (w == llama2c::weight_id::w2) std::fill(m.values().begin(), m.values().end(), 0.f);
  });
  CHECK(session.forward(llama2c::tokenizer::bos_id, 0) != plain);

  // Unsharing the classifier lets it change without touching the embedding.
  model.unshare_classifier();
  CHECK_FALSE(model.cfg().shared_classifier);
  CHECK(model.classifier().data != model.token_embedding().data);
  const auto emb = model.token_embedding().values();
  const auto cls = model.classifier().values();
  CHECK(std::equal(emb.begin(), emb.end(), cls.begin(), cls.end()));

  // Positions must be filled in order.
  llama2c::session fresh(model);
  CHECK_THROWS_AS(fresh.forward(1, 1), std::out_of_range);
  CHECK_THROWS_AS(fresh.forward(c.vocab_size, 0), std::out_of_range);
}

TEST_CASE("llama2c load: truncated and corrupted files are rejected with the file name") {
  if (!have_files({"stories260K.bin", "tok512.bin"})) return;
  const std::string source = model_path("stories260K.bin");

  SUBCASE("truncated") {
    const temp_copy copy(source, "truncated.bin",
                         [](std::vector<char>& b) { b.erase(b.end() - 100, b.end()); });
    check_load_fails(copy.path);
  }
  SUBCASE("one extra byte") {
    const temp_copy copy(source, "extended.bin", [](std::vector<char>& b) { b.push_back('\0'); });
    check_load_fails(copy.path);
  }
  SUBCASE("shorter than the header") {
    const temp_copy copy(source, "tiny.bin",
                         [](std::vector<char>& b) { b.erase(b.begin() + 10, b.end()); });
    check_load_fails(copy.path);
  }
  SUBCASE("dim not a multiple of n_heads") {
    const temp_copy copy(source, "bad_dim.bin",
                         [](std::vector<char>& b) { set_header_field(b, 0, 65); });
    check_load_fails(copy.path);
  }
  SUBCASE("n_heads not a multiple of n_kv_heads") {
    const temp_copy copy(source, "bad_kv.bin",
                         [](std::vector<char>& b) { set_header_field(b, 4, 3); });
    check_load_fails(copy.path);
  }
  SUBCASE("wrong layer count (size mismatch)") {
    const temp_copy copy(source, "bad_layers.bin",
                         [](std::vector<char>& b) { set_header_field(b, 2, 6); });
    check_load_fails(copy.path);
  }
  SUBCASE("negative vocab_size (unshared classifier missing from the file)") {
    const temp_copy copy(source, "bad_vocab.bin",
                         [](std::vector<char>& b) { set_header_field(b, 5, -512); });
    check_load_fails(copy.path);
  }
  SUBCASE("huge sizes do not overflow the size computation") {
    const temp_copy copy(source, "huge.bin", [](std::vector<char>& b) {
      const std::int32_t header[7] = {1 << 30, 0x7fffffff, 0x7fffffff, 1,
                                      1,       0x7fffffff, 0x7fffffff};
      for (int field = 0; field < 7; ++field) set_header_field(b, field, header[field]);
    });
    check_load_fails(copy.path);
  }
  SUBCASE("missing file") { check_load_fails(models_dir() / "does_not_exist.bin"); }
  SUBCASE("tokenizer of the wrong vocabulary size") {
    CHECK_THROWS_WITH_AS(llama2c::tokenizer::load(model_path("tok512.bin"), 32000),
                         doctest::Contains("tok512.bin"), std::runtime_error);
  }
}

TEST_CASE("llama2c load_bytes: in-memory checkpoint and tokenizer, errors name the given name") {
  // dim 4, hidden 4, 1 layer, 2 heads (head_size 2), 1 kv head, vocab 3 (shared), seq_len 2.
  const std::int32_t header[7] = {4, 4, 1, 2, 1, 3, 2};
  const std::size_t floats = 3 * 4 + (2 * 4 + 2 * 16 + 2 * 2 * 4 + 3 * 16) + 4 + 2 * 1 * 2;
  std::vector<char> bytes(sizeof header + floats * sizeof(float));
  std::memcpy(bytes.data(), header, sizeof header);
  for (std::size_t i = 0; i < floats; ++i) {
    const float v = 0.01f * float(i);
    std::memcpy(bytes.data() + sizeof header + i * sizeof v, &v, sizeof v);
  }
  const auto m = llama2c::model::load_bytes(bytes, "tiny");
  CHECK(m.cfg().dim == 4);
  CHECK(m.cfg().kv_dim() == 2);
  CHECK(m.linear(llama2c::weight_id::w3, 0).data[15] == doctest::Approx(0.01f * float(floats - 4 - 4 - 1)));
  bytes.pop_back();
  CHECK_THROWS_WITH_AS(llama2c::model::load_bytes(bytes, "tiny"), doctest::Contains("'tiny'"),
                       std::runtime_error);

  std::vector<char> tok(4, '\0');
  tok[0] = 1;  // max_token_length 1, then 259 one-byte pieces
  for (int id = 0; id < 259; ++id) {
    const float score = 0;
    const std::int32_t length = 1;
    tok.insert(tok.end(), reinterpret_cast<const char*>(&score), reinterpret_cast<const char*>(&score) + 4);
    tok.insert(tok.end(), reinterpret_cast<const char*>(&length), reinterpret_cast<const char*>(&length) + 4);
    tok.push_back(char(id % 128));
  }
  CHECK(llama2c::tokenizer::load_bytes(tok, "tok", 259).vocab_size() == 259);
  CHECK_THROWS_WITH_AS(llama2c::tokenizer::load_bytes(tok, "tok", 512), doctest::Contains("'tok'"),
                       std::runtime_error);
}

TEST_CASE("tokenizer: BPE merged per space-separated word equals BPE over the whole text") {
  if (!have_files({"tok512.bin"})) return;
  const auto tok = llama2c::tokenizer::load(model_path("tok512.bin"));
  // The same vocabulary plus one unreachable piece with a space inside: that turns the per-word
  // path off, so `whole` merges over the entire text (run.c's algorithm as written).
  std::vector<std::string> pieces;
  std::vector<float> scores;
  for (int id = 0; id < tok.vocab_size(); ++id) {
    pieces.push_back(tok.piece(id));
    scores.push_back(tok.score(id));
  }
  pieces.push_back("\x01 \x01");
  scores.push_back(-1e9f);
  const auto whole = singlequant_tools::tokenizer::from_pieces(pieces, scores, 1, 2);
  const std::string text =
      "Once upon a time, there was a little girl named Lily.  She  loved\tto play\noutside. "
      "\xC3\xA9t\xC3\xA9 \xE2\x98\x83 snow\xE2\x96\x81man   end ";
  const auto fast = tok.encode_bpe(text), reference = whole.encode_bpe(text);
  CHECK(fast == reference);
  CHECK(tok.decode(std::span<const int>(fast).subspan(1), 1) == text);
}

TEST_CASE("tokenizer: from_pieces maps U+2581 to a space and <0xNN> pieces to byte fallback") {
  std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    pieces.emplace_back(name);
  }
  pieces.emplace_back("\xE2\x96\x81");        // "▁" -> " "
  pieces.emplace_back("\xE2\x96\x81h");       // " h"
  pieces.emplace_back("\xE2\x96\x81hi");      // " hi"
  pieces.emplace_back("h");
  pieces.emplace_back("i");
  std::vector<float> scores(pieces.size(), 0.f);
  scores[pieces.size() - 3] = 2.f;  // " hi" beats " h"
  const auto t = singlequant_tools::tokenizer::from_pieces(pieces, scores, 1, 2);
  CHECK_FALSE(t.is_byte_level());
  CHECK(t.piece(259) == " ");
  CHECK(t.encode("hi") == std::vector<int>{1, 261});
  CHECK(t.encode("hi!") == std::vector<int>{1, 261, '!' + 3});
  CHECK(t.decode(1, 261) == "hi");
  CHECK_THROWS_AS(singlequant_tools::tokenizer::from_pieces(pieces, {}, 1, 2), std::runtime_error);
  CHECK_THROWS_AS(singlequant_tools::tokenizer::from_pieces(pieces, scores, 1, int(pieces.size())), std::runtime_error);
}
