// libFuzzer target: from_q4_0 on a shape and blocks taken from the input.
// Input: u64 rows, u64 cols (little-endian, full 64-bit range so zero and huge shapes are tried),
// then 18-byte ggml block_q4_0 records (a partial trailing record is ignored).
// Accepted tensors must hold exactly the blocks' codes and scales, all finite (from_q4_0 refuses
// Inf and NaN scales), and to_q4_0 must give the blocks back bit for bit (it refuses only what fp16
// cannot hold, and every finite fp16 value fits).
#include <singlequant/fp16.hpp>
#include <singlequant/int4.hpp>
#include <singlequant/interop/ggml.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "fuzz_support.hpp"

namespace sq = singlequant;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  sq_fuzz::input in(data, size);
  const std::uint64_t rows = in.u64(), cols = in.u64();
  std::vector<sq::q4_0_block> blocks(in.remaining() / sizeof(sq::q4_0_block));
  for (auto& block : blocks) {
    const auto bytes = in.bytes(sizeof block);
    block.d = static_cast<std::uint16_t>(bytes[0] | bytes[1] << 8);
    std::memcpy(block.qs, bytes.data() + 2, sizeof block.qs);
  }
  std::optional<sq::packed_int4> q;
  try {
    q.emplace(sq::from_q4_0(blocks, static_cast<std::size_t>(rows), static_cast<std::size_t>(cols)));
  } catch (const sq::error&) {
    return 0;
  }
  sq_fuzz::require(q->rows() == rows && q->cols() == cols, "shape differs from the request");
  sq_fuzz::require(q->gran() == sq::granularity::per_group && q->group_size() == 32 &&
                       q->grid() == sq::int4_grid::full8 && !q->has_zero_points(),
                   "not a per_group(32) full8 symmetric tensor");
  sq_fuzz::require(rows * cols / 32 == blocks.size(), "accepted a block count that does not fit");
  const std::size_t per_row = cols / 32;
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    const std::size_t i = b / per_row, first = 32 * (b % per_row);
    const float scale = sq::half_bits_to_float(blocks[b].d);
    sq_fuzz::require(sq_fuzz::same_bits(&q->scales()[b], &scale, sizeof scale), "scale differs from fp32(d)");
    sq_fuzz::require(std::isfinite(scale), "accepted an Inf or NaN scale");
    for (std::size_t j = 0; j < 16; ++j) {
      sq_fuzz::require(q->code(i, first + j) == (blocks[b].qs[j] & 0xF) - 8, "low nibble code differs");
      sq_fuzz::require(q->code(i, first + j + 16) == (blocks[b].qs[j] >> 4) - 8, "high nibble code differs");
      // Dequantised: |code| <= 8 and |fp16| <= 65504, so finite.
      for (const std::size_t e : {first + j, first + j + 16})
        sq_fuzz::require(std::isfinite(q->value(i, e)), "a finite scale dequantised to a non-finite value");
    }
  }
  const std::vector<sq::q4_0_block> back = sq::to_q4_0(*q);  // must not throw: see the file comment
  sq_fuzz::require(back.size() == blocks.size() &&
                       sq_fuzz::same_bits(back.data(), blocks.data(), blocks.size() * sizeof(sq::q4_0_block)),
                   "to_q4_0(from_q4_0(blocks)) != blocks");
  return 0;
}
