// Shared helpers of the INT4 GEMM tests: random packed tensors and the exact integer reference.
#ifndef SINGLEQUANT_TESTS_INT4_GEMM_SUPPORT_HPP
#define SINGLEQUANT_TESTS_INT4_GEMM_SUPPORT_HPP

#include <singlequant/int4.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace sq_test {

/// A packed tensor with uniform random codes of the grid and scales drawn by `scale_kind`:
/// 0: all 1, 1: powers of two 2^-2..2^2 (products stay exact in float), 2: uniform 0.01..1 (either sign).
inline singlequant::packed_int4 random_int4(std::size_t rows, std::size_t cols, singlequant::granularity gran,
                                            std::size_t group, singlequant::int4_grid grid, int scale_kind,
                                            std::uint64_t seed) {
  singlequant::packed_int4 q(rows, cols, gran, group, grid, false);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> code(singlequant::grid_min(grid), 7);
  std::vector<std::int8_t> row(cols);
  for (std::size_t i = 0; i < rows; ++i) {
    for (auto& c : row) c = static_cast<std::int8_t>(code(rng));
    if (cols != 0) singlequant::pack_int4(row, q.row_codes(i));
  }
  std::uniform_int_distribution<int> exponent(-2, 2);
  std::uniform_real_distribution<float> magnitude(0.01f, 1.0f);
  for (auto& s : q.scales()) {
    if (scale_kind == 0) s = 1.0f;
    else if (scale_kind == 1) s = std::ldexp(1.0f, exponent(rng));
    else s = (rng() % 2 == 0 ? 1.0f : -1.0f) * magnitude(rng);
  }
  return q;
}

/// sum_g sa(m) sw(n, g) sum_{k in g} a(m, k) w(n, k) in double, the inner sums exact in int64 from
/// the canonical codes (independent of the kernel layout).
/// magnitude (optional) gets sum_g |sa sw(n, g) dot_g|, the scale of the float rounding error.
inline std::vector<double> int4_reference(const singlequant::packed_int4& a, const singlequant::packed_int4& w,
                                          std::vector<double>* magnitude = nullptr) {
  const std::size_t m = a.rows(), n = w.rows(), k = a.cols();
  const std::size_t group = w.gran() == singlequant::granularity::per_group ? w.group_size() : k;
  std::vector<double> y(m * n, 0.0);
  if (magnitude != nullptr) magnitude->assign(m * n, 0.0);
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double total = 0, size = 0;
      for (std::size_t g0 = 0; g0 < k; g0 += group) {
        std::int64_t dot = 0;
        for (std::size_t c = g0; c < g0 + group; ++c) dot += std::int64_t{a.code(i, c)} * w.code(j, c);
        total += static_cast<double>(w.scale(j, g0)) * static_cast<double>(dot);
        size += std::abs(static_cast<double>(w.scale(j, g0)) * static_cast<double>(dot));
      }
      if (magnitude != nullptr) (*magnitude)[i * n + j] = std::abs(static_cast<double>(a.scale(i, 0))) * size;
      y[i * n + j] = static_cast<double>(a.scale(i, 0)) * total;
    }
  return y;
}

}  // namespace sq_test

#endif
