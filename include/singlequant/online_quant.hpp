// singlequant/online_quant.hpp - the fused online path of a W4A4 layer: for a batch of token rows,
// the site's online transform (x <- x R) then per-token INT4 quantisation and packing, one block
// of rows at a time so that each block is still in cache when it is quantised.
//
//   packed_int4 a = transform_and_quantize(r, x, 0.9, int4_grid::symmetric7);  // then int4_gemm(a, w, y)
#ifndef SINGLEQUANT_ONLINE_QUANT_HPP
#define SINGLEQUANT_ONLINE_QUANT_HPP

#include <algorithm>
#include <cstddef>

#include "config.hpp"
#include "int4.hpp"
#include "quant.hpp"
#include "transform.hpp"
#include "view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// Rows per block of transform_and_quantize: about 256 KiB of floats (half a typical L2), >= 1.
[[nodiscard]] constexpr std::size_t online_block_rows(std::size_t cols) noexcept {
  const std::size_t bytes = std::max<std::size_t>(cols, 1) * sizeof(float);
  return std::max<std::size_t>(1, (std::size_t{256} << 10) / bytes);
}

/// For every row of x (tokens x r.size()): x_row <- x_row R (site_transform::apply_rows, in place),
/// then out's codes and scale of that row = quantize_rows_fused(x_row, clip_ratio, grid), in blocks
/// of online_block_rows(cols) rows. out must be a symmetric per_row packed_int4 of x's shape and
/// grid. Results equal apply_rows(x) followed by quantize_rows_fused(x, ...) exactly (every row is
/// transformed and quantised independently of the blocking).
/// Errors (nothing written to out): shape, granularity or grid mismatch, a clip ratio outside (0, 1].
inline void transform_and_quantize(const site_transform& r, matrix_view<float> x, double clip_ratio,
                                   int4_grid grid, packed_int4& out, quant_report* report = nullptr) {
  constexpr const char* fn = "transform_and_quantize";
  detail::check(x.cols() == r.size(), fn, "rows have ", x.cols(), " values, the transform ", r.size());
  detail::check(out.rows() == x.rows() && out.cols() == x.cols() && out.gran() == granularity::per_row &&
                    out.grid() == grid && !out.has_zero_points(),
                fn, "out is ", out.rows(), " x ", out.cols(), ", needs a symmetric per_row tensor of ", x.rows(),
                " x ", x.cols(), " in the requested grid");
  detail::check(clip_ratio > 0 && clip_ratio <= 1, fn, "clip ratio ", clip_ratio, " is outside (0, 1]");
  const std::size_t block = online_block_rows(x.cols()), bytes = out.row_bytes();
  for (std::size_t t0 = 0; t0 < x.rows(); t0 += block) {
    const std::size_t rows = std::min(block, x.rows() - t0);
    const matrix_view<float> part(x.data() + t0 * x.row_stride(), rows, x.cols(), x.row_stride());
    r.apply_rows(part);
    quantize_rows_fused(matrix_view<const float>(part), out.codes().subspan(t0 * bytes, rows * bytes),
                        out.scales().subspan(t0, rows), clip_ratio, grid, report);
  }
}

/// transform_and_quantize into a new per_row packed tensor.
[[nodiscard]] inline packed_int4 transform_and_quantize(const site_transform& r, matrix_view<float> x,
                                                        double clip_ratio, int4_grid grid,
                                                        quant_report* report = nullptr) {
  detail::check_enum("transform_and_quantize", "grid", grid, int4_grid::full8);
  packed_int4 out(x.rows(), x.cols(), granularity::per_row, 0, grid, false);
  transform_and_quantize(r, x, clip_ratio, grid, out, report);
  return out;
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_ONLINE_QUANT_HPP
