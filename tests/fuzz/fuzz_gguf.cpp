// libFuzzer target: tools/formats/gguf.hpp (read_gguf_llama, parse_gguf) on arbitrary bytes.
// The reader throws singlequant::error on a bad file, by design. An accepted file must give a
// model whose weights pass check_weights, a tokenizer of vocab_size tokens with bos / eos inside
// it, and (when its KV cache stays small) logits for one token.
#include <singlequant/model/forward.hpp>

#include <formats/gguf.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "fuzz_support.hpp"

namespace sq = singlequant;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  try {
    const sq::tools::gguf_file f = sq::tools::parse_gguf(bytes);
    sq_fuzz::require(f.data_offset <= size && f.data_offset % f.alignment == 0, "data section outside the file");
    for (const auto& t : f.tensors)
      sq_fuzz::require(t.bytes == 0 || f.data_offset + t.offset + t.bytes <= size, "tensor outside the file");
  } catch (const sq::error&) {
    return 0;
  }
  std::optional<sq::tools::gguf_llama> g;
  try {
    g.emplace(sq::tools::read_gguf_llama(bytes));
  } catch (const sq::error&) {
    return 0;
  }
  const sq::llama_config& c = g->model.config();
  const sq::llama_weights w = g->model.weights();
  sq::check_weights(w, "fuzz_gguf");  // an accepted model must be consistent (throwing here is a crash)
  sq_fuzz::require(g->tokenizer.vocab.size() == c.vocab_size && g->tokenizer.scores.size() == c.vocab_size &&
                       g->tokenizer.token_types.size() == c.vocab_size,
                   "tokenizer size differs from vocab_size");
  sq_fuzz::require(g->tokenizer.bos >= 0 && static_cast<std::size_t>(g->tokenizer.bos) < c.vocab_size &&
                       g->tokenizer.eos >= 0 && static_cast<std::size_t>(g->tokenizer.eos) < c.vocab_size,
                   "bos / eos outside the vocabulary");
  if (c.n_layers * c.kv_dim() <= (std::size_t{1} << 16) && c.vocab_size * c.dim <= (std::size_t{1} << 20)) {
    const std::int32_t token = 0;
    const auto logits = sq::forward_logits(w, std::span<const std::int32_t>(&token, 1));
    sq_fuzz::require(logits.size() == c.vocab_size, "logits size differs from vocab_size");
  }
  return 0;
}
