// tools/formats/gguf.hpp - a GGUF (version 2 / 3) reader for the `llama` architecture.
//
// GGUF (llama.cpp's file format), little-endian throughout:
//   "GGUF", u32 version (2 or 3), u64 tensor_count, u64 metadata_kv_count,
//   metadata_kv_count x { string key, u32 value_type, value },
//   tensor_count x { string name, u32 n_dims (1..4), u64 dims[n_dims] (fastest-varying first),
//                    u32 ggml_type, u64 offset (from the data section, a multiple of the alignment) },
//   padding to the alignment (general.alignment, default 32), then the data section.
//   string = u64 length + bytes (no terminator); array value = u32 element type, u64 count, elements.
// A matrix of dims [in, out] is stored row-major as (out, in): the library's y = x W^T layout.
// RoPE: llama.cpp's `llama` architecture rotates adjacent pairs (2i, 2i + 1) like the library (its
// Hugging Face converter permutes the q / k rows so that this holds), so q and k are used as stored.
// Every count and length is bounded by the bytes left before anything is allocated; size products
// are overflow-checked. Errors are singlequant::error naming the field, its offset and the sizes.
// Not a library header: file formats live in tools/ (include <singlequant/...> only).
#ifndef SINGLEQUANT_TOOLS_FORMATS_GGUF_HPP
#define SINGLEQUANT_TOOLS_FORMATS_GGUF_HPP

#include <singlequant/fp16.hpp>
#include <singlequant/model/llama.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace singlequant::tools {

/// GGUF metadata value types (the numbering of the format).
enum class gguf_type : std::uint32_t {
  uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, boolean = 7,
  string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12,
};

[[nodiscard]] constexpr std::string_view to_string(gguf_type t) noexcept {
  switch (t) {
    case gguf_type::uint8: return "uint8";
    case gguf_type::int8: return "int8";
    case gguf_type::uint16: return "uint16";
    case gguf_type::int16: return "int16";
    case gguf_type::uint32: return "uint32";
    case gguf_type::int32: return "int32";
    case gguf_type::float32: return "float32";
    case gguf_type::boolean: return "bool";
    case gguf_type::string: return "string";
    case gguf_type::array: return "array";
    case gguf_type::uint64: return "uint64";
    case gguf_type::int64: return "int64";
    case gguf_type::float64: return "float64";
  }
  return "?";
}

/// Bytes of one scalar of a fixed-size type (0 for string and array).
[[nodiscard]] constexpr std::size_t gguf_scalar_bytes(gguf_type t) noexcept {
  switch (t) {
    case gguf_type::uint8:
    case gguf_type::int8:
    case gguf_type::boolean: return 1;
    case gguf_type::uint16:
    case gguf_type::int16: return 2;
    case gguf_type::uint32:
    case gguf_type::int32:
    case gguf_type::float32: return 4;
    case gguf_type::uint64:
    case gguf_type::int64:
    case gguf_type::float64: return 8;
    case gguf_type::string:
    case gguf_type::array: return 0;
  }
  return 0;
}

/// ggml tensor types this reader converts to float32; every other type is named in the error.
inline constexpr std::uint32_t ggml_type_f32 = 0, ggml_type_f16 = 1, ggml_type_bf16 = 30;

/// The ggml name of a tensor type (for messages; "unknown" beyond the known ones).
[[nodiscard]] constexpr std::string_view ggml_type_name(std::uint32_t t) noexcept {
  constexpr std::string_view names[] = {"F32",  "F16",  "Q4_0", "Q4_1", "Q4_2", "Q4_3",  "Q5_0",
                                        "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K",  "Q5_K",
                                        "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
                                        "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32",
                                        "I64", "F64", "IQ1_M", "BF16"};
  return t < std::size(names) ? names[t] : std::string_view("unknown");
}

/// One metadata value. Scalars keep their little-endian bits in `bits` (zero-extended); numeric
/// arrays keep their elements' raw bytes (no per-element objects, so a file cannot multiply its
/// size in memory); string arrays and nested arrays are decoded.
struct gguf_value {
  gguf_type type = gguf_type::uint8;
  std::uint64_t bits = 0;                ///< scalar types
  std::string string;                    ///< type string
  gguf_type element_type = gguf_type::uint8;  ///< type array
  std::uint64_t count = 0;               ///< type array: elements
  std::vector<std::uint8_t> raw;         ///< array of a fixed-size type: count x element bytes
  std::vector<std::string> strings;      ///< array of strings
  std::vector<gguf_value> arrays;        ///< array of arrays

  [[nodiscard]] bool is_integer() const noexcept {
    switch (type) {
      case gguf_type::uint8: case gguf_type::int8: case gguf_type::uint16: case gguf_type::int16:
      case gguf_type::uint32: case gguf_type::int32: case gguf_type::uint64: case gguf_type::int64:
        return true;
      default: return false;
    }
  }
  /// The integer value (sign-extended for the signed types); nullopt for other types or a negative
  /// value.
  [[nodiscard]] std::optional<std::uint64_t> as_unsigned() const noexcept {
    if (!is_integer()) return std::nullopt;
    const std::size_t width = gguf_scalar_bytes(type);
    const bool is_signed = type == gguf_type::int8 || type == gguf_type::int16 || type == gguf_type::int32 ||
                           type == gguf_type::int64;
    if (is_signed && width < 8 && ((bits >> (8 * width - 1)) & 1u) != 0) return std::nullopt;
    if (is_signed && width == 8 && (bits >> 63) != 0) return std::nullopt;
    return bits;
  }
  /// A float32 or float64 value as double.
  [[nodiscard]] std::optional<double> as_float() const noexcept {
    if (type == gguf_type::float32) return static_cast<double>(std::bit_cast<float>(static_cast<std::uint32_t>(bits)));
    if (type == gguf_type::float64) return std::bit_cast<double>(bits);
    return std::nullopt;
  }
};

/// One tensor's description; `bytes` is its data size (0 when the type is not F32 / F16 / BF16).
struct gguf_tensor_info {
  std::string name;
  std::vector<std::uint64_t> dims;  ///< fastest-varying first
  std::uint32_t type = 0;           ///< ggml type
  std::uint64_t offset = 0;         ///< from data_offset
  std::uint64_t elements = 0;
  std::uint64_t bytes = 0;
  std::size_t info_offset = 0;      ///< where the description starts in the file (messages)
};

/// A parsed GGUF header: metadata in file order, tensor descriptions, where the data starts.
struct gguf_file {
  std::uint32_t version = 0;
  std::vector<std::pair<std::string, gguf_value>> metadata;
  std::vector<gguf_tensor_info> tensors;
  std::uint64_t alignment = 32;
  std::uint64_t data_offset = 0;

  [[nodiscard]] const gguf_value* find(std::string_view key) const noexcept {
    for (const auto& [k, v] : metadata)
      if (k == key) return &v;
    return nullptr;
  }
  [[nodiscard]] const gguf_tensor_info* tensor(std::string_view name) const noexcept {
    for (const auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
};

/// A SentencePiece-style vocabulary from tokenizer.ggml.* (defined here until a common tokenizer
/// struct exists in tools/formats/tokenizer.hpp).
struct gguf_tokenizer {
  std::vector<std::string> vocab;
  std::vector<float> scores;           ///< one per token (0 when the file has none)
  std::vector<std::int32_t> token_types;  ///< one per token (1, normal, when the file has none)
  int bos = 1, eos = 2;
};

/// A llama-architecture GGUF file as the library's owning model plus its tokenizer.
struct gguf_llama {
  llama_model model;
  gguf_tokenizer tokenizer;
};

namespace detail_gguf {

inline constexpr const char* fn = "read_gguf";
/// Nested arrays deeper than this are refused (the recursion stays shallow on hostile input).
inline constexpr int max_array_depth = 4;

class reader {
 public:
  explicit reader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
  [[nodiscard]] std::size_t offset() const noexcept { return at_; }
  [[nodiscard]] std::size_t remaining() const noexcept { return bytes_.size() - at_; }
  [[nodiscard]] std::size_t size() const noexcept { return bytes_.size(); }

  void need(std::size_t n, std::string_view what) const {
    singlequant::detail::check(n <= remaining(), fn, "truncated: ", what, " at offset ", at_, " needs ", n,
                               " bytes, ", remaining(), " of ", bytes_.size(), " remain");
  }
  std::uint64_t u(std::size_t width, std::string_view what) {
    need(width, what);
    std::uint64_t v = 0;
    for (std::size_t b = 0; b < width; ++b) v |= static_cast<std::uint64_t>(bytes_[at_ + b]) << (8 * b);
    at_ += width;
    return v;
  }
  std::uint32_t u32(std::string_view what) { return static_cast<std::uint32_t>(u(4, what)); }
  std::uint64_t u64(std::string_view what) { return u(8, what); }
  std::span<const std::uint8_t> take(std::size_t n, std::string_view what) {
    need(n, what);
    const auto out = bytes_.subspan(at_, n);
    at_ += n;
    return out;
  }
  std::string string(std::string_view what) {
    const std::size_t start = at_;
    const std::uint64_t length = u64(what);
    singlequant::detail::check(length <= remaining(), fn, "truncated: ", what, " at offset ", start,
                               " has length ", length, ", ", remaining(), " bytes remain");
    const auto s = take(static_cast<std::size_t>(length), what);
    return std::string(reinterpret_cast<const char*>(s.data()), s.size());
  }

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t at_ = 0;
};

inline gguf_type value_type(std::uint32_t t, std::size_t offset, std::string_view key) {
  singlequant::detail::check(t <= 12, fn, "metadata '", key, "': unknown value type ", t, " at offset ", offset);
  return static_cast<gguf_type>(t);
}

inline gguf_value read_value(reader& in, gguf_type type, std::string_view key, int depth) {
  gguf_value v;
  v.type = type;
  const std::size_t start = in.offset();
  if (type == gguf_type::string) {
    v.string = in.string(key);
    return v;
  }
  if (type != gguf_type::array) {
    v.bits = in.u(gguf_scalar_bytes(type), key);
    singlequant::detail::check(type != gguf_type::boolean || v.bits <= 1, fn, "metadata '", key,
                               "': bool of value ", v.bits, " at offset ", start);
    return v;
  }
  singlequant::detail::check(depth < max_array_depth, fn, "metadata '", key, "': arrays nested deeper than ",
                             max_array_depth, " at offset ", start);
  v.element_type = value_type(in.u32(key), start, key);
  v.count = in.u64(key);
  // Every element takes at least min_bytes of the file: bound the count before allocating.
  const std::size_t element = gguf_scalar_bytes(v.element_type);
  const std::size_t min_bytes = element != 0 ? element : v.element_type == gguf_type::string ? 8 : 12;
  singlequant::detail::check(v.count <= in.remaining() / min_bytes, fn, "metadata '", key, "': array of ",
                             v.count, " ", to_string(v.element_type), " at offset ", start, " needs at least ",
                             min_bytes, " bytes each, ", in.remaining(), " remain (truncated or corrupt)");
  const auto count = static_cast<std::size_t>(v.count);
  if (element != 0) {
    const auto raw = in.take(count * element, key);
    v.raw.assign(raw.begin(), raw.end());
    if (v.element_type == gguf_type::boolean)
      for (const std::uint8_t b : v.raw)
        singlequant::detail::check(b <= 1, fn, "metadata '", key, "': bool array element ", int{b},
                                   " (array at offset ", start, ")");
  } else if (v.element_type == gguf_type::string) {
    v.strings.reserve(count);
    for (std::size_t i = 0; i < count; ++i) v.strings.push_back(in.string(key));
  } else {
    v.arrays.reserve(count);
    for (std::size_t i = 0; i < count; ++i) v.arrays.push_back(read_value(in, gguf_type::array, key, depth + 1));
  }
  return v;
}

[[nodiscard]] inline std::uint64_t tensor_element_bytes(std::uint32_t type) noexcept {
  return type == ggml_type_f32 ? 4 : (type == ggml_type_f16 || type == ggml_type_bf16) ? 2 : 0;
}

}  // namespace detail_gguf

/// Parses the header, metadata and tensor descriptions of GGUF bytes and checks that every F32 /
/// F16 / BF16 tensor lies inside the data section. Errors: bad magic, a version other than 2 / 3,
/// truncation (naming the field, offset and sizes), counts beyond the bytes, duplicate keys or
/// tensor names, bad alignment, tensor offsets misaligned or outside the file.
[[nodiscard]] inline gguf_file parse_gguf(std::span<const std::uint8_t> bytes) {
  using singlequant::detail::check;
  constexpr const char* fn = detail_gguf::fn;
  detail_gguf::reader in(bytes);
  check(bytes.size() >= 4, fn, "file of ", bytes.size(), " bytes is too short for the magic");
  check(bytes[0] == 'G' && bytes[1] == 'G' && bytes[2] == 'U' && bytes[3] == 'F', fn,
        "bad magic (not a GGUF file)");
  in.take(4, "magic");
  gguf_file f;
  f.version = in.u32("version");
  check(f.version == 2 || f.version == 3, fn, "unsupported GGUF version ", f.version,
        " (this reader takes versions 2 and 3)");
  const std::uint64_t tensor_count = in.u64("tensor_count");
  const std::uint64_t kv_count = in.u64("metadata_kv_count");
  // A key-value pair takes at least 8 + 4 + 1 bytes, a tensor description at least 8 + 4 + 8 + 4 + 8.
  check(kv_count <= in.remaining() / 13, fn, "metadata_kv_count ", kv_count, " needs at least 13 bytes each, ",
        in.remaining(), " bytes follow the header (truncated or corrupt)");
  check(tensor_count <= in.remaining() / 32, fn, "tensor_count ", tensor_count, " needs at least 32 bytes each, ",
        in.remaining(), " bytes follow the header (truncated or corrupt)");
  f.metadata.reserve(static_cast<std::size_t>(kv_count));
  for (std::uint64_t i = 0; i < kv_count; ++i) {
    const std::size_t start = in.offset();
    std::string key = in.string("metadata key");
    const gguf_type type = detail_gguf::value_type(in.u32(key), start, key);
    gguf_value value = detail_gguf::read_value(in, type, key, 0);
    f.metadata.emplace_back(std::move(key), std::move(value));
  }
  // Duplicates by sorting (n log n: a file may hold a count of entries in the millions).
  auto check_unique = [&](std::vector<std::string_view> names, const char* what) {
    std::sort(names.begin(), names.end());
    const auto twice = std::adjacent_find(names.begin(), names.end());
    check(twice == names.end(), fn, "duplicate ", what, " '", twice == names.end() ? std::string_view() : *twice, "'");
  };
  {
    std::vector<std::string_view> keys;
    for (const auto& kv : f.metadata) keys.push_back(kv.first);
    check_unique(std::move(keys), "metadata key");
  }
  if (const gguf_value* a = f.find("general.alignment")) {
    const auto v = a->as_unsigned();
    check(v && *v != 0 && (*v & (*v - 1)) == 0 && *v <= (std::uint64_t{1} << 30), fn,
          "general.alignment must be a power of two up to 2^30 (type ", to_string(a->type), ", value ",
          v ? *v : 0, ")");
    f.alignment = *v;
  }
  f.tensors.reserve(static_cast<std::size_t>(tensor_count));
  for (std::uint64_t i = 0; i < tensor_count; ++i) {
    gguf_tensor_info t;
    t.info_offset = in.offset();
    t.name = in.string("tensor name");
    const std::uint32_t n_dims = in.u32(t.name);
    check(n_dims >= 1 && n_dims <= 4, fn, "tensor '", t.name, "' at offset ", t.info_offset, " has ", n_dims,
          " dimensions (1 to 4)");
    t.elements = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const std::uint64_t dim = in.u64(t.name);
      check(dim >= 1 && dim <= (std::uint64_t{1} << 40) && t.elements <= (std::uint64_t{1} << 62) / dim, fn,
            "tensor '", t.name, "' at offset ", t.info_offset, ": dimension ", d, " of ", dim,
            " is zero or overflows the element count");
      t.dims.push_back(dim);
      t.elements *= dim;
    }
    t.type = in.u32(t.name);
    t.offset = in.u64(t.name);
    check(t.offset % f.alignment == 0, fn, "tensor '", t.name, "': data offset ", t.offset,
          " is not a multiple of the alignment ", f.alignment);
    t.bytes = t.elements * detail_gguf::tensor_element_bytes(t.type);
    f.tensors.push_back(std::move(t));
  }
  {
    std::vector<std::string_view> names;
    for (const auto& t : f.tensors) names.push_back(t.name);
    check_unique(std::move(names), "tensor name");
  }
  const std::uint64_t end = in.offset();
  f.data_offset = (end + f.alignment - 1) / f.alignment * f.alignment;
  check(f.data_offset <= bytes.size(), fn, "truncated: the data section starts at ", f.data_offset,
        ", the file has ", bytes.size(), " bytes");
  const std::uint64_t data_bytes = bytes.size() - f.data_offset;
  for (const gguf_tensor_info& t : f.tensors)
    check(t.offset <= data_bytes && t.bytes <= data_bytes - t.offset, fn, "truncated: tensor '", t.name,
          "' (", ggml_type_name(t.type), ", ", t.bytes, " bytes at data offset ", t.offset,
          ") ends beyond the ", data_bytes, "-byte data section");
  // Tensors of known size may not overlap (llama.cpp never writes that), so the float32 copies of
  // all of them together stay within twice the file's size.
  std::vector<const gguf_tensor_info*> by_offset;
  for (const gguf_tensor_info& t : f.tensors)
    if (t.bytes != 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const gguf_tensor_info* a, const gguf_tensor_info* b) { return a->offset < b->offset; });
  for (std::size_t i = 1; i < by_offset.size(); ++i)
    check(by_offset[i - 1]->offset + by_offset[i - 1]->bytes <= by_offset[i]->offset, fn, "tensor '",
          by_offset[i]->name, "' (data offset ", by_offset[i]->offset, ") overlaps tensor '", by_offset[i - 1]->name,
          "' (data offset ", by_offset[i - 1]->offset, ", ", by_offset[i - 1]->bytes, " bytes)");
  return f;
}

/// Converts an F32 / F16 / BF16 tensor to float32 into out (out.size() == t.elements). Error: any
/// other type, named with the tensor.
inline void gguf_tensor_to_float(std::span<const std::uint8_t> bytes, const gguf_file& f,
                                 const gguf_tensor_info& t, std::span<float> out) {
  using singlequant::detail::check;
  check(t.type == ggml_type_f32 || t.type == ggml_type_f16 || t.type == ggml_type_bf16, "read_gguf",
        "tensor '", t.name, "' has unsupported type ", ggml_type_name(t.type), " (ggml type ", t.type,
        "; this reader takes F32, F16 and BF16)");
  check(out.size() == t.elements, "read_gguf", "tensor '", t.name, "' has ", t.elements,
        " elements, the destination ", out.size());
  const std::uint8_t* p = bytes.data() + f.data_offset + t.offset;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (t.type == ggml_type_f32) {
      std::uint32_t b = 0;
      for (std::size_t k = 0; k < 4; ++k) b |= static_cast<std::uint32_t>(p[4 * i + k]) << (8 * k);
      out[i] = std::bit_cast<float>(b);
    } else {
      const auto h = static_cast<std::uint16_t>(p[2 * i] | p[2 * i + 1] << 8);
      out[i] = t.type == ggml_type_f16 ? half_bits_to_float(h)
                                       : std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
    }
  }
}

namespace detail_gguf {

inline std::uint64_t required_count(const gguf_file& f, std::string_view key) {
  const gguf_value* v = f.find(key);
  singlequant::detail::check(v != nullptr, fn, "metadata key '", key, "' is missing");
  const auto n = v->as_unsigned();
  singlequant::detail::check(n.has_value(), fn, "metadata '", key, "' must be a non-negative integer (it is ",
                             to_string(v->type), ")");
  return *n;
}
inline std::optional<double> optional_float(const gguf_file& f, std::string_view key) {
  const gguf_value* v = f.find(key);
  if (v == nullptr) return std::nullopt;
  const auto x = v->as_float();
  singlequant::detail::check(x.has_value(), fn, "metadata '", key, "' must be float32 or float64 (it is ",
                             to_string(v->type), ")");
  return x;
}
inline std::size_t to_size(std::uint64_t v, std::string_view key) {
  singlequant::detail::check(v <= (std::uint64_t{1} << 40), fn, "metadata '", key, "' = ", v, " is too large");
  return static_cast<std::size_t>(v);
}

}  // namespace detail_gguf

/// The model configuration from llama.* metadata and the tensor shapes (vocab_size from
/// llama.vocab_size, else tokenizer.ggml.tokens, else token_embd.weight; max_seq_len from
/// llama.context_length; rope_theta from llama.rope.freq_base, default 10000; norm_eps from
/// llama.attention.layer_norm_rms_epsilon, default 1e-5; head_count_kv defaults to head_count).
/// tied_classifier: no output.weight, or one bit-identical to token_embd.weight. Errors: another
/// architecture (named), a missing or mistyped key, RoPE scaling, inconsistent sizes.
[[nodiscard]] inline llama_config gguf_llama_config(std::span<const std::uint8_t> bytes, const gguf_file& f) {
  using singlequant::detail::check;
  using namespace detail_gguf;
  const gguf_value* arch = f.find("general.architecture");
  check(arch != nullptr && arch->type == gguf_type::string, fn,
        "metadata 'general.architecture' is missing or not a string");
  check(arch->string == "llama", fn, "unsupported architecture '", arch->string, "' (this reader takes 'llama')");
  llama_config c;
  c.dim = to_size(required_count(f, "llama.embedding_length"), "llama.embedding_length");
  c.n_layers = to_size(required_count(f, "llama.block_count"), "llama.block_count");
  c.hidden_dim = to_size(required_count(f, "llama.feed_forward_length"), "llama.feed_forward_length");
  c.n_heads = to_size(required_count(f, "llama.attention.head_count"), "llama.attention.head_count");
  c.n_kv_heads = f.find("llama.attention.head_count_kv") != nullptr
                     ? to_size(required_count(f, "llama.attention.head_count_kv"), "llama.attention.head_count_kv")
                     : c.n_heads;
  c.max_seq_len = to_size(required_count(f, "llama.context_length"), "llama.context_length");
  if (const auto eps = optional_float(f, "llama.attention.layer_norm_rms_epsilon"))
    c.norm_eps = static_cast<float>(*eps);
  if (const auto theta = optional_float(f, "llama.rope.freq_base")) c.rope_theta = *theta;
  if (const gguf_value* s = f.find("llama.rope.scaling.type"))
    check(s->type == gguf_type::string && s->string == "none", fn, "RoPE scaling ('llama.rope.scaling.type' = '",
          s->string, "') is not supported");
  const gguf_tensor_info* embd = f.tensor("token_embd.weight");
  check(embd != nullptr, fn, "tensor 'token_embd.weight' is missing");
  if (f.find("llama.vocab_size") != nullptr) {
    c.vocab_size = to_size(required_count(f, "llama.vocab_size"), "llama.vocab_size");
  } else if (const gguf_value* tokens = f.find("tokenizer.ggml.tokens"); tokens != nullptr && tokens->count > 0) {
    c.vocab_size = to_size(tokens->count, "tokenizer.ggml.tokens");
  } else {
    check(embd->dims.size() == 2, fn, "tensor 'token_embd.weight' has ", embd->dims.size(), " dimensions");
    c.vocab_size = to_size(embd->dims[1], "token_embd.weight");
  }
  check_config(c, fn);
  for (const char* key : {"llama.rope.dimension_count", "llama.attention.key_length", "llama.attention.value_length"})
    if (f.find(key) != nullptr)
      check(required_count(f, key) == c.head_dim(), fn, "metadata '", key, "' = ", required_count(f, key),
            ", the head dimension is ", c.head_dim());
  const gguf_tensor_info* out = f.tensor("output.weight");
  c.tied_classifier = out == nullptr || (out->type == embd->type && out->dims == embd->dims && out->bytes != 0 &&
                                         std::memcmp(bytes.data() + f.data_offset + out->offset,
                                                     bytes.data() + f.data_offset + embd->offset, out->bytes) == 0);
  return c;
}

/// The tokenizer from tokenizer.ggml.* (model "llama", SentencePiece-style): tokens (required),
/// scores, token_type, bos_token_id (default 1), eos_token_id (default 2). Errors: another tokenizer
/// model (named), mistyped or mis-sized arrays, ids outside the vocabulary.
[[nodiscard]] inline gguf_tokenizer gguf_llama_tokenizer(const gguf_file& f) {
  using singlequant::detail::check;
  using namespace detail_gguf;
  if (const gguf_value* m = f.find("tokenizer.ggml.model"))
    check(m->type == gguf_type::string && m->string == "llama", fn, "unsupported tokenizer model '", m->string,
          "' (this reader takes 'llama', SentencePiece)");
  const gguf_value* tokens = f.find("tokenizer.ggml.tokens");
  check(tokens != nullptr && tokens->type == gguf_type::array && tokens->element_type == gguf_type::string &&
            tokens->count > 0,
        fn, "metadata 'tokenizer.ggml.tokens' is missing or not a non-empty array of strings");
  gguf_tokenizer t;
  t.vocab = tokens->strings;
  const std::size_t n = t.vocab.size();
  t.scores.assign(n, 0.0f);
  t.token_types.assign(n, 1);
  if (const gguf_value* s = f.find("tokenizer.ggml.scores")) {
    check(s->type == gguf_type::array && s->element_type == gguf_type::float32 && s->count == n, fn,
          "metadata 'tokenizer.ggml.scores' must be ", n, " float32 (it is ", to_string(s->type), " of ",
          to_string(s->element_type), ", ", s->count, " elements)");
    for (std::size_t i = 0; i < n; ++i) std::memcpy(&t.scores[i], s->raw.data() + 4 * i, 4);
  }
  if (const gguf_value* s = f.find("tokenizer.ggml.token_type")) {
    check(s->type == gguf_type::array && s->element_type == gguf_type::int32 && s->count == n, fn,
          "metadata 'tokenizer.ggml.token_type' must be ", n, " int32 (it is ", to_string(s->type), " of ",
          to_string(s->element_type), ", ", s->count, " elements)");
    for (std::size_t i = 0; i < n; ++i) std::memcpy(&t.token_types[i], s->raw.data() + 4 * i, 4);
  }
  auto id = [&](const char* key, int fallback) {
    if (f.find(key) == nullptr) return fallback;
    const std::uint64_t v = required_count(f, key);
    check(v < n, fn, "metadata '", key, "' = ", v, " is outside the vocabulary of ", n);
    return static_cast<int>(v);
  };
  t.bos = id("tokenizer.ggml.bos_token_id", 1);
  t.eos = id("tokenizer.ggml.eos_token_id", 2);
  check(t.bos >= 0 && static_cast<std::size_t>(t.bos) < n && t.eos >= 0 && static_cast<std::size_t>(t.eos) < n, fn,
        "default bos 1 / eos 2 outside the vocabulary of ", n);
  return t;
}

/// The llama model and tokenizer of GGUF bytes. Tensors: token_embd.weight [dim, vocab],
/// output_norm.weight [dim], output.weight [dim, vocab] (optional), and per layer N
/// blk.N.attn_norm / ffn_norm [dim], attn_q / attn_output [dim, dim], attn_k / attn_v [dim, kv_dim],
/// ffn_gate / ffn_up [dim, hidden], ffn_down [hidden, dim]; F32, F16 or BF16, converted to float32.
/// Errors: everything parse_gguf / gguf_llama_config / gguf_llama_tokenizer reject, a missing,
/// extra or mis-shaped tensor (named), an unsupported tensor type (named, with the tensor), a
/// tokenizer whose size differs from vocab_size.
[[nodiscard]] inline gguf_llama read_gguf_llama(std::span<const std::uint8_t> bytes) {
  using singlequant::detail::check;
  constexpr const char* fn = detail_gguf::fn;
  const gguf_file f = parse_gguf(bytes);
  const llama_config c = gguf_llama_config(bytes, f);
  gguf_tokenizer tokenizer = gguf_llama_tokenizer(f);
  check(tokenizer.vocab.size() == c.vocab_size, fn, "tokenizer.ggml.tokens has ", tokenizer.vocab.size(),
        " tokens, the model's vocab_size is ", c.vocab_size);
  // Every tensor the model needs, checked (present, shape, type: hence inside the file and, as
  // tensors do not overlap, all of them within its size) before the model is allocated.
  struct wanted {
    std::string name;
    std::uint64_t d0, d1;  // GGUF dims [in, out]; d1 == 0: a vector of d0
    const gguf_tensor_info* info;
  };
  std::vector<wanted> plan;
  std::unordered_map<std::string_view, const gguf_tensor_info*> by_name;  // n_layers x 9 look-ups
  for (const gguf_tensor_info& t : f.tensors) by_name.emplace(t.name, &t);
  auto want = [&](std::string name, std::uint64_t d0, std::uint64_t d1) {
    const auto found = by_name.find(name);
    const gguf_tensor_info* t = found == by_name.end() ? nullptr : found->second;
    check(t != nullptr, fn, "tensor '", name, "' is missing");
    const bool vector = d1 == 0;
    const bool shape_ok = vector ? t->dims.size() == 1 && t->dims[0] == d0
                                 : t->dims.size() == 2 && t->dims[0] == d0 && t->dims[1] == d1;
    std::string dims;
    for (const std::uint64_t d : t->dims) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
    check(shape_ok, fn, "tensor '", name, "' has dims [", dims, "], the configuration needs [", d0,
          vector ? std::string() : ", " + std::to_string(d1), "]");
    check(t->bytes != 0, fn, "tensor '", name, "' has unsupported type ", ggml_type_name(t->type), " (ggml type ",
          t->type, "; this reader takes F32, F16 and BF16)");
    plan.push_back({std::move(name), d0, d1, t});
  };
  want("token_embd.weight", c.dim, c.vocab_size);
  if (f.tensor("output.weight") != nullptr) want("output.weight", c.dim, c.vocab_size);
  want("output_norm.weight", c.dim, 0);
  constexpr std::array<const char*, 7> names = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                                "ffn_down"};
  for (std::size_t l = 0; l < c.n_layers; ++l) {
    const std::string prefix = "blk." + std::to_string(l) + ".";
    want(prefix + "attn_norm.weight", c.dim, 0);
    want(prefix + "ffn_norm.weight", c.dim, 0);
    for (const linear_kind kind : layer_linears) {
      const auto shape = linear_shape(c, kind);  // (out, in); GGUF lists [in, out]
      want(prefix + names[llama_model::index(kind)] + ".weight", shape[1], shape[0]);
    }
  }
  check(plan.size() == f.tensors.size(), fn, "the file has ", f.tensors.size(), " tensors, the llama model ",
        plan.size(), ": extra tensors are not supported");  // every planned name is distinct and present

  gguf_llama out{llama_model(c), std::move(tokenizer)};
  llama_model& m = out.model;
  auto span_of = [](matrix_view<float> v) { return std::span<float>(v.data(), v.rows() * v.cols()); };
  std::size_t next = 0;
  auto load = [&](std::span<float> dst) { gguf_tensor_to_float(bytes, f, *plan[next++].info, dst); };
  load(span_of(m.embedding()));
  if (f.tensor("output.weight") != nullptr) {
    if (c.tied_classifier) ++next;  // bit-identical to the embedding
    else load(span_of(m.classifier()));
  }
  load(m.final_norm());
  for (std::size_t l = 0; l < c.n_layers; ++l) {
    load(m.layer_at(l).attention_norm);
    load(m.layer_at(l).ffn_norm);
    for (const linear_kind kind : layer_linears) load(span_of(m.linear(l, kind)));
  }
  return out;
}

/// read_gguf_llama of a file (read whole into memory). Errors also name the path.
[[nodiscard]] inline gguf_llama read_gguf_llama_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  singlequant::detail::check(static_cast<bool>(in), "read_gguf", "cannot open '", path.string(), "'");
  const std::streamoff size = in.tellg();
  singlequant::detail::check(size >= 0, "read_gguf", "cannot size '", path.string(), "'");
  std::vector<std::uint8_t> bytes =
      singlequant::detail::checked_vector<std::uint8_t>("read_gguf", "file bytes", static_cast<std::size_t>(size));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  singlequant::detail::check(static_cast<bool>(in), "read_gguf", "cannot read '", path.string(), "'");
  try {
    return read_gguf_llama(bytes);
  } catch (const singlequant::error& e) {
    std::string what = e.what();
    constexpr std::string_view prefix = "singlequant::read_gguf: ";
    if (what.starts_with(prefix)) what.erase(0, prefix.size());
    throw singlequant::error("read_gguf", "'" + path.string() + "': " + what);
  }
}

}  // namespace singlequant::tools

#endif  // SINGLEQUANT_TOOLS_FORMATS_GGUF_HPP
