// tools/formats/qmodel.hpp - the quantised-model file (.sqm): a quantized_model and the options
// that made it, versioned and checksummed. Format: docs/quantized-model-format.md.
//
// serialize_qmodel(model, options text) -> bytes; read_qmodel(bytes) -> {model, options text};
// write_qmodel_file writes a temporary file in the target's directory and renames it over the
// target at the end, so an interrupted run leaves no partial file under the target's name.
// Reading validates everything before it allocates (every size is bounded by the bytes that
// remain) and reports truncation, a bad checksum, a bad version and sizes that do not add up or
// overflow, each with its own message (singlequant::error of "read_qmodel").
// The byte writer / reader and the FNV-1a-64 checksum are the library's (transform.hpp), which
// site_transform::serialize also uses.
#ifndef SINGLEQUANT_TOOLS_FORMATS_QMODEL_HPP
#define SINGLEQUANT_TOOLS_FORMATS_QMODEL_HPP

#include <singlequant/int4.hpp>
#include <singlequant/model/llama.hpp>
#include <singlequant/model/quantize.hpp>
#include <singlequant/quant.hpp>
#include <singlequant/transform.hpp>

#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace singlequant::tools {

/// The format version this build writes and reads.
inline constexpr std::uint32_t qmodel_format_version = 1;
/// Bytes before the body: magic "SQQM", u32 version, u64 file size.
inline constexpr std::size_t qmodel_header_bytes = 16;

/// A quantised model read back, with the options text stored next to it.
struct qmodel_file {
  quantized_model model;
  std::string options;
};

/// The options of a quantize_model run as "key = value" lines (enums as their enumerator index),
/// the text serialize_qmodel stores for the record (nothing reads it back into options).
[[nodiscard]] inline std::string describe_options(const quantize_model_options& o) {
  std::string s;
  auto line = [&](const std::string& key, const auto& value) { s += key + " = " + detail::message(value) + "\n"; };
  auto qc = [&](const std::string& p, const quant_options& c) {
    line(p + ".grid", static_cast<int>(c.grid));
    line(p + ".granularity", static_cast<int>(c.gran));
    line(p + ".group_size", c.group_size);
    line(p + ".clip_ratio", c.clip_ratio);
    line(p + ".asymmetric", c.asymmetric);
    line(p + ".mse_clip_search", c.mse_clip_search);
    line(p + ".clip_search_min", c.clip_search_min);
    line(p + ".clip_search_step", c.clip_search_step);
  };
  auto rules = [&](const std::string& p, const transform_options& r) {
    line(p + ".use_hadamard", r.use_hadamard);
    line(p + ".hadamard.randomized", r.hadamard.randomized);
    line(p + ".hadamard.seed", r.hadamard.seed);
    line(p + ".hadamard.block_size", r.hadamard.block_size);
    line(p + ".use_art", r.use_art);
    line(p + ".art.tau_mag", r.art.tau_mag);
    line(p + ".art.max_levels", r.art.max_levels);
    line(p + ".art.rule", static_cast<int>(r.art.rule));
    line(p + ".art.max_outliers", r.art.max_outliers);
    line(p + ".art.weighting", static_cast<int>(r.art.weighting));
    line(p + ".use_urt", r.use_urt);
    line(p + ".urt.mode", static_cast<int>(r.urt.mode));
    line(p + ".urt.budget", r.urt.budget);
    line(p + ".urt.min_relative_gain", r.urt.min_relative_gain);
    line(p + ".urt.max_rows", r.urt.max_rows);
    line(p + ".urt.candidates", r.urt.candidates);
    line(p + ".urt.energy_tolerance", r.urt.energy_tolerance);
    line(p + ".urt.chain_block", r.urt.chain_block);
    line(p + ".urt.tau_nominal", r.urt.tau_nominal);
    line(p + ".structure", static_cast<int>(r.structure));
    line(p + ".kronecker_rows", r.kronecker_rows);
    line(p + ".stats.cross", static_cast<int>(r.stats.cross));
    line(p + ".stats.dense_max_width", r.stats.dense_max_width);
    line(p + ".stats.max_sample_rows", r.stats.max_sample_rows);
    line(p + ".stats.max_sample_bytes", r.stats.max_sample_bytes);
    line(p + ".stats.outlier_tokens", r.stats.outlier_tokens);
    line(p + ".stats.seed", r.stats.seed);
    line(p + ".weight_term.lambda", r.weight_term.lambda);
    line(p + ".weight_term.weighting", static_cast<int>(r.weight_term.weighting));
    line(p + ".weight_term.max_rows", r.weight_term.max_rows);
  };
  qc("weights", o.weights);
  qc("activations", o.activations);
  line("residual", static_cast<int>(o.residual));
  rules("residual_rules", o.residual_rules);
  line("online_o_proj", o.online_o_proj);
  line("online_down", o.online_down);
  rules("online_rules", o.online_rules);
  line("quantize_classifier", o.quantize_classifier);
  return s;
}

namespace detail_qmodel {

inline constexpr const char* fn = "read_qmodel";

inline void put_f32(detail::blob_writer& out, float v) { out.u32(std::bit_cast<std::uint32_t>(v)); }
inline void put_bytes(detail::blob_writer& out, std::span<const std::uint8_t> b) {
  out.bytes.insert(out.bytes.end(), b.begin(), b.end());
}
inline void put_floats(detail::blob_writer& out, std::span<const float> v) {
  for (const float x : v) put_f32(out, x);
}
inline void put_packed(detail::blob_writer& out, const packed_int4& q) {
  out.u64(q.rows());
  out.u64(q.cols());
  out.u32(static_cast<std::uint32_t>(q.gran()));
  out.u64(q.group_size());
  out.u32(static_cast<std::uint32_t>(q.grid()));
  out.u32(q.has_zero_points() ? 1u : 0u);
  put_bytes(out, q.codes());
  put_floats(out, q.scales());
  for (const std::int8_t z : q.zero_points()) out.bytes.push_back(static_cast<std::uint8_t>(z));
}
inline void put_transform(detail::blob_writer& out, const site_transform* t) {
  if (t == nullptr) {
    out.u64(0);
    return;
  }
  const std::vector<std::uint8_t> blob = t->serialize();
  out.u64(blob.size());
  put_bytes(out, blob);
}

// The body reader: after the checksum has matched, running out of bytes means the sizes the file
// states do not add up.
class body_reader {
 public:
  explicit body_reader(std::span<const std::uint8_t> body) : in_{body, 0} {}
  [[nodiscard]] std::size_t offset() const noexcept { return qmodel_header_bytes + in_.at; }
  [[nodiscard]] std::size_t remaining() const noexcept { return in_.remaining(); }
  void need(std::size_t n, std::string_view what) const {
    detail::check(n <= remaining(), fn, "sizes do not add up: ", what, " at offset ", offset(), " needs ", n,
                  " bytes, ", remaining(), " remain before the checksum");
  }
  std::uint64_t u(int width, std::string_view what) {
    need(static_cast<std::size_t>(width), what);
    return in_.u(width);
  }
  std::uint32_t u32(std::string_view what) { return static_cast<std::uint32_t>(u(4, what)); }
  std::uint64_t u64(std::string_view what) { return u(8, what); }
  double f64(std::string_view what) { return std::bit_cast<double>(u(8, what)); }
  float f32(std::string_view what) { return std::bit_cast<float>(u32(what)); }
  std::span<const std::uint8_t> take(std::size_t n, std::string_view what) {
    need(n, what);
    const auto out = in_.bytes.subspan(in_.at, n);
    in_.at += n;
    return out;
  }
  /// count x element_bytes, overflow-checked and bounded by what remains.
  std::span<const std::uint8_t> take_array(std::uint64_t count, std::size_t element_bytes, std::string_view what) {
    std::size_t bytes = 0;
    detail::check(!detail::multiply_overflows(static_cast<std::size_t>(count), element_bytes, bytes),
                  fn, "size overflow: ", what, " at offset ", offset(), " has ", count, " elements of ", element_bytes,
                  " bytes");
    return take(bytes, what);
  }

 private:
  detail::blob_reader in_;
};

inline std::vector<float> read_floats(body_reader& in, std::uint64_t count, const std::string& what) {
  const std::size_t at = in.offset();
  const auto raw = in.take_array(count, 4, what);
  std::vector<float> v(raw.size() / 4);
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::uint32_t bits = 0;
    for (std::size_t k = 0; k < 4; ++k) bits |= static_cast<std::uint32_t>(raw[4 * i + k]) << (8 * k);
    v[i] = std::bit_cast<float>(bits);
    detail::check(std::isfinite(v[i]), fn, what, " at offset ", at, ": non-finite value at element ", i);
  }
  return v;
}

inline packed_int4 read_packed(body_reader& in, std::size_t rows, std::size_t cols, const std::string& what) {
  const std::size_t at = in.offset();
  const std::uint64_t r = in.u64(what), c = in.u64(what);
  detail::check(r == rows && c == cols, fn, "sizes do not add up: ", what, " at offset ", at, " is ", r, " x ", c,
                ", the configuration needs ", rows, " x ", cols);
  const std::uint32_t gran = in.u32(what);
  const std::uint64_t group = in.u64(what);
  const std::uint32_t grid = in.u32(what), zero_points = in.u32(what);
  detail::check(gran <= static_cast<std::uint32_t>(granularity::per_group) &&
                    grid <= static_cast<std::uint32_t>(int4_grid::full8) && zero_points <= 1,
                fn, what, " at offset ", at, ": unknown granularity ", gran, ", grid ", grid, " or zero-point flag ",
                zero_points);
  const auto g = static_cast<granularity>(gran);
  detail::check(g == granularity::per_group ? group > 0 && group <= cols && cols % group == 0 : group == 0, fn, what,
                " at offset ", at, ": group size ", group, " does not fit ", cols, " columns (granularity ", gran, ")");
  // Everything the tensor holds must be in the file before it is allocated.
  const std::size_t scales = g == granularity::per_tensor ? 1
                             : g == granularity::per_row  ? rows
                             : g == granularity::per_column ? cols
                                                            : rows * (cols / static_cast<std::size_t>(group));
  std::size_t code_bytes = 0;
  detail::check(!detail::multiply_overflows(rows, singlequant::row_bytes(cols), code_bytes), fn, "size overflow: ",
                what, " of ", rows, " x ", cols);
  const auto codes = in.take(code_bytes, what);
  const auto scale_bytes = in.take_array(scales, 4, what);
  const auto zero_bytes = in.take(zero_points != 0 ? scales : 0, what);
  packed_int4 q(rows, cols, g, static_cast<std::size_t>(group), static_cast<int4_grid>(grid), zero_points != 0);
  if (cols % 2 != 0)
    for (std::size_t i = 0; i < rows; ++i)
      detail::check((codes[i * q.row_bytes() + q.row_bytes() - 1] & 0xF0u) == 0, fn, what, " at offset ", at,
                    ": row ", i, " has a non-zero padding nibble");
  std::copy(codes.begin(), codes.end(), q.codes().begin());
  for (std::size_t i = 0; i < scales; ++i) {
    std::uint32_t bits = 0;
    for (std::size_t k = 0; k < 4; ++k) bits |= static_cast<std::uint32_t>(scale_bytes[4 * i + k]) << (8 * k);
    q.scales()[i] = std::bit_cast<float>(bits);
    detail::check(std::isfinite(q.scales()[i]), fn, what, " at offset ", at, ": scale ", i, " is not finite");
  }
  const int lowest = grid_min(static_cast<int4_grid>(grid));
  for (std::size_t i = 0; i < zero_bytes.size(); ++i) {
    const auto z = static_cast<std::int8_t>(zero_bytes[i]);
    detail::check(z >= lowest && z <= 7, fn, what, " at offset ", at, ": zero point ", int{z}, " outside ", lowest,
                  "..7");
    q.zero_points()[i] = z;
  }
  return q;
}

inline std::optional<site_transform> read_transform(body_reader& in, std::size_t width, const std::string& what) {
  const std::size_t at = in.offset();
  const std::uint64_t length = in.u64(what);
  if (length == 0) return std::nullopt;
  const auto blob = in.take_array(length, 1, what);
  // The width (bytes 12..19 of the blob) first: a blob of a few bytes may name a Hadamard of 2^20.
  std::uint64_t n = 0;
  if (blob.size() >= 20)
    for (std::size_t k = 0; k < 8; ++k) n |= static_cast<std::uint64_t>(blob[12 + k]) << (8 * k);
  detail::check(blob.size() >= 20 && n == width, fn, "sizes do not add up: ", what, " at offset ", at, " (",
                blob.size(), " bytes) has width ", n, ", the site ", width);
  try {
    return site_transform::deserialize(blob);
  } catch (const error& e) {
    detail::fail(fn, detail::message(what, " at offset ", at, ": ", e.what()));
  }
}

inline const char* site_name(std::size_t s) { return to_string(static_cast<site_kind>(s)).data(); }

}  // namespace detail_qmodel

/// The documented bytes of a quantised model and an options text (docs/quantized-model-format.md).
/// Same model and text, same bytes.
[[nodiscard]] inline std::vector<std::uint8_t> serialize_qmodel(const quantized_model& m, std::string_view options) {
  using namespace detail_qmodel;
  const llama_config& c = m.config();
  detail::check(!m.layers().empty(), "serialize_qmodel", "empty model (use quantize_model)");
  detail::blob_writer out;
  for (const char ch : {'S', 'Q', 'Q', 'M'}) out.bytes.push_back(static_cast<std::uint8_t>(ch));
  out.u32(qmodel_format_version);
  out.u64(0);  // file size, patched below
  for (const std::size_t v : {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.max_seq_len})
    out.u64(v);
  put_f32(out, c.norm_eps);
  out.f64(c.rope_theta);
  out.u32(c.tied_classifier ? 1u : 0u);
  const quant_options& a = m.activation_config();
  out.u32(static_cast<std::uint32_t>(a.grid));
  out.u32(static_cast<std::uint32_t>(a.gran));
  out.u64(a.group_size);
  out.f64(a.clip_ratio);
  out.u32((a.asymmetric ? 1u : 0u) | (a.mse_clip_search ? 2u : 0u));
  out.f64(a.clip_search_min);
  out.f64(a.clip_search_step);
  out.u64(options.size());
  for (const char ch : options) out.bytes.push_back(static_cast<std::uint8_t>(ch));
  put_transform(out, m.residual());
  const auto e = m.embedding();
  put_floats(out, std::span<const float>(e.data(), e.rows() * e.cols()));
  if (const auto& q = m.classifier_weights()) {
    out.u32(1);
    put_packed(out, *q);
  } else {
    out.u32(0);
    const auto cl = m.classifier();
    put_floats(out, std::span<const float>(cl.data(), cl.rows() * cl.cols()));
  }
  for (std::size_t l = 0; l < m.layers().size(); ++l) {
    for (const linear_kind kind : layer_linears) put_packed(out, m.weight(l, kind));
    for (const site_kind site : layer_sites) put_transform(out, m.online(l, site));
  }
  const std::uint64_t size = out.bytes.size() + 8;
  for (std::size_t b = 0; b < 8; ++b) out.bytes[8 + b] = static_cast<std::uint8_t>(size >> (8 * b));
  out.u64(detail::fnv1a64(out.bytes.data(), out.bytes.size()));
  return std::move(out.bytes);
}

/// Reads serialize_qmodel's bytes, validating everything. Errors (singlequant::error of
/// "read_qmodel", each its own message): "truncated" (shorter than the header or than the size the
/// header states), "bad magic", "unsupported format version", "trailing bytes", "checksum
/// mismatch", "sizes do not add up" (a part runs past the body, a shape differs from the
/// configuration, bytes left after the last layer), "size overflow", and invalid values (bad
/// configuration, unknown enumerators, non-finite floats, bad transforms) named with their offset.
[[nodiscard]] inline qmodel_file read_qmodel(std::span<const std::uint8_t> bytes) {
  using namespace detail_qmodel;
  detail::check(bytes.size() >= qmodel_header_bytes + 8, fn, "truncated: ", bytes.size(),
                " bytes, the header and checksum alone take ", qmodel_header_bytes + 8);
  detail::check(bytes[0] == 'S' && bytes[1] == 'Q' && bytes[2] == 'Q' && bytes[3] == 'M', fn,
                "bad magic (not a singlequant quantised-model file)");
  detail::blob_reader header{bytes, 4};
  const std::uint32_t version = header.u32();
  detail::check(version == qmodel_format_version, fn, "unsupported format version ", version, " (this build reads ",
                qmodel_format_version, ")");
  const std::uint64_t size = header.u64();
  detail::check(bytes.size() >= size, fn, "truncated: the file has ", bytes.size(), " bytes, its header states ", size);
  detail::check(bytes.size() == size, fn, "trailing bytes: the file has ", bytes.size(), " bytes, its header states ",
                size);
  const std::size_t body_end = bytes.size() - 8;
  detail::blob_reader tail{bytes, body_end};
  detail::check(tail.u64() == detail::fnv1a64(bytes.data(), body_end), fn, "checksum mismatch (corrupted file)");

  body_reader in(bytes.subspan(qmodel_header_bytes, body_end - qmodel_header_bytes));
  llama_config c;
  std::uint64_t sizes[7];
  for (auto& v : sizes) v = in.u64("configuration");
  for (const std::uint64_t v : sizes)
    detail::check(v <= max_site_width * std::uint64_t{1024}, fn, "size overflow: configuration size ", v);
  c.dim = sizes[0];
  c.hidden_dim = sizes[1];
  c.n_layers = sizes[2];
  c.n_heads = sizes[3];
  c.n_kv_heads = sizes[4];
  c.vocab_size = sizes[5];
  c.max_seq_len = sizes[6];
  c.norm_eps = in.f32("norm_eps");
  c.rope_theta = in.f64("rope_theta");
  const std::uint32_t tied = in.u32("configuration flags");
  detail::check(tied == 0, fn, "configuration flags ", tied, " (a quantised model is untied: 0)");
  c.tied_classifier = false;
  check_config(c, fn);
  quant_options a;
  const std::uint32_t grid = in.u32("activations"), gran = in.u32("activations");
  a.group_size = static_cast<std::size_t>(in.u64("activations"));
  a.clip_ratio = in.f64("activations");
  const std::uint32_t flags = in.u32("activations");
  a.clip_search_min = in.f64("activations");
  a.clip_search_step = in.f64("activations");
  detail::check(grid <= 1 && gran <= 3 && flags <= 3, fn, "activations: unknown grid ", grid, ", granularity ", gran,
                " or flags ", flags);
  a.grid = static_cast<int4_grid>(grid);
  a.gran = static_cast<granularity>(gran);
  a.asymmetric = (flags & 1u) != 0;
  a.mse_clip_search = (flags & 2u) != 0;
  detail::check(std::isfinite(a.clip_ratio) && a.clip_ratio > 0 && a.clip_ratio <= 1 && std::isfinite(a.clip_search_min) &&
                    std::isfinite(a.clip_search_step),
                fn, "activations: clip ratio ", a.clip_ratio, " not in (0, 1] or a non-finite search bound");
  const std::uint64_t options_length = in.u64("options length");
  const auto options = in.take_array(options_length, 1, "options text");
  qmodel_file result;
  result.options.assign(reinterpret_cast<const char*>(options.data()), options.size());
  std::optional<site_transform> residual = read_transform(in, c.dim, "residual transform");
  // Every float tensor is bounded by the bytes left (take_array) before it is allocated.
  std::vector<float> embedding = read_floats(in, std::uint64_t{c.vocab_size} * c.dim, "embedding");
  std::vector<float> classifier;
  std::optional<packed_int4> classifier_q;
  const std::uint32_t classifier_kind = in.u32("classifier kind");
  detail::check(classifier_kind <= 1, fn, "unknown classifier kind ", classifier_kind, " (0 float32, 1 INT4)");
  if (classifier_kind == 0) classifier = read_floats(in, std::uint64_t{c.vocab_size} * c.dim, "classifier");
  else classifier_q.emplace(read_packed(in, c.vocab_size, c.dim, "INT4 classifier"));
  // A layer takes at least 7 tensor headers and 4 transform lengths: bound n_layers first.
  detail::check(c.n_layers <= in.remaining() / (7 * 36 + 4 * 8), fn, "sizes do not add up: ", c.n_layers,
                " layers cannot fit the ", in.remaining(), " bytes that remain");
  std::vector<quantized_model::layer> layers(c.n_layers);
  for (std::size_t l = 0; l < c.n_layers; ++l) {
    for (const linear_kind kind : layer_linears) {
      const auto shape = linear_shape(c, kind);
      layers[l].linears[llama_model::index(kind)] =
          read_packed(in, shape[0], shape[1], detail::message(to_string(kind), " of layer ", l));
    }
    for (std::size_t s = 0; s < 4; ++s)
      layers[l].online[s] = read_transform(in, static_cast<site_kind>(s) == site_kind::down_input ? c.hidden_dim : c.dim,
                                           detail::message("online transform ", site_name(s), " of layer ", l));
  }
  detail::check(in.remaining() == 0, fn, "sizes do not add up: ", in.remaining(),
                " bytes left after the last layer, before the checksum");
  result.model = quantized_model::from_parts(c, a, std::move(embedding), std::move(classifier), std::move(classifier_q),
                                             std::move(residual), std::move(layers));
  return result;
}

/// Writes serialize_qmodel(m, options) to `path` through a temporary file in the same directory,
/// renamed over `path` once complete (removed on failure). Errors name the path.
inline void write_qmodel_file(const std::filesystem::path& path, const quantized_model& m, std::string_view options) {
  constexpr const char* fn = "write_qmodel";
  const std::vector<std::uint8_t> bytes = serialize_qmodel(m, options);
  std::filesystem::path temp = path;
  temp += ".partial";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    detail::check(static_cast<bool>(out), fn, "cannot create '", temp.string(), "'");
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      out.close();
      std::error_code ignored;
      std::filesystem::remove(temp, ignored);
      detail::fail(fn, detail::message("cannot write ", bytes.size(), " bytes to '", temp.string(), "'"));
    }
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    detail::fail(fn, detail::message("cannot rename '", temp.string(), "' to '", path.string(), "': ", ec.message()));
  }
}

/// read_qmodel of a file. Errors also name the path.
[[nodiscard]] inline qmodel_file read_qmodel_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  detail::check(static_cast<bool>(in), "read_qmodel", "cannot open '", path.string(), "'");
  const std::streamoff size = in.tellg();
  detail::check(size >= 0, "read_qmodel", "cannot size '", path.string(), "'");
  std::vector<std::uint8_t> bytes =
      detail::checked_vector<std::uint8_t>("read_qmodel", "file bytes", static_cast<std::size_t>(size));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  detail::check(static_cast<bool>(in), "read_qmodel", "cannot read '", path.string(), "'");
  try {
    return read_qmodel(bytes);
  } catch (const error& e) {
    std::string what = e.what();
    constexpr std::string_view prefix = "singlequant::read_qmodel: ";
    if (what.starts_with(prefix)) what.erase(0, prefix.size());
    throw error("read_qmodel", "'" + path.string() + "': " + what);
  }
}

}  // namespace singlequant::tools

#endif  // SINGLEQUANT_TOOLS_FORMATS_QMODEL_HPP
