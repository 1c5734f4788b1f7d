// libFuzzer target: tools/formats/qmodel.hpp (read_qmodel) on arbitrary bytes. The reader throws
// singlequant::error on a bad file, by design. An accepted file must serialise back to exactly its
// own bytes and (when small) run one token. Each input is also tried with its size field and
// checksum made right, so that mutations of the body reach the parser behind the checksum.
#include <formats/qmodel.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "fuzz_support.hpp"

namespace sq = singlequant;

namespace {

void check(std::span<const std::uint8_t> bytes) {
  std::optional<sq::tools::qmodel_file> q;
  try {
    q.emplace(sq::tools::read_qmodel(bytes));
  } catch (const sq::error&) {
    return;
  }
  const auto again = sq::tools::serialize_qmodel(q->model, q->options);
  sq_fuzz::require(again.size() == bytes.size() && sq_fuzz::same_bits(again.data(), bytes.data(), bytes.size()),
                   "an accepted file does not serialise back to its own bytes");
  const sq::llama_config& c = q->model.config();
  if (c.n_layers * c.kv_dim() <= (std::size_t{1} << 16) && c.vocab_size * c.dim <= (std::size_t{1} << 20)) {
    const std::int32_t token = 0;
    const auto logits = q->model.logits(std::span<const std::int32_t>(&token, 1));
    sq_fuzz::require(logits.size() == c.vocab_size, "logits size differs from vocab_size");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  check(std::span<const std::uint8_t>(data, size));
  if (size >= sq::tools::qmodel_header_bytes + 8) {
    std::vector<std::uint8_t> sealed(data, data + size);
    for (std::size_t b = 0; b < 8; ++b) sealed[8 + b] = static_cast<std::uint8_t>(std::uint64_t{size} >> (8 * b));
    const std::uint64_t sum = sq::detail::fnv1a64(sealed.data(), size - 8);
    for (std::size_t b = 0; b < 8; ++b) sealed[size - 8 + b] = static_cast<std::uint8_t>(sum >> (8 * b));
    check(sealed);
  }
  return 0;
}
