// libFuzzer target: llama2c::model::load_bytes (a llama2.c checkpoint) on arbitrary bytes.
// The loader throws std::runtime_error on a bad file, by design. An accepted model must expose
// every weight matrix with the header's shape, and (when its caches stay small) run one token.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>

#include "fuzz_support.hpp"
#include "llama2c/forward.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const char> bytes(reinterpret_cast<const char*>(data), size);
  std::optional<llama2c::model> m;
  try {
    m.emplace(llama2c::model::load_bytes(bytes, "fuzz input"));
  } catch (const std::runtime_error&) {
    return 0;
  }
  const llama2c::config& c = m->cfg();
  sq_fuzz::require(c.dim > 0 && c.hidden_dim > 0 && c.n_layers > 0 && c.n_heads > 0 && c.n_kv_heads > 0 &&
                       c.vocab_size > 0 && c.seq_len > 0,
                   "accepted a non-positive size");
  for (int layer = 0; layer < c.n_layers; ++layer)
    for (const llama2c::weight_id w : llama2c::per_layer_weights) {
      const auto v = m->linear(w, layer);
      sq_fuzz::require(v.data != nullptr && v.out_features > 0 && v.in_features > 0, "empty weight view");
    }
  const auto classifier = m->classifier();
  sq_fuzz::require(classifier.out_features == c.vocab_size && classifier.in_features == c.dim,
                   "classifier shape differs from the header");
  // The KV cache (n_layers x seq_len x kv_dim floats) is not bounded by the file size; keep it small.
  const auto cache = std::size_t(c.n_layers) * std::size_t(c.seq_len) * std::size_t(c.kv_dim());
  if (cache <= (std::size_t{1} << 16)) {
    llama2c::session s(*m);
    const auto logits = s.forward(0, 0);
    sq_fuzz::require(logits.size() == std::size_t(c.vocab_size), "logits size differs from vocab_size");
  }
  return 0;
}
