// singlequant/detail/moment_kernels.hpp - the sums behind the calibration statistics and the builders.
//
// Bit-for-bit reproducibility across ISA paths: every kernel vectorises across independent output
// columns (never a horizontal reduction), walks the rows in order, and separates each multiply from
// the add that consumes it with no_fuse<Arch>(), so no compiler can contract them into an FMA on one path
// and not on another. The scalar path runs the same operation sequence per column, so every path
// gives the same bits (tests/arch/test_moment_arch.cpp holds them to equality).
#ifndef SINGLEQUANT_DETAIL_MOMENT_KERNELS_HPP
#define SINGLEQUANT_DETAIL_MOMENT_KERNELS_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "simd_core.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail {

/// Returns v unchanged, opaque to the optimiser (arch::no_contract): a product passed through it
/// cannot be fused with the add that consumes it (GCC contracts a * b + c into an FMA under
/// -ffp-contract=fast). v: a double or a batch of doubles.
template <class Arch, class V>
SINGLEQUANT_INLINE V no_fuse(V v) noexcept {
  arch::no_contract<Arch>(v);
  return v;
}

#if defined(__GNUC__) || defined(__clang__)
#  define SINGLEQUANT_PREFETCH(address) __builtin_prefetch(address)
#else
#  define SINGLEQUANT_PREFETCH(address) static_cast<void>(address)
#endif

/// Rows ahead the SIMD loops prefetch.
inline constexpr std::size_t prefetch_rows = 12;
/// Rows per tile of the cross sums: each tile's partial sums are added to the outputs, so the pages
/// of a tile stay in the TLB while its columns are swept. Fixed (not per ISA): same bits everywhere.
inline constexpr std::size_t cross_row_tile = 256;

/// Offset of column k in a panel layout: columns come in panels of 8, panel p starting at
/// p * panel_stride (row-major rows: panel_stride = 8; panel-major storage: panel_stride = rows * 8,
/// row stride 8, so a column sweep over the rows reads contiguous memory).
SINGLEQUANT_INLINE constexpr std::size_t column_offset(std::size_t k, std::size_t panel_stride) noexcept {
  return (k / 8) * panel_stride + k % 8;
}

/// Columns k >= k_begin of one block of Channels weight columns: for c < Channels,
///   out31[c][k] += sum_t w3[t][c] x[t][k],  out22[c][k] += sum_t w2[t][c] x[t][k]^2,
///   out13[c][k] += sum_t w1[t][c] x[t][k]^3            (Fourth == true), or
///   out31[c][k] += sum_t w3[t][c] x[t][k]             (Fourth == false; w2, w1, out22, out13 unused).
/// x[t][k] is at x[t * stride + column_offset(k, panel_stride)]; w* point at the block's first
/// channel of row 0 and have row stride m; out* at row c0, column 0.
template <class Arch, std::size_t Channels, bool Fourth>
void cross_block(const double* x, std::size_t rows, std::size_t cols, std::size_t stride,
                 std::size_t panel_stride, std::size_t k_begin, const double* w3, const double* w2,
                 const double* w1, std::size_t m, double* out31, double* out22, double* out13,
                 std::size_t out_stride) noexcept {
  // Scalar path, SIMD head and tail: the same operation sequence per column as the SIMD body.
  auto scalar_columns = [&](std::size_t k0, std::size_t k1) {
    for (std::size_t k = k0; k < k1; ++k) {
      const double* column = x + column_offset(k, panel_stride);
      double acc31[Channels] = {}, acc22[Channels] = {}, acc13[Channels] = {};
      for (std::size_t t = 0; t < rows; ++t) {
        const double y = column[t * stride];
        const double* w3_row = w3 + t * m;
        if constexpr (Fourth) {
          const double y2 = no_fuse<Arch>(y * y);
          const double y3 = no_fuse<Arch>(y2 * y);
          const double* w2_row = w2 + t * m;
          const double* w1_row = w1 + t * m;
          for (std::size_t c = 0; c < Channels; ++c) {
            acc31[c] = acc31[c] + no_fuse<Arch>(w3_row[c] * y);
            acc22[c] = acc22[c] + no_fuse<Arch>(w2_row[c] * y2);
            acc13[c] = acc13[c] + no_fuse<Arch>(w1_row[c] * y3);
          }
        } else {
          for (std::size_t c = 0; c < Channels; ++c) acc31[c] = acc31[c] + no_fuse<Arch>(w3_row[c] * y);
        }
      }
      for (std::size_t c = 0; c < Channels; ++c) {
        out31[c * out_stride + k] = out31[c * out_stride + k] + acc31[c];
        if constexpr (Fourth) {
          out22[c * out_stride + k] = out22[c * out_stride + k] + acc22[c];
          out13[c * out_stride + k] = out13[c * out_stride + k] + acc13[c];
        }
      }
    }
  };
  if constexpr (simd::is_scalar_v<Arch>) {
    scalar_columns(k_begin, cols);
  } else {
    using batch = xsimd::batch<double, Arch>;
    constexpr std::size_t lanes = batch::size;
    static_assert(8 % lanes == 0, "a batch must not straddle two column panels");
    const std::size_t aligned = std::min(cols, (k_begin + lanes - 1) / lanes * lanes);
    scalar_columns(k_begin, aligned);
    std::size_t k = aligned;
    for (; k + lanes <= cols; k += lanes) {
      const double* column = x + column_offset(k, panel_stride);
      batch acc31[Channels], acc22[Channels], acc13[Channels];
      SINGLEQUANT_UNROLL
      for (std::size_t c = 0; c < Channels; ++c) {
        acc31[c] = batch(0.0);
        if constexpr (Fourth) {
          acc22[c] = batch(0.0);
          acc13[c] = batch(0.0);
        }
      }
      for (std::size_t t = 0; t < rows; ++t) {
        if (t + prefetch_rows < rows) SINGLEQUANT_PREFETCH(column + (t + prefetch_rows) * stride);
        const batch y = batch::load_unaligned(column + t * stride);
        const double* w3_row = w3 + t * m;
        if constexpr (Fourth) {
          const batch y2 = no_fuse<Arch>(y * y);
          const batch y3 = no_fuse<Arch>(y2 * y);
          const double* w2_row = w2 + t * m;
          const double* w1_row = w1 + t * m;
          SINGLEQUANT_UNROLL
          for (std::size_t c = 0; c < Channels; ++c) {
            acc31[c] = acc31[c] + no_fuse<Arch>(batch(w3_row[c]) * y);
            acc22[c] = acc22[c] + no_fuse<Arch>(batch(w2_row[c]) * y2);
            acc13[c] = acc13[c] + no_fuse<Arch>(batch(w1_row[c]) * y3);
          }
        } else {
          SINGLEQUANT_UNROLL
          for (std::size_t c = 0; c < Channels; ++c)
            acc31[c] = acc31[c] + no_fuse<Arch>(batch(w3_row[c]) * y);
        }
      }
      SINGLEQUANT_UNROLL
      for (std::size_t c = 0; c < Channels; ++c) {
        double* o31 = out31 + c * out_stride + k;
        (batch::load_unaligned(o31) + acc31[c]).store_unaligned(o31);
        if constexpr (Fourth) {
          double* o22 = out22 + c * out_stride + k;
          double* o13 = out13 + c * out_stride + k;
          (batch::load_unaligned(o22) + acc22[c]).store_unaligned(o22);
          (batch::load_unaligned(o13) + acc13[c]).store_unaligned(o13);
        }
      }
    }
    scalar_columns(k, cols);
  }
}

/// Channel-block width: as many accumulator triples as the register file holds.
template <class Arch>
constexpr std::size_t cross_channel_block() noexcept {
  if constexpr (simd::is_scalar_v<Arch>) {
    return 4;
  } else if constexpr (arch::vector_registers(Arch{}) >= 32) {
    return 8;
  } else {
    return 4;
  }
}

template <class Arch, bool Fourth, std::size_t Channels>
void cross_tail(std::size_t count, const double* x, std::size_t rows, std::size_t cols,
                std::size_t stride, std::size_t panel_stride, std::size_t k_begin, const double* w3, const double* w2,
                const double* w1, std::size_t m, double* out31, double* out22, double* out13,
                std::size_t out_stride) noexcept {
  if constexpr (Channels > 0) {
    if (count == Channels) {
      cross_block<Arch, Channels, Fourth>(x, rows, cols, stride, panel_stride, k_begin, w3, w2, w1, m, out31,
                                          out22, out13, out_stride);
    } else {
      cross_tail<Arch, Fourth, Channels - 1>(count, x, rows, cols, stride, panel_stride, k_begin, w3, w2, w1, m,
                                             out31, out22, out13, out_stride);
    }
  }
}

template <class Arch, bool Fourth>
void cross_all(const double* x, std::size_t rows, std::size_t cols, std::size_t stride,
               std::size_t panel_stride, std::size_t k_begin, const double* w3, const double* w2, const double* w1,
               std::size_t m, std::size_t w_stride, double* out31, double* out22, double* out13,
               std::size_t out_stride) noexcept {
  if (rows > cross_row_tile) {
    for (std::size_t t0 = 0; t0 < rows; t0 += cross_row_tile) {
      const std::size_t tile = std::min(cross_row_tile, rows - t0);
      cross_all<Arch, Fourth>(x + t0 * stride, tile, cols, stride, panel_stride, k_begin, w3 + t0 * w_stride,
                              Fourth ? w2 + t0 * w_stride : w2, Fourth ? w1 + t0 * w_stride : w1,
                              m, w_stride, out31, out22, out13, out_stride);
    }
    return;
  }
  constexpr std::size_t block = cross_channel_block<Arch>();
  std::size_t c0 = 0;
  for (; c0 + block <= m; c0 += block) {
    cross_block<Arch, block, Fourth>(x, rows, cols, stride, panel_stride, k_begin, w3 + c0, Fourth ? w2 + c0 : w2,
                                     Fourth ? w1 + c0 : w1, w_stride, out31 + c0 * out_stride,
                                     Fourth ? out22 + c0 * out_stride : out22,
                                     Fourth ? out13 + c0 * out_stride : out13, out_stride);
  }
  if (c0 < m) {
    cross_tail<Arch, Fourth, block - 1>(m - c0, x, rows, cols, stride, panel_stride, k_begin, w3 + c0,
                                        Fourth ? w2 + c0 : w2, Fourth ? w1 + c0 : w1, w_stride,
                                        out31 + c0 * out_stride,
                                        Fourth ? out22 + c0 * out_stride : out22,
                                        Fourth ? out13 + c0 * out_stride : out13, out_stride);
  }
}

/// Kernels of the calibration statistics (double in, double accumulation).
template <class Arch>
struct moment_kernel {
  /// Per column k of the rows x cols block x (row stride `stride`): absmax[k] = max(absmax[k], |x|),
  /// sum2[k] += sum_t x^2, sum4[k] += sum_t x^4 (partial sums over this block added at the end).
  static void channel_sums(const double* x, std::size_t rows, std::size_t cols, std::size_t stride,
                           double* absmax, double* sum2, double* sum4) noexcept;
  /// For the m weight columns c and every column k >= k_begin:
  ///   out31[c][k] += sum_t w3[t][c] x[t][k], out22[c][k] += sum_t w2[t][c] x[t][k]^2,
  ///   out13[c][k] += sum_t w1[t][c] x[t][k]^3; w* are rows x m with row stride w_stride, out* have
  /// row stride out_stride. With w3 = a^3, w2 = a^2, w1 = a for a channel a these are its
  /// fourth-order cross sums sum a^3 x_k, sum a^2 x_k^2, sum a x_k^3.
  /// x[t][k] is at x[t * stride + column_offset(k, panel_stride)] (row-major: panel_stride 8).
  static void cross_fourth(const double* x, std::size_t rows, std::size_t cols, std::size_t stride,
                           std::size_t panel_stride, std::size_t k_begin, const double* w3, const double* w2, const double* w1,
                           std::size_t m, std::size_t w_stride, double* out31, double* out22,
                           double* out13, std::size_t out_stride) noexcept;
  /// out[c][k] += sum_t w[t][c] x[t][k] for the m weight columns c and every column k >= k_begin.
  static void cross_second(const double* x, std::size_t rows, std::size_t cols, std::size_t stride,
                           std::size_t panel_stride, std::size_t k_begin, const double* w, std::size_t m,
                           std::size_t w_stride, double* out, std::size_t out_stride) noexcept;
};

template <class Arch>
void moment_kernel<Arch>::channel_sums(const double* x, std::size_t rows, std::size_t cols,
                                       std::size_t stride, double* absmax, double* sum2,
                                       double* sum4) noexcept {
  std::size_t k = 0;
  if constexpr (!simd::is_scalar_v<Arch>) {
    using batch = xsimd::batch<double, Arch>;
    constexpr std::size_t lanes = batch::size;
    for (; k + lanes <= cols; k += lanes) {
      batch peak = batch::load_unaligned(absmax + k);
      batch s2(0.0), s4(0.0);
      for (std::size_t t = 0; t < rows; ++t) {
        const batch y = batch::load_unaligned(x + t * stride + k);
        const batch a = xsimd::abs(y);
        peak = xsimd::select(a > peak, a, peak);
        const batch y2 = no_fuse<Arch>(y * y);
        s2 = s2 + y2;
        s4 = s4 + no_fuse<Arch>(y2 * y2);
      }
      peak.store_unaligned(absmax + k);
      (batch::load_unaligned(sum2 + k) + s2).store_unaligned(sum2 + k);
      (batch::load_unaligned(sum4 + k) + s4).store_unaligned(sum4 + k);
    }
  }
  for (; k < cols; ++k) {
    double peak = absmax[k], s2 = 0, s4 = 0;
    for (std::size_t t = 0; t < rows; ++t) {
      const double y = x[t * stride + k];
      const double a = std::fabs(y);
      peak = a > peak ? a : peak;
      const double y2 = no_fuse<Arch>(y * y);
      s2 = s2 + y2;
      s4 = s4 + no_fuse<Arch>(y2 * y2);
    }
    absmax[k] = peak;
    sum2[k] = sum2[k] + s2;
    sum4[k] = sum4[k] + s4;
  }
}

template <class Arch>
void moment_kernel<Arch>::cross_fourth(const double* x, std::size_t rows, std::size_t cols,
                                       std::size_t stride, std::size_t panel_stride,
                                       std::size_t k_begin, const double* w3,
                                       const double* w2, const double* w1, std::size_t m,
                                       std::size_t w_stride, double* out31, double* out22,
                                       double* out13, std::size_t out_stride) noexcept {
  cross_all<Arch, true>(x, rows, cols, stride, panel_stride, k_begin, w3, w2, w1, m, w_stride, out31, out22,
                        out13, out_stride);
}

template <class Arch>
void moment_kernel<Arch>::cross_second(const double* x, std::size_t rows, std::size_t cols,
                                       std::size_t stride, std::size_t panel_stride,
                                       std::size_t k_begin, const double* w,
                                       std::size_t m, std::size_t w_stride, double* out,
                                       std::size_t out_stride) noexcept {
  cross_all<Arch, false>(x, rows, cols, stride, panel_stride, k_begin, w, nullptr, nullptr, m, w_stride, out,
                         nullptr, nullptr, out_stride);
}

SINGLEQUANT_EXTERN_KERNEL(moment_kernel)

}  // namespace detail
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_MOMENT_KERNELS_HPP
