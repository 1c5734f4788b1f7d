// libFuzzer target: llama2c::json::parse (the reference files' JSON reader) on arbitrary bytes.
// It throws std::runtime_error on malformed input, by design; its nesting limit keeps the stack
// bounded.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "llama2c/llama2c.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    (void)llama2c::json::parse(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const std::runtime_error&) {
  }
  return 0;
}
