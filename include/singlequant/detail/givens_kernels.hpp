// singlequant/detail/givens_kernels.hpp - applying ordered lists of Givens rotations to matrix rows.
//
// Two paths, both exact products of the same rotations in the same order:
//  * direct: row by row, every rotation on that row (scalar; best for one row or a sparse list);
//  * tiled:  for a tile of R = 32 / sizeof(U) rows, transpose each column block of 2R channels (one
//            64-byte line of each row) in place as two R x R halves, so that every channel has a
//            32-byte line of R rows inside the block (row j of half h holds channel h R + j); apply
//            every rotation of every stage to those lines with SIMD batches across the R rows (no
//            gathers: each rotation loads two whole channel lines), transpose back, next tile.
//            No scratch, and the R lines of a block fit in one L1 set even when the row stride is
//            a multiple of 4 KiB (the design history: docs/performance.md). A tile stays in L2
//            while all stages run on it; every matrix element is read and written once.
//            Blocks start on 64-byte boundaries of the data; the first stage is applied while the
//            blocks are transposed in (each rotation as soon as both its channels are in), and
//            the next tile is transposed in while the last one is transposed out, so that memory
//            reads overlap the work. The plan (make_tile_plan) holds every rotation with the
//            offsets of its two lines, so the inner loop is loads, 4 multiplies and stores.
// Every element is computed as x_i <- c x_i - s x_j, x_j <- s x_i + c x_j in the data type U, with
// c and s converted to U; the inverse uses -s and the reversed order.
#ifndef SINGLEQUANT_DETAIL_GIVENS_KERNELS_HPP
#define SINGLEQUANT_DETAIL_GIVENS_KERNELS_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "arch/narrow.hpp"
#include "simd_core.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

template <class T>
struct givens;  // singlequant/givens.hpp

namespace detail {

/// One stage's rotations as plain data (what the kernels receive).
template <class T>
struct rotation_span {
  const givens<T>* data = nullptr;
  std::size_t size = 0;
};


// Whether this translation unit computes x_i' = c a - s b as fma(c, a, -(s b)): where the target
// has FMA, both the scalar and the SIMD paths do (explicitly, so compiler contraction cannot make
// them differ), else both use separate products. Either way every path of one translation unit
// gives bit-identical results. __FMA__ too: clang never defines __FP_FAST_FMA, yet contracts the
// scalar c * a - s * b into an FMA (-ffp-contract=on) while the SIMD path keeps two products.
#if defined(__FP_FAST_FMA) || defined(FP_FAST_FMA) || defined(__FMA__)
#  define SINGLEQUANT_GIVENS_FMA 1
#else
#  define SINGLEQUANT_GIVENS_FMA 0
#endif

// x_i <- c x_i - s x_j, x_j <- s x_i + c x_j on the pair (x_i, x_j) of one row.
template <class U, class Arch>
SINGLEQUANT_INLINE void rotate_scalar_pair(U* row, std::size_t i, std::size_t j, U c, U s) noexcept {
  const U a = row[i];
  const U b = row[j];
#if SINGLEQUANT_GIVENS_FMA
  row[i] = std::fma(c, a, -(s * b));
  row[j] = std::fma(s, a, c * b);
#else
  row[i] = c * a - s * b;
  row[j] = s * a + c * b;
#endif
}

/// Applies stages[0], stages[1], ... (inverse: the reversed list with -s) to each of `rows` rows.
template <class T, class U, class Arch>
void rotate_rows_direct(const rotation_span<T>* stages, std::size_t stage_count, bool inverse, U* x,
                        std::size_t rows, std::size_t row_stride) noexcept {
  for (std::size_t r = 0; r < rows; ++r) {
    U* row = x + r * row_stride;
    if (!inverse) {
      for (std::size_t k = 0; k < stage_count; ++k) {
        const givens<T>* g = stages[k].data;
        for (std::size_t q = 0; q < stages[k].size; ++q)
          rotate_scalar_pair<U, Arch>(row, g[q].i, g[q].j, static_cast<U>(g[q].c), static_cast<U>(g[q].s));
      }
    } else {
      for (std::size_t k = stage_count; k-- > 0;) {
        const givens<T>* g = stages[k].data;
        for (std::size_t q = stages[k].size; q-- > 0;)
          rotate_scalar_pair<U, Arch>(row, g[q].i, g[q].j, static_cast<U>(g[q].c), -static_cast<U>(g[q].s));
      }
    }
  }
}

/// x y + z with one rounding (simd::fused_fma).
template <class U, class Arch>
SINGLEQUANT_INLINE xsimd::batch<U, Arch> fused_multiply_add(const xsimd::batch<U, Arch>& x, const xsimd::batch<U, Arch>& y,
                                                            const xsimd::batch<U, Arch>& z) noexcept {
  return simd::fused_fma(x, y, z);
}

// --- In-place transposes of the R x R halves of a block (R = givens_tile_rows<U>). --------------

/// Rows per tile: one 32-byte channel line per channel (8 floats, 4 doubles).
template <class U>
inline constexpr std::size_t givens_tile_rows = 32 / sizeof(U);
/// Channels per block: one 64-byte line of each of the tile's rows, two R x R halves.
template <class U>
inline constexpr std::size_t givens_block_cols = 64 / sizeof(U);

/// Transposes both R x R halves of the R x 2R block at p (rows `stride` apart) in place: after it,
/// row j of half h holds channel h R + j of the block for rows 0..R-1 (lane r = row r). Its own
/// inverse.
template <class U, class Arch>
SINGLEQUANT_INLINE void transpose_block_halves(U* p, std::size_t stride) noexcept {
  arch::transpose_halves<Arch, givens_tile_rows<U>>(p, stride, Arch{});  // per ISA: detail/arch/
}

/// One rotation as the tiled path applies it: the offsets of its two channel lines from the start
/// of a tile (or, if negative, -1 - the line's offset in the partial-block buffer) and c, s in the
/// data type (s negated when inverting).
template <class U>
struct line_rotation {
  std::int32_t i = 0, j = 0;  // 16 bytes for float: the plan is read once per tile
  U c = 0, s = 0;
};

/// Whether column block b (channels [b B - misalignment, (b + 1) B - misalignment), B =
/// givens_block_cols) is cut by the start or end of rows of `cols` channels, so that it goes
/// through the partial-block buffer: the plan and the kernel must agree on it.
template <class U>
constexpr bool partial_block(std::size_t b, std::size_t misalignment, std::size_t cols) noexcept {
  return (b == 0 && misalignment != 0) || (b + 1) * givens_block_cols<U> > cols + misalignment;
}

/// What the tiled path needs, prepared once per call (make_tile_plan in givens.hpp). Block k covers
/// channels [k B - misalignment, (k + 1) B - misalignment) clipped to [0, cols) (B =
/// givens_block_cols), so that whole blocks start on a 64-byte boundary of row 0; blocks lists
/// the blocks any rotation touches, in increasing order. The first applied stage is applied while
/// the blocks are transposed in: rotations[fused_offsets[b] .. fused_offsets[b + 1]) are its
/// rotations whose later channel block is blocks[b], so one of their two lines is still in L1,
/// and whose lines are both in the tile (not in the partial-block buffer), so the loop over them
/// needs no test per line; rotations[fused_offsets[block_count] .. rotation_count) are its
/// rotations with a line in the partial-block buffer, then the other stages in the order they
/// are applied.
template <class U>
struct tile_plan_view {
  const std::size_t* blocks = nullptr;
  std::size_t block_count = 0;
  std::size_t misalignment = 0;
  const line_rotation<U>* rotations = nullptr;
  std::size_t rotation_count = 0;
  const std::size_t* fused_offsets = nullptr;  // block_count + 1 entries
};

/// Applies the rotation g to the channel lines xi, xj (R = givens_tile_rows<U> elements each).
template <class U, class Arch>
SINGLEQUANT_INLINE void rotate_lines(U* xi, U* xj, const line_rotation<U>& g) noexcept {
  using line = arch::narrow_ops_t<U, Arch, sizeof(U) * givens_tile_rows<U>>;
  if constexpr (!std::is_void_v<line>) {  // a line is one register narrower than a batch (AVX-512)
    const auto cb = line::broadcast(g.c), sb = line::broadcast(g.s);
    const auto a = line::load(xi), b = line::load(xj);
#if SINGLEQUANT_GIVENS_FMA
    line::store(xi, line::fms(cb, a, sb * b));  // = fma(c, a, -(s b)), as rotate_scalar_pair
    line::store(xj, line::fma(sb, a, cb * b));
#else
    line::store(xi, cb * a - sb * b);
    line::store(xj, sb * a + cb * b);
#endif
    return;
  }
  using batch = xsimd::batch<U, Arch>;
  const batch cb(g.c), sb(g.s);
  for (std::size_t k = 0; k < givens_tile_rows<U>; k += batch::size) {
    const batch a = batch::load_unaligned(xi + k);
    const batch b = batch::load_unaligned(xj + k);
#if SINGLEQUANT_GIVENS_FMA
    fused_multiply_add<U, Arch>(cb, a, -(sb * b)).store_unaligned(xi + k);  // as rotate_scalar_pair
    fused_multiply_add<U, Arch>(sb, a, cb * b).store_unaligned(xj + k);
#else
    (cb * a - sb * b).store_unaligned(xi + k);
    (sb * a + cb * b).store_unaligned(xj + k);
#endif
  }
}

/// Tiled path (see the file comment); rows not filling a whole tile go through the direct path.
template <class T, class U, class Arch>
void rotate_rows_tiled(const rotation_span<T>* stages, std::size_t stage_count, bool inverse,
                       const tile_plan_view<U>& plan, U* x, std::size_t rows, std::size_t cols,
                       std::size_t row_stride) noexcept {
  constexpr std::size_t R = givens_tile_rows<U>, B = givens_block_cols<U>;
  const std::size_t tiles = simd::is_scalar_v<Arch> ? 0 : rows / R;
  if constexpr (!simd::is_scalar_v<Arch>) {
    const std::size_t m = plan.misalignment;
    // Block b (channels [b B - m, (b + 1) B - m)) is whole unless cut by the start or end of a row;
    // the (at most two) partial blocks are transposed into a partial-block buffer instead, channel
    // k of the block at (b == 0 ? 0 : B R) + k R. Two, for the two tiles in flight.
    alignas(64) U partial_buffers[2][2 * B * R];
    const auto transpose = [&](U* tile, U* partial, std::size_t b, bool into) {
      const std::size_t c0 = b * B > m ? b * B - m : 0;
      if (!partial_block<U>(b, m, cols)) {
        transpose_block_halves<U, Arch>(tile + c0, row_stride);
        return;
      }
      U* lines = partial + (b == 0 ? 0 : B * R) + (c0 + m - b * B) * R;
      for (std::size_t r = 0; r < R; ++r)
        for (std::size_t c = c0; c < std::min(cols, (b + 1) * B - m); ++c) {
          if (into)
            lines[(c - c0) * R + r] = tile[r * row_stride + c];
          else
            tile[r * row_stride + c] = lines[(c - c0) * R + r];
        }
    };
    const line_rotation<U>* const rotations = plan.rotations;
    const auto rotate = [rotations](U* tile, U* partial, std::size_t begin, std::size_t end) {
      for (const line_rotation<U>* g = rotations + begin; g != rotations + end; ++g)
        rotate_lines<U, Arch>(g->i >= 0 ? tile + g->i : partial + (-1 - g->i),
                              g->j >= 0 ? tile + g->j : partial + (-1 - g->j), *g);
    };
    // The fused ranges hold tile lines only: no test per line (docs/performance.md).
    const auto rotate_fused = [rotations](U* tile, std::size_t begin, std::size_t end) {
      for (const line_rotation<U>* g = rotations + begin; g != rotations + end; ++g)
        rotate_lines<U, Arch>(tile + g->i, tile + g->j, *g);
    };
    // Tile t is transposed in (applying the first stage) while tile t - 1 is transposed out, block
    // by block, so that reading the next rows from memory overlaps the work on the last ones. The
    // fused rotations of a block run two blocks after its transpose, when its stores have left
    // the store buffer (loading half of a line just stored in one piece stalls the load).
    constexpr std::size_t lag = 2;
    // The block transposed out is 32 blocks (2 KiB) from the one transposed in: with a row stride
    // that is a multiple of 4 KiB, the same block of both tiles would crowd one L1 set.
    constexpr std::size_t out_shift = 32;
    for (std::size_t t = 0; tiles > 0 && t <= tiles; ++t) {
      U* tile = t < tiles ? x + t * R * row_stride : nullptr;
      U* partial = partial_buffers[t % 2];
      U* last = t > 0 ? x + (t - 1) * R * row_stride : nullptr;
      U* last_partial = partial_buffers[(t + 1) % 2];
      for (std::size_t p = 0; p < plan.block_count + lag; ++p) {
        if (p < plan.block_count) {
          if (t > 0) transpose(last, last_partial, plan.blocks[(p + out_shift) % plan.block_count], false);
          if (t < tiles) transpose(tile, partial, plan.blocks[p], true);
        }
        if (t < tiles && p >= lag)
          rotate_fused(tile, plan.fused_offsets[p - lag], plan.fused_offsets[p - lag + 1]);
      }
      if (t < tiles) rotate(tile, partial, plan.fused_offsets[plan.block_count], plan.rotation_count);
    }
  } else {
    static_cast<void>(plan);
    static_cast<void>(cols);
  }
  const std::size_t r0 = tiles * R;
  rotate_rows_direct<T, U, Arch>(stages, stage_count, inverse, x + r0 * row_stride, rows - r0, row_stride);
}

/// The Givens kernel for data type U (float or double); rotations may be float or double.
template <class U, class Arch>
struct givens_kernel {
  static void apply_rows_direct(const rotation_span<float>* stages, std::size_t stage_count,
                                bool inverse, U* x, std::size_t rows, std::size_t row_stride) noexcept;
  static void apply_rows_direct(const rotation_span<double>* stages, std::size_t stage_count,
                                bool inverse, U* x, std::size_t rows, std::size_t row_stride) noexcept;
  static void apply_rows_tiled(const rotation_span<float>* stages, std::size_t stage_count, bool inverse,
                               const tile_plan_view<U>& plan, U* x, std::size_t rows,
                               std::size_t cols, std::size_t row_stride) noexcept;
  static void apply_rows_tiled(const rotation_span<double>* stages, std::size_t stage_count,
                               bool inverse, const tile_plan_view<U>& plan, U* x,
                               std::size_t rows, std::size_t cols, std::size_t row_stride) noexcept;
};

template <class U, class Arch>
void givens_kernel<U, Arch>::apply_rows_direct(const rotation_span<float>* stages,
                                               std::size_t stage_count, bool inverse, U* x,
                                               std::size_t rows, std::size_t row_stride) noexcept {
  rotate_rows_direct<float, U, Arch>(stages, stage_count, inverse, x, rows, row_stride);
}
template <class U, class Arch>
void givens_kernel<U, Arch>::apply_rows_direct(const rotation_span<double>* stages,
                                               std::size_t stage_count, bool inverse, U* x,
                                               std::size_t rows, std::size_t row_stride) noexcept {
  rotate_rows_direct<double, U, Arch>(stages, stage_count, inverse, x, rows, row_stride);
}
template <class U, class Arch>
void givens_kernel<U, Arch>::apply_rows_tiled(const rotation_span<float>* stages,
                                              std::size_t stage_count, bool inverse,
                                              const tile_plan_view<U>& plan, U* x,
                                              std::size_t rows, std::size_t cols,
                                              std::size_t row_stride) noexcept {
  rotate_rows_tiled<float, U, Arch>(stages, stage_count, inverse, plan, x, rows, cols, row_stride);
}
template <class U, class Arch>
void givens_kernel<U, Arch>::apply_rows_tiled(const rotation_span<double>* stages,
                                              std::size_t stage_count, bool inverse,
                                              const tile_plan_view<U>& plan, U* x,
                                              std::size_t rows, std::size_t cols,
                                              std::size_t row_stride) noexcept {
  rotate_rows_tiled<double, U, Arch>(stages, stage_count, inverse, plan, x, rows, cols, row_stride);
}

SINGLEQUANT_EXTERN_KERNEL(givens_kernel, float)
SINGLEQUANT_EXTERN_KERNEL(givens_kernel, double)

}  // namespace detail
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_GIVENS_KERNELS_HPP
