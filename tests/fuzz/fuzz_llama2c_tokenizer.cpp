// libFuzzer target: llama2c::tokenizer::load_bytes (a llama2.c tokenizer.bin) on arbitrary bytes.
// The loader throws std::runtime_error on a bad file, by design. An accepted tokenizer must decode
// every id and encode a short text into ids of its vocabulary.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include <formats/llama2c_tokenizer.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const char> bytes(reinterpret_cast<const char*>(data), size);
  std::optional<llama2c::tokenizer> t;
  try {
    t.emplace(llama2c::tokenizer::load_bytes(bytes, "fuzz input"));
  } catch (const std::runtime_error&) {
    return 0;
  }
  sq_fuzz::require(t->vocab_size() >= 259 && t->max_token_length() > 0, "accepted a too small vocabulary");
  for (int id = 0; id < t->vocab_size(); ++id) (void)t->decode(id == 0 ? -1 : id - 1, id);
  for (const char* text : {"Once upon a time, Lily saw a big red ball.", "\xC3\xA9t\xC3\xA9 \xF0\x9F\x99\x82 x"}) {
    const std::vector<int> ids = t->encode(text, true, true);
    for (const int id : ids) sq_fuzz::require(id >= 0 && id < t->vocab_size(), "encode gave an id outside the vocabulary");
    (void)t->decode(ids);
  }
  return 0;
}
