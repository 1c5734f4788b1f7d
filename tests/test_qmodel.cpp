// Tests of tools/formats/qmodel.hpp: quantised models of every kind written, read back and run
// (bit-identical logits, identical bytes when written again), the temporary-file write, and every
// class of bad input with its own message.
#include <singlequant/model/quantize.hpp>

#include <formats/qmodel.hpp>

#include <chrono>
#include <cmath>
#include <limits>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "model_support.hpp"

namespace sq = singlequant;
namespace sqt = singlequant::tools;
namespace fs = std::filesystem;

namespace {

std::vector<std::vector<std::int32_t>> calibration(std::size_t vocab) {
  std::vector<std::vector<std::int32_t>> out;
  for (std::uint64_t i = 0; i < 3; ++i) out.push_back(sq_test::random_tokens(16, vocab, 50 + i));
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A fresh directory under the temp directory, removed with everything in it.
struct temp_dir {
  fs::path path;
  temp_dir() {
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path = fs::temp_directory_path() / ("singlequant_qmodel_test_" + std::to_string(stamp));
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

sq::quantized_model small_quantized(const sq::quantize_model_options& options, bool tied = false) {
  const sq::llama_config c = sq_test::small_config(tied);
  const sq::llama_model fp = sq_test::random_model(c, 61);
  return sq::quantize_model(fp.weights(), calibration(c.vocab_size), options);
}

void check_rejects(const std::vector<std::uint8_t>& bytes, const std::string& needle) {
  std::string message;
  try {
    (void)sqt::read_qmodel(bytes);
  } catch (const sq::error& e) {
    message = e.what();
  }
  CAPTURE(message);
  CHECK(message.find(needle) != std::string::npos);
}

void put(std::vector<std::uint8_t>& b, std::size_t at, std::uint64_t v, int width) {
  for (int k = 0; k < width; ++k) b[at + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(v >> (8 * k));
}
// The stated size and the checksum made right again after an edit.
void reseal(std::vector<std::uint8_t>& b) {
  put(b, 8, b.size(), 8);
  put(b, b.size() - 8, sq::detail::fnv1a64(b.data(), b.size() - 8), 8);
}

}  // namespace

TEST_CASE("qmodel: every kind of quantised model round-trips (bit-identical logits, identical bytes)") {
  struct variant {
    const char* name;
    sq::quantize_model_options options;
    bool tied;
  };
  std::vector<variant> variants;
  for (const auto method : {sq::quant_method::rtn, sq::quant_method::hadamard, sq::quant_method::singlequant})
    variants.push_back({"preset", sq::quantize_preset(method, 3), false});
  {
    sq::quantize_model_options o = sq::quantize_preset(sq::quant_method::singlequant, 4);
    o.residual = sq::residual_mode::per_site;
    o.weights.gran = sq::granularity::per_group;
    o.weights.group_size = 16;
    o.weights.asymmetric = true;
    o.weights.grid = sq::int4_grid::full8;
    o.activations.gran = sq::granularity::per_group;
    o.activations.group_size = 16;
    o.quantize_classifier = true;
    variants.push_back({"per-site, per-group, asymmetric, INT4 classifier", o, true});
  }
  {
    sq::quantize_model_options o = sq::quantize_preset(sq::quant_method::singlequant, 5);
    o.online_rules.structure = sq::transform_structure::kronecker;
    variants.push_back({"Kronecker online transforms", o, false});
  }
  temp_dir dir;
  const auto tokens = sq_test::random_tokens(20, sq_test::small_config().vocab_size, 77);
  for (const variant& v : variants) {
    CAPTURE(v.name);
    const sq::quantized_model q = small_quantized(v.options, v.tied);
    const std::string options = sqt::describe_options(v.options);
    const fs::path path = dir.path / "model.sqm";
    sqt::write_qmodel_file(path, q, options);
    CHECK(!fs::exists(dir.path / "model.sqm.partial"));
    const sqt::qmodel_file back = sqt::read_qmodel_file(path);
    CHECK(back.options == options);
    CHECK(same_bits(back.model.logits(tokens), q.logits(tokens)));
    CHECK(sqt::serialize_qmodel(back.model, back.options) == sqt::serialize_qmodel(q, options));
    CHECK(fs::file_size(path) == sqt::serialize_qmodel(q, options).size());
    CHECK((back.model.residual() != nullptr) == (q.residual() != nullptr));
    CHECK(back.model.classifier_weights().has_value() == q.classifier_weights().has_value());
    CHECK(back.model.activation_config().gran == q.activation_config().gran);
  }
  CHECK(sqt::describe_options(sq::quantize_preset(sq::quant_method::rtn)).find("residual = 0\n") != std::string::npos);
}

TEST_CASE("qmodel write: through a temporary file renamed at the end; a failed write leaves nothing") {
  temp_dir dir;
  const sq::quantized_model q = small_quantized(sq::quantize_preset(sq::quant_method::rtn));
  const fs::path path = dir.path / "out.sqm";
  sqt::write_qmodel_file(path, q, "first");
  sqt::write_qmodel_file(path, q, "second");  // replaces the file
  CHECK(sqt::read_qmodel_file(path).options == "second");
  std::size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir.path)) files += entry.is_regular_file() ? 1u : 0u;
  CHECK(files == 1);
  // A directory in the way of the rename: an error, the temporary file removed.
  fs::create_directories(dir.path / "taken.sqm" / "x");
  CHECK_THROWS_AS(sqt::write_qmodel_file(dir.path / "taken.sqm", q, ""), sq::error);
  CHECK(!fs::exists(dir.path / "taken.sqm.partial"));
  CHECK_THROWS_AS(sqt::write_qmodel_file(dir.path / "missing" / "m.sqm", q, ""), sq::error);
  CHECK(!fs::exists(dir.path / "missing"));
  std::string message;
  try {
    (void)sqt::read_qmodel_file(dir.path / "absent.sqm");
  } catch (const sq::error& e) {
    message = e.what();
  }
  CHECK(message.find("absent.sqm") != std::string::npos);
}

TEST_CASE("qmodel bad input: truncation, magic, version, checksum, trailing bytes, each its own message") {
  const sq::quantized_model q = small_quantized(sq::quantize_preset(sq::quant_method::singlequant, 2));
  const std::vector<std::uint8_t> good = sqt::serialize_qmodel(q, "options");
  (void)sqt::read_qmodel(good);
  for (std::size_t n = 0; n < good.size(); n += (n < 200 ? 1 : 97)) {
    CAPTURE(n);
    check_rejects(std::vector<std::uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)), "truncated");
  }
  auto bad = good;
  bad[1] = 'X';
  check_rejects(bad, "bad magic");
  bad = good;
  put(bad, 4, 2, 4);
  check_rejects(bad, "unsupported format version 2");
  bad = good;
  bad.push_back(0);
  check_rejects(bad, "trailing bytes");
  for (const std::size_t at : {std::size_t{20}, std::size_t{140}, good.size() / 2, good.size() - 9, good.size() - 1}) {
    bad = good;
    bad[at] ^= 0x10;
    CAPTURE(at);
    check_rejects(bad, "checksum mismatch");
  }
}

TEST_CASE("qmodel bad input: sizes that do not add up or overflow, bad values (checksum made right)") {
  const sq::quantized_model q = small_quantized(sq::quantize_preset(sq::quant_method::singlequant, 2));
  const std::vector<std::uint8_t> good = sqt::serialize_qmodel(q, "options");
  auto edit = [&](std::size_t at, std::uint64_t v, int width, const std::string& needle) {
    auto bad = good;
    put(bad, at, v, width);
    reseal(bad);
    check_rejects(bad, needle);
  };
  // Configuration (body offsets: dim 16, hidden 24, layers 32, heads 40, kv heads 48, vocab 56).
  edit(16, std::uint64_t{1} << 40, 8, "size overflow");
  edit(32, 3, 8, "sizes do not add up");      // a third layer that is not there
  edit(32, 1, 8, "sizes do not add up");      // a layer too many in the file
  edit(40, 3, 8, "is not n_heads");           // dim 32 is not 3 x an even head_dim
  edit(84, 1, 4, "untied");
  edit(88, 7, 4, "unknown grid");
  edit(104, std::bit_cast<std::uint64_t>(2.0), 8, "clip ratio");
  edit(132, std::uint64_t{1} << 62, 8, "sizes do not add up: options text");
  edit(132, ~std::uint64_t{0}, 8, "sizes do not add up");
  // The first linear (q of layer 0) follows the embedding and the float classifier.
  const sq::llama_config& c = q.config();
  const std::size_t residual_at = 140 + 7;
  const std::size_t residual_length = q.residual()->serialize().size();
  edit(residual_at, residual_length + 1, 8, "residual transform at offset 147: singlequant::site_transform::deserialize");
  edit(residual_at + 8 + 12, 16, 8, "has width 16, the site 32");
  const std::size_t floats = c.vocab_size * c.dim;
  const std::size_t embedding_at = residual_at + 8 + residual_length;
  edit(embedding_at + 4 * 5, std::bit_cast<std::uint32_t>(std::numeric_limits<float>::infinity()), 4, "non-finite");
  const std::size_t kind_at = embedding_at + 4 * floats;
  edit(kind_at, 2, 4, "unknown classifier kind 2");
  const std::size_t q_at = kind_at + 4 + 4 * floats;
  edit(q_at, 31, 8, "q of layer 0 at offset");
  edit(q_at + 16, 9, 4, "unknown granularity 9");
  edit(q_at + 20, 5, 8, "group size 5");
  edit(q_at + 32, 2, 4, "zero-point flag 2");
  edit(q_at + 36 + c.dim * c.dim / 2, std::bit_cast<std::uint32_t>(std::nanf("")), 4, "scale 0 is not finite");
}
