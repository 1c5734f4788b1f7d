// singlequant/interop/ggml.hpp - ggml's Q4_0 blocks to and from packed_int4 (lossless but for
// the fp16 scale; no xsimd).
#ifndef SINGLEQUANT_INTEROP_GGML_HPP
#define SINGLEQUANT_INTEROP_GGML_HPP

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../config.hpp"
#include "../detail/q4_0_kernels.hpp"
#include "../fp16.hpp"
#include "../int4.hpp"
#include "../view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// ggml's block_q4_0 (18 bytes): 32 elements x_j = (u_j - 8) * d, d an fp16 scale, u_j unsigned
/// 4-bit codes; element j (0..15) is the low nibble and element j + 16 the high nibble of qs[j].
/// ggml's own quantiser picks d = m / -8 with m the signed element of largest magnitude and
/// u = min(15, trunc(x / d + 8.5)).
struct q4_0_block {
  std::uint16_t d = 0;      ///< fp16 bits of the scale
  std::uint8_t qs[16] = {};  ///< qs[j] = u_j | u_{j+16} << 4
};
static_assert(sizeof(q4_0_block) == 18, "q4_0_block must match ggml's 18-byte block_q4_0");

/// Converts a per_group tensor with group_size 32 and no zero points into ggml Q4_0 blocks, row by
/// row (cols / 32 blocks per row, in order). Codes are kept exactly (u = code + 8); scales are
/// rounded to fp16 (round to nearest even), the only loss.
/// Errors: another granularity or group size, zero points, a scale beyond fp16's range (|s| > 65504).
[[nodiscard]] inline std::vector<q4_0_block> to_q4_0(const packed_int4& q) {
  detail::check(q.gran() == granularity::per_group && q.group_size() == 32, "to_q4_0",
                "needs per_group quantisation with group size 32 (group size ", q.group_size(), ")");
  detail::check(!q.has_zero_points(), "to_q4_0", "Q4_0 has no zero points; quantise symmetrically");
  for (const float s : q.scales())
    detail::check(!(std::fabs(s) > 65504.0f) && s == s, "to_q4_0", "scale ", s,
                  " does not fit an fp16 scale");
  const std::size_t blocks_per_row = q.cols() / 32;
  std::vector<q4_0_block> out(q.rows() * blocks_per_row);
  for (std::size_t i = 0; i < q.rows(); ++i) {
    const auto row = q.row_codes(i);
    for (std::size_t b = 0; b < blocks_per_row; ++b) {
      q4_0_block& block = out[i * blocks_per_row + b];
      block.d = float_to_half_bits(q.scales()[i * blocks_per_row + b]);
      detail::q4_0_qs_from_packed(row.data() + 16 * b, block.qs);  // qs[j]: u_j | u_{j+16} << 4
    }
  }
  return out;
}

/// Converts ggml Q4_0 blocks (rows x cols elements, cols a multiple of 32, blocks row by row) into a
/// per_group (32), full8 tensor without zero points: code = u - 8, scale = fp32(d). Lossless.
/// Errors: cols not a multiple of 32, a block count other than rows * cols / 32, a shape larger than
/// packed_int4 allows, an Inf or NaN scale (to_q4_0 never writes one).
[[nodiscard]] inline packed_int4 from_q4_0(vector_view<const q4_0_block> blocks, std::size_t rows,
                                           std::size_t cols) {
  detail::check(cols % 32 == 0, "from_q4_0", "row length ", cols, " is not a multiple of 32");
  std::size_t elements = 0;
  const bool overflow = detail::multiply_overflows(rows, cols, elements);
  detail::check(!overflow && blocks.size() == elements / 32, "from_q4_0", rows, " x ", cols,
                " elements need ", elements / 32, " blocks, got ", blocks.size());
  packed_int4 q(rows, cols, granularity::per_group, 32, int4_grid::full8, false);
  const std::size_t blocks_per_row = cols / 32;
  for (std::size_t i = 0; i < rows; ++i) {
    auto row = q.row_codes(i);
    for (std::size_t b = 0; b < blocks_per_row; ++b) {
      const q4_0_block& block = blocks[i * blocks_per_row + b];
      const float scale = half_bits_to_float(block.d);
      detail::check(std::isfinite(scale), "from_q4_0", "block ", i * blocks_per_row + b, " (row ", i,
                    ") has the non-finite scale ", scale);
      q.scales()[i * blocks_per_row + b] = scale;
      for (std::size_t j = 0; j < 16; ++j) {
        const int low = (block.qs[j] & 0xF) - 8;
        const int high = (block.qs[j] >> 4) - 8;
        const std::size_t e = 32 * b + j;
        row[e / 2] = static_cast<std::uint8_t>(row[e / 2] | to_nibble(low) << (4 * (e % 2)));
        const std::size_t f = e + 16;
        row[f / 2] = static_cast<std::uint8_t>(row[f / 2] | to_nibble(high) << (4 * (f % 2)));
      }
    }
  }
  return q;
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_INTEROP_GGML_HPP
