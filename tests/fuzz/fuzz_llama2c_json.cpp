// libFuzzer target: llama2c::json::parse (the reference files' JSON reader) on arbitrary bytes.
// It throws std::runtime_error on malformed input, by design; its nesting limit keeps the stack
// bounded. An accepted document is walked with the accessors the tests use on reference files
// (which throw std::runtime_error on a kind or range mismatch).
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "fuzz_support.hpp"
#include <formats/json.hpp>

namespace {

void walk(const llama2c::json::value& v) {
  using kind = llama2c::json::value::kind;
  try {
    switch (v.type()) {
      case kind::array:
        for (std::size_t i = 0; i < v.size(); ++i) walk(v[i]);
        (void)v.to_double_vector();
        (void)v.to_int_vector();
        break;
      case kind::object:
        for (const auto& [key, member] : v.as_object()) {
          sq_fuzz::require(v.find(key) != nullptr, "find misses a member the object holds");
          walk(member);
        }
        (void)v["model"];
        break;
      case kind::number:
        (void)v.as_int();
        break;
      default:
        (void)v.as_string();
        break;
    }
  } catch (const std::runtime_error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    walk(llama2c::json::parse(std::string_view(reinterpret_cast<const char*>(data), size)));
  } catch (const std::runtime_error&) {
  }
  return 0;
}
