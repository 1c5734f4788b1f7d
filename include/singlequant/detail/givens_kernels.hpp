// singlequant/detail/givens_kernels.hpp - applying ordered lists of Givens rotations to matrix rows.
//
// Two paths, both exact products of the same rotations in the same order:
//  * direct: row by row, every rotation on that row (scalar; best for one row or a sparse list);
//  * tiled:  for a tile of R = 64 / sizeof(U) rows (one cache line per channel), transpose the
//            column blocks the rotations touch into a channel-major scratch (R lanes per channel),
//            apply every rotation of every stage there with SIMD batches across the R rows (no
//            gathers: each rotation loads two whole channel lines), transpose back, next tile.
//            A tile's scratch is R x cols elements (cols x 64 bytes), so it stays in L2 while all
//            stages run on it and every matrix element is read and written once. Blocks start on
//            64-byte boundaries of the data, and the first stage is applied while the blocks are
//            transposed in (each rotation as soon as both its channels are in), which saves one
//            L1 <-> L2 round trip of half the lines.
// Every element is computed as x_i <- c x_i - s x_j, x_j <- s x_i + c x_j in the data type U, with
// c and s converted to U; the inverse uses -s and the reversed order.
#ifndef SINGLEQUANT_DETAIL_GIVENS_KERNELS_HPP
#define SINGLEQUANT_DETAIL_GIVENS_KERNELS_HPP

#include <cmath>
#include <cstddef>

#include "../simd.hpp"

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

/// Rows per tile and channels per block of the tiled path: one 64-byte line per channel.
template <class U>
inline constexpr std::size_t givens_tile_rows = 64 / sizeof(U);

// Whether this translation unit computes x_i' = c a - s b as fma(c, a, -(s b)): where the target
// has FMA, both the scalar and the SIMD paths do (explicitly, so compiler contraction cannot make
// them differ), else both use separate products. Either way every path of one translation unit
// gives bit-identical results.
#if defined(__FP_FAST_FMA) || defined(FP_FAST_FMA)
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

/// x y + z with one rounding (xsimd 8.1 has no AVX-512 fma: it would round twice).
template <class U, class Arch>
SINGLEQUANT_INLINE xsimd::batch<U, Arch> fused_multiply_add(const xsimd::batch<U, Arch>& x, const xsimd::batch<U, Arch>& y,
                                                            const xsimd::batch<U, Arch>& z) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
    if constexpr (std::is_same_v<U, float>)
      return _mm512_fmadd_ps(x, y, z);
    else
      return _mm512_fmadd_pd(x, y, z);
  }
#endif
  return xsimd::fma(x, y, z);
}

// --- L x L transposes (L = batch lanes): dst[k * dst_stride + r] = src[r * src_stride + k]. ------

template <class U, class Arch>
SINGLEQUANT_INLINE void transpose_square_generic(const U* src, std::size_t src_stride, U* dst,
                                                 std::size_t dst_stride) noexcept {
  constexpr std::size_t lanes = xsimd::batch<U, Arch>::size;
  for (std::size_t r = 0; r < lanes; ++r)
    for (std::size_t k = 0; k < lanes; ++k) dst[k * dst_stride + r] = src[r * src_stride + k];
}

#if XSIMD_WITH_SSE2
template <class Arch>
SINGLEQUANT_INLINE void transpose_square_sse(const float* src, std::size_t ss, float* dst, std::size_t ds) noexcept {
  const __m128 r0 = _mm_loadu_ps(src), r1 = _mm_loadu_ps(src + ss);
  const __m128 r2 = _mm_loadu_ps(src + 2 * ss), r3 = _mm_loadu_ps(src + 3 * ss);
  const __m128 t0 = _mm_unpacklo_ps(r0, r1), t1 = _mm_unpackhi_ps(r0, r1);  // a0 b0 a1 b1 | a2 b2 a3 b3
  const __m128 t2 = _mm_unpacklo_ps(r2, r3), t3 = _mm_unpackhi_ps(r2, r3);
  _mm_storeu_ps(dst, _mm_movelh_ps(t0, t2));
  _mm_storeu_ps(dst + ds, _mm_movehl_ps(t2, t0));
  _mm_storeu_ps(dst + 2 * ds, _mm_movelh_ps(t1, t3));
  _mm_storeu_ps(dst + 3 * ds, _mm_movehl_ps(t3, t1));
}
template <class Arch>
SINGLEQUANT_INLINE void transpose_square_sse(const double* src, std::size_t ss, double* dst, std::size_t ds) noexcept {
  const __m128d r0 = _mm_loadu_pd(src), r1 = _mm_loadu_pd(src + ss);
  _mm_storeu_pd(dst, _mm_unpacklo_pd(r0, r1));
  _mm_storeu_pd(dst + ds, _mm_unpackhi_pd(r0, r1));
}
#endif

#if XSIMD_WITH_AVX
template <class Arch>
SINGLEQUANT_INLINE void transpose_square_avx(const float* src, std::size_t ss, float* dst, std::size_t ds) noexcept {
  __m256 t[8], u[8];
  for (std::size_t k = 0; k < 4; ++k) {
    const __m256 a = _mm256_loadu_ps(src + 2 * k * ss), b = _mm256_loadu_ps(src + (2 * k + 1) * ss);
    t[2 * k] = _mm256_unpacklo_ps(a, b);  // per 128-bit half h: a(4h) b(4h) a(4h+1) b(4h+1)
    t[2 * k + 1] = _mm256_unpackhi_ps(a, b);
  }
  for (std::size_t g = 0; g < 2; ++g) {  // rows 4g..4g+3 -> u[4g + m] half h = column 4h + m
    u[4 * g + 0] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (std::size_t m = 0; m < 4; ++m) {
    _mm256_storeu_ps(dst + m * ds, _mm256_permute2f128_ps(u[m], u[4 + m], 0x20));
    _mm256_storeu_ps(dst + (4 + m) * ds, _mm256_permute2f128_ps(u[m], u[4 + m], 0x31));
  }
}
template <class Arch>
SINGLEQUANT_INLINE void transpose_square_avx(const double* src, std::size_t ss, double* dst, std::size_t ds) noexcept {
  const __m256d r0 = _mm256_loadu_pd(src), r1 = _mm256_loadu_pd(src + ss);
  const __m256d r2 = _mm256_loadu_pd(src + 2 * ss), r3 = _mm256_loadu_pd(src + 3 * ss);
  const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);  // a0 b0 | a2 b2
  const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
  _mm256_storeu_pd(dst, _mm256_permute2f128_pd(t0, t2, 0x20));
  _mm256_storeu_pd(dst + ds, _mm256_permute2f128_pd(t1, t3, 0x20));
  _mm256_storeu_pd(dst + 2 * ds, _mm256_permute2f128_pd(t0, t2, 0x31));
  _mm256_storeu_pd(dst + 3 * ds, _mm256_permute2f128_pd(t1, t3, 0x31));
}
#endif

#if XSIMD_WITH_AVX512F
// The masked forms with an all-ones mask compile to the same instructions as the plain ones; GCC 12
// reports a false -Wmaybe-uninitialized inside the plain forms (their _mm512_undefined_* source).
template <class Arch>
SINGLEQUANT_INLINE __m512 unpack_lo_512(__m512 a, __m512 b) noexcept { return _mm512_mask_unpacklo_ps(a, 0xFFFF, a, b); }
template <class Arch>
SINGLEQUANT_INLINE __m512 unpack_hi_512(__m512 a, __m512 b) noexcept { return _mm512_mask_unpackhi_ps(a, 0xFFFF, a, b); }
template <int imm, class Arch>
SINGLEQUANT_INLINE __m512 shuffle_512(__m512 a, __m512 b) noexcept { return _mm512_mask_shuffle_ps(a, 0xFFFF, a, b, imm); }
template <int imm, class Arch>
SINGLEQUANT_INLINE __m512 shuffle_lanes_512(__m512 a, __m512 b) noexcept {
  return _mm512_mask_shuffle_f32x4(a, 0xFFFF, a, b, imm);
}
template <class Arch>
SINGLEQUANT_INLINE __m512d unpack_lo_512(__m512d a, __m512d b) noexcept { return _mm512_mask_unpacklo_pd(a, 0xFF, a, b); }
template <class Arch>
SINGLEQUANT_INLINE __m512d unpack_hi_512(__m512d a, __m512d b) noexcept { return _mm512_mask_unpackhi_pd(a, 0xFF, a, b); }
template <int imm, class Arch>
SINGLEQUANT_INLINE __m512d shuffle_lanes_512(__m512d a, __m512d b) noexcept {
  return _mm512_mask_shuffle_f64x2(a, 0xFF, a, b, imm);
}

template <class Arch>
SINGLEQUANT_INLINE void transpose_square_avx512(const float* src, std::size_t ss, float* dst,
                                                std::size_t ds) noexcept {
  __m512 t[16], u[16];
  for (std::size_t k = 0; k < 8; ++k) {
    const __m512 a = _mm512_loadu_ps(src + 2 * k * ss), b = _mm512_loadu_ps(src + (2 * k + 1) * ss);
    t[2 * k] = unpack_lo_512<Arch>(a, b);  // per 128-bit lane q: a(4q) b(4q) a(4q+1) b(4q+1)
    t[2 * k + 1] = unpack_hi_512<Arch>(a, b);
  }
  for (std::size_t g = 0; g < 4; ++g) {  // rows 4g..4g+3 -> u[4g + m] lane q = column 4q + m
    u[4 * g + 0] = shuffle_512<0x44, Arch>(t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = shuffle_512<0xEE, Arch>(t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = shuffle_512<0x44, Arch>(t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = shuffle_512<0xEE, Arch>(t[4 * g + 1], t[4 * g + 3]);
  }
  for (std::size_t m = 0; m < 4; ++m) {  // column 4q + m = [u[m].q, u[4+m].q, u[8+m].q, u[12+m].q]
    const __m512 v = shuffle_lanes_512<0x44, Arch>(u[m], u[4 + m]);
    const __m512 w = shuffle_lanes_512<0xEE, Arch>(u[m], u[4 + m]);
    const __m512 v2 = shuffle_lanes_512<0x44, Arch>(u[8 + m], u[12 + m]);
    const __m512 w2 = shuffle_lanes_512<0xEE, Arch>(u[8 + m], u[12 + m]);
    _mm512_storeu_ps(dst + m * ds, shuffle_lanes_512<0x88, Arch>(v, v2));
    _mm512_storeu_ps(dst + (4 + m) * ds, shuffle_lanes_512<0xDD, Arch>(v, v2));
    _mm512_storeu_ps(dst + (8 + m) * ds, shuffle_lanes_512<0x88, Arch>(w, w2));
    _mm512_storeu_ps(dst + (12 + m) * ds, shuffle_lanes_512<0xDD, Arch>(w, w2));
  }
}
template <class Arch>
SINGLEQUANT_INLINE void transpose_square_avx512(const double* src, std::size_t ss, double* dst,
                                                std::size_t ds) noexcept {
  __m512d t[8];
  for (std::size_t k = 0; k < 4; ++k) {
    const __m512d a = _mm512_loadu_pd(src + 2 * k * ss), b = _mm512_loadu_pd(src + (2 * k + 1) * ss);
    t[2 * k] = unpack_lo_512<Arch>(a, b);  // per 128-bit lane q: a(2q) b(2q)
    t[2 * k + 1] = unpack_hi_512<Arch>(a, b);
  }
  for (std::size_t m = 0; m < 2; ++m) {  // column 2q + m = [t[m].q, t[2+m].q, t[4+m].q, t[6+m].q]
    const __m512d v = shuffle_lanes_512<0x44, Arch>(t[m], t[2 + m]);
    const __m512d w = shuffle_lanes_512<0xEE, Arch>(t[m], t[2 + m]);
    const __m512d v2 = shuffle_lanes_512<0x44, Arch>(t[4 + m], t[6 + m]);
    const __m512d w2 = shuffle_lanes_512<0xEE, Arch>(t[4 + m], t[6 + m]);
    _mm512_storeu_pd(dst + m * ds, shuffle_lanes_512<0x88, Arch>(v, v2));
    _mm512_storeu_pd(dst + (2 + m) * ds, shuffle_lanes_512<0xDD, Arch>(v, v2));
    _mm512_storeu_pd(dst + (4 + m) * ds, shuffle_lanes_512<0x88, Arch>(w, w2));
    _mm512_storeu_pd(dst + (6 + m) * ds, shuffle_lanes_512<0xDD, Arch>(w, w2));
  }
}
#endif

/// Transposes one L x L block (L = the batch width of U on Arch).
template <class U, class Arch>
SINGLEQUANT_INLINE void transpose_square(const U* src, std::size_t src_stride, U* dst,
                                         std::size_t dst_stride) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
    transpose_square_avx512<Arch>(src, src_stride, dst, dst_stride);
    return;
  }
#endif
#if XSIMD_WITH_AVX
  if constexpr (std::is_base_of_v<xsimd::avx, Arch>) {
    transpose_square_avx<Arch>(src, src_stride, dst, dst_stride);
    return;
  }
#endif
#if XSIMD_WITH_SSE2
  if constexpr (std::is_base_of_v<xsimd::sse2, Arch>) {
    transpose_square_sse<Arch>(src, src_stride, dst, dst_stride);
    return;
  }
#endif
  transpose_square_generic<U, Arch>(src, src_stride, dst, dst_stride);
}

/// Transposes the R x width block of the tile starting at channel c0 into (into == true) or out of
/// the channel-major scratch (scratch[c * R + r] holds row r, channel c); width < R: scalar copy.
template <class U, class Arch>
SINGLEQUANT_INLINE void transpose_block(U* tile, std::size_t row_stride, U* scratch, std::size_t c0,
                                        std::size_t width, bool into) noexcept {
  constexpr std::size_t rows = givens_tile_rows<U>;
  constexpr std::size_t lanes = xsimd::batch<U, Arch>::size;
  if (width == rows) {
    for (std::size_t rb = 0; rb < rows; rb += lanes)
      for (std::size_t cb = 0; cb < rows; cb += lanes) {
        U* matrix_part = tile + rb * row_stride + c0 + cb;
        U* scratch_part = scratch + (c0 + cb) * rows + rb;
        if (into)
          transpose_square<U, Arch>(matrix_part, row_stride, scratch_part, rows);
        else
          transpose_square<U, Arch>(scratch_part, rows, matrix_part, row_stride);
      }
    return;
  }
  for (std::size_t r = 0; r < rows; ++r)  // the partial last block
    for (std::size_t c = c0; c < c0 + width; ++c) {
      if (into)
        scratch[c * rows + r] = tile[r * row_stride + c];
      else
        tile[r * row_stride + c] = scratch[c * rows + r];
    }
}

/// What the tiled path needs besides the rotations, prepared once per call (make_tile_plan in
/// givens.hpp): the channel blocks to transpose and the first applied stage regrouped by block.
/// Block k covers channels [k R - misalignment, (k + 1) R - misalignment) clipped to [0, cols),
/// so that whole blocks start on a 64-byte boundary of row 0 (no loads split across lines).
/// The first applied stage (stages[0], or the last stage when inverting) is applied while the
/// blocks are transposed in: fused[fused_offsets[b] .. fused_offsets[b + 1]) are its rotations
/// whose later channel block is blocks[b], so one of their two lines is still in L1.
template <class T>
struct tile_plan_view {
  const std::size_t* blocks = nullptr;
  std::size_t block_count = 0;
  std::size_t misalignment = 0;
  const givens<T>* fused = nullptr;
  const std::size_t* fused_offsets = nullptr;  // block_count + 1 entries
};

/// Applies one rotation to the channel lines xi, xj (tile_rows lanes each) of the scratch.
template <class U, class Arch>
SINGLEQUANT_INLINE void rotate_lines(U* xi, U* xj, U c, U s) noexcept {
  using batch = xsimd::batch<U, Arch>;
  constexpr std::size_t lanes = batch::size;
  const batch cb(c), sb(s);
  for (std::size_t k = 0; k < givens_tile_rows<U>; k += lanes) {
    const batch a = batch::load_aligned(xi + k);
    const batch b = batch::load_aligned(xj + k);
#if SINGLEQUANT_GIVENS_FMA
    fused_multiply_add<U, Arch>(cb, a, -(sb * b)).store_aligned(xi + k);  // as rotate_scalar_pair
    fused_multiply_add<U, Arch>(sb, a, cb * b).store_aligned(xj + k);
#else
    (cb * a - sb * b).store_aligned(xi + k);
    (sb * a + cb * b).store_aligned(xj + k);
#endif
  }
}

/// Tiled path (see the file comment); rows not filling a whole tile go through the direct path.
/// scratch holds cols * R elements, 64-byte aligned (channel c's line at scratch + c R).
template <class T, class U, class Arch>
void rotate_rows_tiled(const rotation_span<T>* stages, std::size_t stage_count, bool inverse,
                       const tile_plan_view<T>& plan, U* x, std::size_t rows, std::size_t cols,
                       std::size_t row_stride, U* scratch) noexcept {
  constexpr std::size_t tile_rows = givens_tile_rows<U>;
  std::size_t r0 = 0;
  if constexpr (!simd::is_scalar_v<Arch>) {
    static_assert(tile_rows % xsimd::batch<U, Arch>::size == 0, "a tile row is a whole number of batches");
    const std::size_t m = plan.misalignment;
    const auto block_range = [&](std::size_t b, std::size_t& c0, std::size_t& width) {
      const std::size_t begin = b * tile_rows, end = begin + tile_rows;  // in channels + m
      c0 = begin > m ? begin - m : 0;
      width = (end - m < cols ? end - m : cols) - c0;
    };
    const U sign = inverse ? U(-1) : U(1);
    for (; r0 + tile_rows <= rows; r0 += tile_rows) {
      U* tile = x + r0 * row_stride;
      for (std::size_t b = 0; b < plan.block_count; ++b) {
        std::size_t c0 = 0, width = 0;
        block_range(plan.blocks[b], c0, width);
        transpose_block<U, Arch>(tile, row_stride, scratch, c0, width, true);
        for (std::size_t q = plan.fused_offsets[b]; q < plan.fused_offsets[b + 1]; ++q) {
          const givens<T>& g = plan.fused[q];
          rotate_lines<U, Arch>(scratch + g.i * tile_rows, scratch + g.j * tile_rows, static_cast<U>(g.c),
                                sign * static_cast<U>(g.s));
        }
      }
      for (std::size_t step = 1; step < stage_count; ++step) {  // step 0 was fused above
        const rotation_span<T>& stage = stages[inverse ? stage_count - 1 - step : step];
        for (std::size_t q = 0; q < stage.size; ++q) {
          const givens<T>& g = stage.data[inverse ? stage.size - 1 - q : q];
          rotate_lines<U, Arch>(scratch + g.i * tile_rows, scratch + g.j * tile_rows, static_cast<U>(g.c),
                                sign * static_cast<U>(g.s));
        }
      }
      for (std::size_t b = 0; b < plan.block_count; ++b) {
        std::size_t c0 = 0, width = 0;
        block_range(plan.blocks[b], c0, width);
        transpose_block<U, Arch>(tile, row_stride, scratch, c0, width, false);
      }
    }
  } else {
    static_cast<void>(plan);
    static_cast<void>(cols);
    static_cast<void>(scratch);
  }
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
                               const tile_plan_view<float>& plan, U* x, std::size_t rows,
                               std::size_t cols, std::size_t row_stride, U* scratch) noexcept;
  static void apply_rows_tiled(const rotation_span<double>* stages, std::size_t stage_count,
                               bool inverse, const tile_plan_view<double>& plan, U* x,
                               std::size_t rows, std::size_t cols, std::size_t row_stride,
                               U* scratch) noexcept;
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
                                              const tile_plan_view<float>& plan, U* x,
                                              std::size_t rows, std::size_t cols,
                                              std::size_t row_stride, U* scratch) noexcept {
  rotate_rows_tiled<float, U, Arch>(stages, stage_count, inverse, plan, x, rows, cols, row_stride, scratch);
}
template <class U, class Arch>
void givens_kernel<U, Arch>::apply_rows_tiled(const rotation_span<double>* stages,
                                              std::size_t stage_count, bool inverse,
                                              const tile_plan_view<double>& plan, U* x,
                                              std::size_t rows, std::size_t cols,
                                              std::size_t row_stride, U* scratch) noexcept {
  rotate_rows_tiled<double, U, Arch>(stages, stage_count, inverse, plan, x, rows, cols, row_stride, scratch);
}

SINGLEQUANT_EXTERN_KERNEL(givens_kernel, float)
SINGLEQUANT_EXTERN_KERNEL(givens_kernel, double)

}  // namespace detail
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_GIVENS_KERNELS_HPP
