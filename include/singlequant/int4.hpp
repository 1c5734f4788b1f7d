// singlequant/int4.hpp - the INT4 storage format: nibble layout, packed tensor, foreign layouts.
//
// This header is the *format* half of INT4 support and deliberately does not include xsimd (a
// runtime that only reads or writes the layout should not pay for parsing it; docs/performance.md).
// The quantisers and the fast kernels are in quant.hpp.
//
// Canonical nibble layout (independent of any SIMD width, identical on every architecture path):
//   * A code is a signed 4-bit integer in two's complement, -8..7 (nibble 0x8 = -8, 0xF = -1).
//   * Each row of `cols` codes occupies row_bytes(cols) = (cols + 1) / 2 bytes; rows start at byte
//     boundaries and are stored one after the other (row i at byte offset i * row_bytes(cols)).
//   * Byte k of a row holds element 2k in its low nibble (bits 0-3) and element 2k + 1 in its high
//     nibble (bits 4-7): byte = (code[2k] & 0xF) | (code[2k + 1] & 0xF) << 4.
//   * Odd cols: the high nibble of the last byte of every row is 0.
//   Example: codes {1, -2, 7, -8, 3} -> bytes {0xE1, 0x87, 0x03}.
// A value dequantises as x = (code - zero_point) * scale (zero_point = 0 for symmetric tensors), with
// the scale of the element's group (see granularity).
#ifndef SINGLEQUANT_INT4_HPP
#define SINGLEQUANT_INT4_HPP

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <span>
#include <vector>

#include "config.hpp"
#include "detail/q4_0_kernels.hpp"
#include "view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// The set of codes a quantiser uses.
/// symmetric7: -7..7 (symmetric around 0; scale = clip * absmax / 7, positive).
/// full8: -8..7, all 16 codes (symmetric quantisers set scale = clip * m / -8 where m is the signed
/// value of largest magnitude, so that extreme lands on -8, as ggml's Q4_0 does; the scale is
/// therefore negative when m > 0).
enum class int4_grid { symmetric7, full8 };

/// Which elements share one scale (and zero point) in a rows x cols matrix.
/// per_tensor: all; per_row: each row (a token of activations, an output channel of weights stored as
/// rows of W); per_column: each column; per_group: each run of group_size consecutive elements of a
/// row (group_size must divide cols).
enum class granularity { per_tensor, per_row, per_column, per_group };

namespace detail {
/// Allocator of 64-byte aligned storage (packed rows start on cache lines when row_bytes is a
/// multiple of 64, which lets kernels use aligned and non-temporal stores).
template <class T>
struct cache_aligned_allocator {
  using value_type = T;
  static constexpr std::align_val_t alignment{64};
  cache_aligned_allocator() = default;
  template <class U>
  constexpr cache_aligned_allocator(const cache_aligned_allocator<U>&) noexcept {}  // NOLINT
  [[nodiscard]] T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), alignment));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, alignment); }
  template <class U>
  friend constexpr bool operator==(const cache_aligned_allocator&, const cache_aligned_allocator<U>&) noexcept {
    return true;
  }
};
}  // namespace detail

/// Smallest and largest code of a grid.
[[nodiscard]] constexpr int grid_min(int4_grid grid) noexcept {
  return grid == int4_grid::full8 ? -8 : -7;
}
[[nodiscard]] constexpr int grid_max(int4_grid) noexcept { return 7; }

/// Bytes one row of `cols` codes occupies in the canonical layout: (cols + 1) / 2.
[[nodiscard]] constexpr std::size_t row_bytes(std::size_t cols) noexcept { return cols / 2 + cols % 2; }

/// The 4-bit two's-complement nibble of a code in -8..7.
[[nodiscard]] constexpr std::uint8_t to_nibble(int code) noexcept {
  return static_cast<std::uint8_t>(static_cast<unsigned>(code) & 0xFu);
}
/// The code (-8..7) that the low 4 bits of `nibble` encode.
[[nodiscard]] constexpr std::int8_t from_nibble(int nibble) noexcept {
  return static_cast<std::int8_t>((nibble & 0xF) - ((nibble & 0x8) << 1));
}

/// Packs codes (each -8..7) into the canonical layout: out needs row_bytes(codes.size()) bytes.
/// Errors (nothing written): a code outside -8..7, out too small.
/// Example: pack_int4(std::vector<std::int8_t>{1, -2, 7}, out) writes {0xE1, 0x07}.
inline void pack_int4(vector_view<const std::int8_t> codes, vector_view<std::uint8_t> out) {
  const std::size_t n = codes.size();
  detail::check(out.size() >= row_bytes(n), "pack_int4", "destination has ", out.size(),
                " bytes, ", n, " codes need ", row_bytes(n));
  for (std::size_t i = 0; i < n; ++i)
    detail::check(codes[i] >= -8 && codes[i] <= 7, "pack_int4", "code ", int(codes[i]),
                  " at index ", i, " is outside -8..7");
  for (std::size_t k = 0; k < n / 2; ++k)
    out[k] = static_cast<std::uint8_t>(to_nibble(codes[2 * k]) | to_nibble(codes[2 * k + 1]) << 4);
  if (n % 2 != 0) out[n / 2] = to_nibble(codes[n - 1]);
}

/// Unpacks out.size() codes from the canonical layout (packed needs row_bytes(out.size()) bytes).
/// Exact inverse of pack_int4. Error (nothing written): packed too small.
inline void unpack_int4(vector_view<const std::uint8_t> packed, vector_view<std::int8_t> out) {
  const std::size_t n = out.size();
  detail::check(packed.size() >= row_bytes(n), "unpack_int4", "source has ", packed.size(),
                " bytes, ", n, " codes need ", row_bytes(n));
  for (std::size_t i = 0; i < n; ++i) out[i] = from_nibble(packed[i / 2] >> (4 * (i % 2)));
}

/// sum_k a_k b_k over the first n codes of two canonical rows, accumulated in int32 (the scalar
/// reference for INT4 GEMM kernels). |a_k b_k| <= 64, so n must be < 2^25 (no int32 overflow).
/// Errors: a row shorter than row_bytes(n), n >= 2^25.
[[nodiscard]] inline std::int32_t int4_dot(vector_view<const std::uint8_t> a,
                                           vector_view<const std::uint8_t> b, std::size_t n) {
  detail::check(a.size() >= row_bytes(n) && b.size() >= row_bytes(n), "int4_dot", "rows of ",
                a.size(), " and ", b.size(), " bytes, ", n, " codes need ", row_bytes(n));
  detail::check(n < (std::size_t{1} << 25), "int4_dot", "n = ", n,
                " could overflow the int32 accumulator (limit 2^25 - 1)");
  std::int32_t sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned shift = 4u * static_cast<unsigned>(i % 2);
    sum += std::int32_t{from_nibble(a[i / 2] >> shift)} * std::int32_t{from_nibble(b[i / 2] >> shift)};
  }
  return sum;
}

/// An INT4 matrix: codes in the canonical layout plus float scales (and optional zero points).
/// Element (i, j) dequantises as (code(i, j) - zero_point) * scale, both taken at scale_index(i, j):
///   per_tensor: 0; per_row: i; per_column: j; per_group: i * (cols / group_size) + j / group_size.
/// Zero points are signed codes in the grid's range (absent, i.e. 0, for symmetric tensors).
/// Scales may be negative (full8 symmetric grid, or imported from ggml Q4_0), and 0 for a group
/// with no finite non-zero value (it dequantises to exact zeros).
class packed_int4 {
 public:
  packed_int4() = default;

  /// A zero-filled tensor of the given shape and parameters (scales 0, codes 0, zero points 0).
  /// group_size is used only for per_group (it must be > 0 and divide cols); pass 0 otherwise.
  packed_int4(std::size_t rows, std::size_t cols, granularity gran, std::size_t group_size,
              int4_grid grid, bool has_zero_points)
      : rows_(rows), cols_(cols), group_size_(gran == granularity::per_group ? group_size : 0),
        gran_(gran), grid_(grid) {
    detail::check_enum("packed_int4", "granularity", gran, granularity::per_group);
    detail::check_enum("packed_int4", "grid", grid, int4_grid::full8);
    detail::check(gran != granularity::per_group || (group_size > 0 && cols % group_size == 0),
                  "packed_int4", "group size ", group_size, " does not divide the row length ", cols);
    // A zero-width tensor holds nothing, but every row loop (unpack, to_gptq, ...) would still run
    // over its rows: at most max_site_width of them, so a few bytes of a file cannot ask for 2^40.
    detail::check(cols != 0 || rows <= max_site_width, "packed_int4", "a zero-width tensor may have at most ",
                  max_site_width, " rows, got ", rows);
    std::size_t bytes = 0;
    detail::check(!detail::multiply_overflows(rows, singlequant::row_bytes(cols), bytes), "packed_int4",
                  "size overflow: ", rows, " x ", cols);
    detail::checked_assign("packed_int4", "codes", codes_, bytes);
    detail::checked_assign("packed_int4", "scales", scales_, scale_count());
    if (has_zero_points) detail::checked_assign("packed_int4", "zero points", zero_points_, scale_count());
  }

  [[nodiscard]] std::size_t rows() const noexcept { return rows_; }
  [[nodiscard]] std::size_t cols() const noexcept { return cols_; }
  [[nodiscard]] granularity gran() const noexcept { return gran_; }
  [[nodiscard]] int4_grid grid() const noexcept { return grid_; }
  /// Elements per group along a row for per_group; 0 for the other granularities.
  [[nodiscard]] std::size_t group_size() const noexcept { return group_size_; }
  /// Bytes per row in the canonical layout, (cols + 1) / 2.
  [[nodiscard]] std::size_t row_bytes() const noexcept { return singlequant::row_bytes(cols_); }
  [[nodiscard]] bool has_zero_points() const noexcept { return !zero_points_.empty(); }

  /// Number of scales: 1, rows, cols or rows * cols / group_size.
  [[nodiscard]] std::size_t scale_count() const noexcept {
    switch (gran_) {
      case granularity::per_tensor: return 1;
      case granularity::per_row: return rows_;
      case granularity::per_column: return cols_;
      case granularity::per_group: return group_size_ == 0 ? 0 : rows_ * (cols_ / group_size_);
    }
    return 0;
  }
  /// Index into scales() / zero_points() of element (i, j) (see the class comment).
  [[nodiscard]] std::size_t scale_index(std::size_t i, std::size_t j) const noexcept {
    switch (gran_) {
      case granularity::per_tensor: return 0;
      case granularity::per_row: return i;
      case granularity::per_column: return j;
      case granularity::per_group: return i * (cols_ / group_size_) + j / group_size_;
    }
    return 0;
  }

  /// All codes, rows * row_bytes() bytes in the canonical layout (64-byte aligned storage).
  [[nodiscard]] std::span<std::uint8_t> codes() noexcept { return codes_; }
  [[nodiscard]] std::span<const std::uint8_t> codes() const noexcept { return codes_; }
  /// The row_bytes() bytes of row i (unchecked in release builds).
  [[nodiscard]] std::span<std::uint8_t> row_codes(std::size_t i) noexcept {
    SINGLEQUANT_ASSERT(i < rows_, "packed_int4 row out of range");
    return std::span<std::uint8_t>(codes_).subspan(i * row_bytes(), row_bytes());
  }
  [[nodiscard]] std::span<const std::uint8_t> row_codes(std::size_t i) const noexcept {
    SINGLEQUANT_ASSERT(i < rows_, "packed_int4 row out of range");
    return std::span<const std::uint8_t>(codes_).subspan(i * row_bytes(), row_bytes());
  }
  [[nodiscard]] std::span<float> scales() noexcept { return scales_; }
  [[nodiscard]] std::span<const float> scales() const noexcept { return scales_; }
  /// Zero points (one per scale), empty for a symmetric tensor.
  [[nodiscard]] std::span<std::int8_t> zero_points() noexcept { return zero_points_; }
  [[nodiscard]] std::span<const std::int8_t> zero_points() const noexcept { return zero_points_; }

  /// Code of element (i, j), -8..7 (unchecked in release builds).
  [[nodiscard]] std::int8_t code(std::size_t i, std::size_t j) const noexcept {
    SINGLEQUANT_ASSERT(i < rows_ && j < cols_, "packed_int4 index out of range");
    return from_nibble(codes_[i * row_bytes() + j / 2] >> (4 * (j % 2)));
  }
  [[nodiscard]] float scale(std::size_t i, std::size_t j) const noexcept { return scales_[scale_index(i, j)]; }
  [[nodiscard]] int zero_point(std::size_t i, std::size_t j) const noexcept {
    return zero_points_.empty() ? 0 : zero_points_[scale_index(i, j)];
  }
  /// (code - zero_point) * scale of element (i, j), computed in float.
  [[nodiscard]] float value(std::size_t i, std::size_t j) const noexcept {
    return static_cast<float>(code(i, j) - zero_point(i, j)) * scale(i, j);
  }

  /// Unpacks every code into out (rows x cols). Error (nothing written): shape mismatch.
  void unpack(matrix_view<std::int8_t> out) const {
    detail::check(out.rows() == rows_ && out.cols() == cols_, "packed_int4::unpack", "destination is ",
                  out.rows(), " x ", out.cols(), ", tensor is ", rows_, " x ", cols_);
    for (std::size_t i = 0; i < rows_; ++i) unpack_int4(row_codes(i), out.row(i));
  }
  /// All codes unpacked, row-major rows x cols.
  [[nodiscard]] std::vector<std::int8_t> unpack() const {
    std::vector<std::int8_t> out = detail::checked_vector<std::int8_t>("packed_int4::unpack", "codes", rows_ * cols_);
    unpack(matrix_view<std::int8_t>(out.data(), rows_, cols_));
    return out;
  }

 private:
  std::size_t rows_ = 0;
  std::size_t cols_ = 0;
  std::size_t group_size_ = 0;
  granularity gran_ = granularity::per_row;
  int4_grid grid_ = int4_grid::symmetric7;
  std::vector<std::uint8_t, detail::cache_aligned_allocator<std::uint8_t>> codes_;  // 64-byte aligned
  std::vector<float> scales_;
  std::vector<std::int8_t> zero_points_;
};

// ---------------------------------------------------------------------------------------------
// IEEE 754 binary16 (fp16) conversion, used by the ggml Q4_0 scale.

/// fp32 -> fp16 bits, round to nearest even; overflow -> +-Inf, NaN -> a quiet NaN (sign kept),
/// results below the fp16 normal range become fp16 subnormals or +-0.
[[nodiscard]] constexpr std::uint16_t float_to_half_bits(float value) noexcept {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
  const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  const std::uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7E00u);  // NaN
  if (magnitude >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // >= 65520: Inf
  if (magnitude < 0x38800000u) {
    // Below 2^-14: an fp16 subnormal, value = m * 2^-24 with m = round(|value| * 2^24).
    if (magnitude < 0x33000000u) return sign;  // < 2^-25: rounds to 0 (2^-25 itself ties to even 0)
    const std::uint32_t exponent = magnitude >> 23;
    const std::uint32_t mantissa = (magnitude & 0x7FFFFFu) | 0x800000u;
    const std::uint32_t shift = 126u - exponent;  // |value| = mantissa * 2^(exponent - 150)
    const std::uint32_t half = 1u << (shift - 1);
    std::uint32_t result = mantissa >> shift;
    const std::uint32_t rest = mantissa & ((1u << shift) - 1u);
    if (rest > half || (rest == half && (result & 1u) != 0)) ++result;
    return static_cast<std::uint16_t>(sign | result);
  }
  // Normal: rebias the exponent (127 -> 15) and round the 23-bit mantissa to 10 bits; a carry out
  // of the mantissa correctly bumps the exponent.
  const std::uint32_t rebased = magnitude - 0x38000000u;  // (exponent - 112) << 23 | mantissa
  std::uint32_t result = rebased >> 13;
  const std::uint32_t rest = rebased & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (result & 1u) != 0)) ++result;
  return static_cast<std::uint16_t>(sign | result);
}

/// fp16 bits -> fp32 (exact; subnormals, Inf and NaN included).
[[nodiscard]] constexpr float half_bits_to_float(std::uint16_t half) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(half & 0x8000u) << 16;
  const std::uint32_t exponent = (half >> 10) & 0x1Fu;
  std::uint32_t mantissa = half & 0x3FFu;
  if (exponent == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | mantissa << 13);
  if (exponent != 0) return std::bit_cast<float>(sign | (exponent + 112u) << 23 | mantissa << 13);
  if (mantissa == 0) return std::bit_cast<float>(sign);
  // Subnormal: normalise m * 2^-24.
  std::uint32_t e = 113;  // exponent field of 2^-14
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    --e;
  }
  return std::bit_cast<float>(sign | e << 23 | (mantissa & 0x3FFu) << 13);
}

// ---------------------------------------------------------------------------------------------
// ggml Q4_0.

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

// ---------------------------------------------------------------------------------------------
// GPTQ / AutoGPTQ int32 word packing.

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

#endif  // SINGLEQUANT_INT4_HPP
