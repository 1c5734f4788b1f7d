// singlequant/detail/cholesky.hpp - blocked, threaded Cholesky factorisation and triangular
// inverse (double).
#ifndef SINGLEQUANT_DETAIL_CHOLESKY_HPP
#define SINGLEQUANT_DETAIL_CHOLESKY_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "dense_kernels.hpp"
#include "parallel.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail {

/// In place a = L L^T for the n x n row-major matrix a (row stride lda): the lower triangle is read
/// and overwritten with L, the upper triangle is scratch. Blocked right-looking, 128 columns per
/// panel: the diagonal block unblocked, the panel below it by a triangular solve on its transpose
/// (chunks of 256 rows per task), the trailing lower triangle by multiply_add tiles of 64 x 256
/// (one task each). Task boundaries depend on n only, so the bits do not depend on the team size.
/// Returns n on success, else the first column whose pivot is not positive and finite.
template <class Arch>
std::size_t cholesky_lower(double* a, std::size_t n, std::size_t lda, thread_team& team) {
  using kernel = dense_kernel<double, Arch>;
  constexpr std::size_t panel_cols = 128, solve_rows = 256, tile_rows = 64, tile_cols = 256;
  struct tile {
    std::size_t row0, col0;
  };
  std::vector<double> panel;  // the rows below the diagonal block, transposed: width x rest
  std::vector<tile> tiles;
  for (std::size_t k0 = 0; k0 < n; k0 += panel_cols) {
    const std::size_t width = std::min(panel_cols, n - k0), k1 = k0 + width, rest = n - k1;
    for (std::size_t j = k0; j < k1; ++j) {
      double* aj = a + j * lda;
      double pivot = aj[j];
      for (std::size_t l = k0; l < j; ++l) pivot -= aj[l] * aj[l];
      if (!(pivot > 0) || !std::isfinite(pivot)) return j;
      const double d = std::sqrt(pivot);
      aj[j] = d;
      for (std::size_t i = j + 1; i < k1; ++i) {
        double* ai = a + i * lda;
        double t = ai[j];
        for (std::size_t l = k0; l < j; ++l) t -= ai[l] * aj[l];
        ai[j] = t / d;
      }
    }
    if (rest == 0) break;
    panel.resize(width * rest);
    // Panel rows: x L11^T = a, solved on the transpose so each step is an axpy over many rows.
    team.run((rest + solve_rows - 1) / solve_rows, [&](std::size_t task) {
      const std::size_t c0 = task * solve_rows, c1 = std::min(rest, c0 + solve_rows), count = c1 - c0;
      for (std::size_t i = c0; i < c1; ++i)
        for (std::size_t l = 0; l < width; ++l) panel[l * rest + i] = a[(k1 + i) * lda + k0 + l];
      for (std::size_t j = 0; j < width; ++j) {
        double* pj = panel.data() + j * rest + c0;
        const double* lj = a + (k0 + j) * lda + k0;
        for (std::size_t l = 0; l < j; ++l) kernel::axpy(-lj[l], panel.data() + l * rest + c0, pj, count);
        for (std::size_t i = 0; i < count; ++i) pj[i] /= lj[j];
      }
      for (std::size_t i = c0; i < c1; ++i)
        for (std::size_t l = 0; l < width; ++l) a[(k1 + i) * lda + k0 + l] = panel[l * rest + i];
    });
    // Trailing lower triangle: a_ij -= sum_l L_il L_jl for k1 <= j <= i.
    tiles.clear();
    for (std::size_t c0 = 0; c0 < rest; c0 += tile_cols)
      for (std::size_t r0 = c0; r0 < rest; r0 += tile_rows) tiles.push_back({r0, c0});
    team.run(tiles.size(), [&](std::size_t task) {
      const tile& t = tiles[task];
      const std::size_t rows = std::min(tile_rows, rest - t.row0);
      const std::size_t cols = std::min({t.col0 + tile_cols, t.row0 + rows, rest}) - t.col0;
      kernel::multiply_add(panel.data() + t.row0, rest, panel.data() + t.col0, rest, width,
                           a + (k1 + t.row0) * lda + k1 + t.col0, lda, rows, cols, true);
    });
  }
  return n;
}

/// In place a <- L^-1 for the lower triangular n x n matrix L in a's lower triangle (row stride
/// lda; the upper triangle is ignored and left as it is). Blocked, 128 columns per block, from the
/// last block to the first: invert the diagonal block (unblocked), then the rows below it become
/// -X22 L21 X11 with X22 the part already inverted: the product X22 L21 by multiply_add on row tiles
/// of 64 (X22's rows packed transposed, zeros above its diagonal), the product with X11 by axpys on
/// chunks of 256 rows. Task boundaries depend on n only. L's diagonal must be non-zero.
template <class Arch>
void invert_lower(double* a, std::size_t n, std::size_t lda, thread_team& team) {
  using kernel = dense_kernel<double, Arch>;
  constexpr std::size_t block_cols = 128, tile_rows = 64, chunk_rows = 256;
  std::vector<double> product;  // X22 L21: rest x width
  const std::size_t blocks = (n + block_cols - 1) / block_cols;
  for (std::size_t b = blocks; b-- > 0;) {
    const std::size_t j0 = b * block_cols, width = std::min(block_cols, n - j0), j1 = j0 + width;
    const std::size_t rest = n - j1;
    for (std::size_t i = j0; i < j1; ++i) {  // X11 = L11^-1, row by row
      double* ai = a + i * lda;
      const double inverse_diagonal = 1.0 / ai[i];
      for (std::size_t k = j0; k < i; ++k) {
        double s = 0;
        for (std::size_t t = k; t < i; ++t) s += ai[t] * a[t * lda + k];
        ai[k] = -s * inverse_diagonal;
      }
      ai[i] = inverse_diagonal;
    }
    if (rest == 0) continue;
    product.assign(rest * width, 0.0);
    const double* l21 = a + j1 * lda + j0;
    team.run((rest + tile_rows - 1) / tile_rows, [&](std::size_t task) {
      const std::size_t i0 = task * tile_rows, rows = std::min(tile_rows, rest - i0), depth = i0 + rows;
      std::vector<double> packed(depth * rows);  // packed[k rows + t] = X22(i0 + t, k)
      for (std::size_t t = 0; t < rows; ++t) {
        const double* x_row = a + (j1 + i0 + t) * lda + j1;
        for (std::size_t k = 0; k < depth; ++k) packed[k * rows + t] = k <= i0 + t ? x_row[k] : 0.0;
      }
      kernel::multiply_add(packed.data(), rows, l21, lda, depth, product.data() + i0 * width, width,
                           rows, width, false);
    });
    team.run((rest + chunk_rows - 1) / chunk_rows, [&](std::size_t task) {
      for (std::size_t i = task * chunk_rows; i < std::min(rest, (task + 1) * chunk_rows); ++i) {
        double* out = a + (j1 + i) * lda + j0;
        for (std::size_t c = 0; c < width; ++c) out[c] = 0;
        const double* y = product.data() + i * width;
        for (std::size_t c = 0; c < width; ++c)  // out = -y X11, X11 lower: row c reaches columns <= c
          kernel::axpy(-y[c], a + (j0 + c) * lda + j0, out, c + 1);
      }
    });
  }
}

}  // namespace detail
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_CHOLESKY_HPP
