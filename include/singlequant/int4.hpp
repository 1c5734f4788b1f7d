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

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_INT4_HPP
