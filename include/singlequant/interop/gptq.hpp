// singlequant/interop/gptq.hpp - AutoGPTQ's int32 word packing (qweight, qzeros, scales) to and
// from packed_int4 (lossless; no xsimd). The GPTQ quantiser itself is gptq.hpp.
#ifndef SINGLEQUANT_INTEROP_GPTQ_HPP
#define SINGLEQUANT_INTEROP_GPTQ_HPP

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../config.hpp"
#include "../int4.hpp"
#include "../view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// How qzeros stores a zero point z: v1 (AutoGPTQ / GPTQ-for-LLaMa checkpoints, "gptq") stores
/// z - 1 and readers add 1 back; v2 ("gptq_v2") stores z.
enum class gptq_zero_format { v1, v2 };

/// An INT4 linear layer in AutoGPTQ's layout, for W of out_features x in_features (our rows x cols).
/// Codes are unsigned u in 0..15 with an unsigned zero point z: w = (u - z) * scale.
/// Conversion from our signed codes: u = code + 8, z = zero_point + 8 (symmetric tensors: z = 8).
///   qweight: (in_features / 8) x out_features words, row-major; word (r, n) holds u(n, 8r + k) at
///            bits 4k..4k+3, k = 0..7 (element k at bits 4k).
///   qzeros:  groups x (out_features / 8) words; word (g, c) holds the stored zero of group g, output
///            8c + k at bits 4k (stored = z - 1 for v1, z for v2).
///   scales:  groups x out_features floats (AutoGPTQ keeps fp16; convert with float_to_half_bits).
/// groups = in_features / group_size (1 with group_size = in_features for per-row quantisation).
struct gptq_tensor {
  std::size_t out_features = 0;
  std::size_t in_features = 0;
  std::size_t group_size = 0;
  gptq_zero_format zero_format = gptq_zero_format::v1;
  std::vector<std::uint32_t> qweight;
  std::vector<std::uint32_t> qzeros;
  std::vector<float> scales;
};

/// Converts a per_row or per_group tensor (weights: rows = out_features) to AutoGPTQ's layout.
/// Lossless (scales stay float). Errors: per_tensor / per_column, in_features or out_features not a
/// multiple of 8, a zero point 0 (unsigned) in the v1 format, which cannot store z - 1 = -1, a
/// non-finite scale (from_gptq refuses one).
[[nodiscard]] inline gptq_tensor to_gptq(const packed_int4& q,
                                         gptq_zero_format zero_format = gptq_zero_format::v1) {
  detail::check(q.gran() == granularity::per_row || q.gran() == granularity::per_group, "to_gptq",
                "needs per_row or per_group quantisation");
  detail::check_enum("to_gptq", "zero_format", zero_format, gptq_zero_format::v2);
  for (const float s : q.scales())
    detail::check(std::isfinite(s), "to_gptq", "scale ", s, " is not finite");
  detail::check(q.rows() % 8 == 0 && q.cols() % 8 == 0, "to_gptq", "out_features ", q.rows(),
                " and in_features ", q.cols(), " must be multiples of 8");
  gptq_tensor g;
  g.out_features = q.rows();
  g.in_features = q.cols();
  g.group_size = q.gran() == granularity::per_group ? q.group_size() : q.cols();
  g.zero_format = zero_format;
  const std::size_t groups = g.group_size == 0 ? 0 : g.in_features / g.group_size;
  const int stored_offset = zero_format == gptq_zero_format::v1 ? 1 : 0;
  for (std::size_t n = 0; n < q.rows(); ++n)
    for (std::size_t c = 0; c < groups; ++c) {
      const int z = q.zero_point(n, c * g.group_size) + 8 - stored_offset;
      detail::check(z >= 0, "to_gptq", "zero point 0 of row ", n, " group ", c,
                    " cannot be stored in the v1 format (it stores z - 1); use gptq_zero_format::v2");
    }
  g.qweight.assign(g.in_features / 8 * g.out_features, 0);
  g.qzeros.assign(groups * (g.out_features / 8), 0);
  g.scales.assign(groups * g.out_features, 0.0f);
  for (std::size_t n = 0; n < g.out_features; ++n) {
    for (std::size_t k = 0; k < g.in_features; ++k) {
      const auto u = static_cast<std::uint32_t>(q.code(n, k) + 8);
      g.qweight[(k / 8) * g.out_features + n] |= u << (4 * (k % 8));
    }
    for (std::size_t c = 0; c < groups; ++c) {
      const auto z = static_cast<std::uint32_t>(q.zero_point(n, c * g.group_size) + 8 - stored_offset);
      g.qzeros[c * (g.out_features / 8) + n / 8] |= z << (4 * (n % 8));
      g.scales[c * g.out_features + n] = q.scale(n, c * g.group_size);
    }
  }
  return g;
}

/// Converts AutoGPTQ's layout back: a per_group tensor (per_row when group_size == in_features),
/// full8 grid, with zero points (zero_point = z - 8). Lossless inverse of to_gptq.
/// Errors: inconsistent sizes, group_size not dividing in_features, sizes not multiples of 8, a
/// shape larger than packed_int4 allows, an unknown zero format, an Inf or NaN scale.
[[nodiscard]] inline packed_int4 from_gptq(const gptq_tensor& g) {
  const std::size_t out = g.out_features, in = g.in_features;
  detail::check(out % 8 == 0 && in % 8 == 0 && g.group_size > 0 && in % g.group_size == 0,
                "from_gptq", "out_features ", out, " and in_features ", in,
                " must be multiples of 8 and group size ", g.group_size, " must divide in_features");
  detail::check_enum("from_gptq", "zero_format", g.zero_format, gptq_zero_format::v2);
  const std::size_t groups = in / g.group_size;
  std::size_t qweight_words = 0, qzero_words = 0, scale_count = 0;
  const bool overflow = detail::multiply_overflows(in / 8, out, qweight_words) ||
                        detail::multiply_overflows(groups, out / 8, qzero_words) ||
                        detail::multiply_overflows(groups, out, scale_count);
  detail::check(!overflow && g.qweight.size() == qweight_words && g.qzeros.size() == qzero_words &&
                    g.scales.size() == scale_count,
                "from_gptq", "array sizes (qweight ", g.qweight.size(), ", qzeros ", g.qzeros.size(),
                ", scales ", g.scales.size(), ") do not match ", out, " x ", in, " with ", groups,
                " groups");
  const bool per_row = groups == 1;
  packed_int4 q(out, in, per_row ? granularity::per_row : granularity::per_group,
                per_row ? 0 : g.group_size, int4_grid::full8, true);
  const int stored_offset = g.zero_format == gptq_zero_format::v1 ? 1 : 0;
  for (std::size_t n = 0; n < out; ++n) {
    auto row = q.row_codes(n);
    for (std::size_t k = 0; k < in; ++k) {
      const int u = static_cast<int>((g.qweight[(k / 8) * out + n] >> (4 * (k % 8))) & 0xFu);
      row[k / 2] = static_cast<std::uint8_t>(row[k / 2] | to_nibble(u - 8) << (4 * (k % 2)));
    }
    for (std::size_t c = 0; c < groups; ++c) {
      const int stored = static_cast<int>((g.qzeros[c * (out / 8) + n / 8] >> (4 * (n % 8))) & 0xFu);
      const int z = stored + stored_offset;  // v1 can give 16 (stored 15): not representable
      detail::check(z <= 15, "from_gptq", "stored zero 15 of row ", n, " group ", c,
                    " means z = 16 in the v1 format, outside the 4-bit range");
      const std::size_t index = per_row ? n : n * groups + c;
      const float scale = g.scales[c * out + n];
      detail::check(std::isfinite(scale), "from_gptq", "scale of row ", n, " group ", c,
                    " is not finite: ", scale);
      q.zero_points()[index] = static_cast<std::int8_t>(z - 8);
      q.scales()[index] = scale;
    }
  }
  return q;
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_INTEROP_GPTQ_HPP
