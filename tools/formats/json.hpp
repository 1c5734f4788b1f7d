// json.hpp — a minimal RFC 8259 JSON reader (the models' reference files, the tests' check of
// `singlequant eval --json`) and the string escaping the writer needs.
//
// Namespace `singlequant_tools::json` (also reachable as `llama2c::json`, its old name).
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace singlequant_tools {

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
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("'" + path + "': cannot open file");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw std::runtime_error("'" + path + "': read error");
  try {
    return parse(std::string_view(bytes.data(), bytes.size()));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("'" + path + "': " + e.what());
  }
}

// `text` as a JSON string literal (quotes, backslash and control characters escaped; other
// bytes pass through, so valid UTF-8 stays valid).
inline std::string quote(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (const char ch : text) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (u < 0x20) {
      out += "\\u00";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

}  // namespace json

}  // namespace singlequant_tools

namespace llama2c {
namespace json = singlequant_tools::json;
}  // namespace llama2c
