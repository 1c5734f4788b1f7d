// singlequant/detail/kronecker_kernels.hpp - x <- x (R1 (x) R2) for dense factors, row by row.
//
// With the row-major reshape X[p][q] = x[p b + q] (p < a, q < b): x (R1 (x) R2) = vec(R1^T X R2).
// Two small products per row, n (a + b) multiply-adds, both as "coefficients times matrix rows"
// vectorised along the output row. Lane factor first when the lanes fill a register tile:
// Z = X R2 (z_p = sum_u X[p][u] R2[u]) then Y = R1^T Z (y_s = sum_p R1[p][s] z_p). Row factor first
// when the lanes are few (1376 = 172 x 8: vectorising over 8 lanes leaves AVX-512 half empty and
// latency bound): W^T = X^T R1 (w^T_q = sum_p X[p][q] R1[p], vectorised over the a outputs) then
// Y = W R2 (y_s = sum_q W^T[q][s] R2[q]). The order depends on a, b and the element size only, so
// every ISA adds the same terms in the same order.
#ifndef SINGLEQUANT_DETAIL_KRONECKER_KERNELS_HPP
#define SINGLEQUANT_DETAIL_KRONECKER_KERNELS_HPP

#include <cstddef>
#include <type_traits>

#include "arch/narrow.hpp"
#include "simd_core.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail {

/// Register operations of a combine tile: an xsimd batch of Arch (fused multiply-add on every
/// FMA architecture, simd::fused_fma), or arch::narrow_ops (the same interface, detail/arch/narrow.hpp)
/// for factors shorter than a batch.
template <class T, class Arch>
struct batch_ops {
  using type = xsimd::batch<T, Arch>;
  static constexpr std::size_t size = type::size;
  static SINGLEQUANT_INLINE type load(const T* p) noexcept { return type::load_unaligned(p); }
  static SINGLEQUANT_INLINE void store(T* p, const type& x) noexcept { x.store_unaligned(p); }
  static SINGLEQUANT_INLINE type broadcast(T c) noexcept { return type(c); }
  static SINGLEQUANT_INLINE type fma(const type& x, const type& y, const type& z) noexcept {
    return simd::fused_fma(x, y, z);
  }
};
/// The operands of S output rows of "coefficients times matrix rows":
///   out[i * out_stride + q] = sum_{u < count} coef[u * coef_stride + i * coef_step] * rows[u * row_stride + q].
template <class T>
struct combine_args {
  T* out;
  std::size_t out_stride;
  const T* coef;
  std::size_t coef_stride, coef_step;
  const T* rows;
  std::size_t row_stride, count;
};

/// Columns [v, v + R size) of S outputs in S x R registers: each matrix-row load serves S
/// outputs and each coefficient broadcast R registers. Terms are added in u order (fused) on every
/// register width, so the bits do not depend on the width.
template <class Ops, std::size_t S, std::size_t R, class T>
SINGLEQUANT_INLINE void combine_tile(const combine_args<T>& g, std::size_t v) noexcept {
  using V = typename Ops::type;
  constexpr std::size_t W = Ops::size;
  V acc[S][R];
  SINGLEQUANT_UNROLL
  for (std::size_t i = 0; i < S; ++i) {
    SINGLEQUANT_UNROLL
    for (std::size_t j = 0; j < R; ++j) acc[i][j] = Ops::broadcast(T(0));
  }
  for (std::size_t u = 0; u < g.count; ++u) {
    const T* r = g.rows + u * g.row_stride + v;
    V x[R];
    SINGLEQUANT_UNROLL
    for (std::size_t j = 0; j < R; ++j) x[j] = Ops::load(r + j * W);
    const T* c = g.coef + u * g.coef_stride;
    SINGLEQUANT_UNROLL
    for (std::size_t i = 0; i < S; ++i) {
      const V ci = Ops::broadcast(c[i * g.coef_step]);
      SINGLEQUANT_UNROLL
      for (std::size_t j = 0; j < R; ++j) acc[i][j] = Ops::fma(ci, x[j], acc[i][j]);
    }
  }
  SINGLEQUANT_UNROLL
  for (std::size_t i = 0; i < S; ++i) {
    SINGLEQUANT_UNROLL
    for (std::size_t j = 0; j < R; ++j) Ops::store(g.out + i * g.out_stride + v + j * W, acc[i][j]);
  }
}

/// combine_tile<Ops, S, 1> over [v, len) while a whole register fits; returns where it stopped.
template <class Ops, std::size_t S, class T>
SINGLEQUANT_INLINE std::size_t combine_columns(const combine_args<T>& g, std::size_t v, std::size_t len) noexcept {
  for (; v + Ops::size <= len; v += Ops::size) combine_tile<Ops, S, 1>(g, v);
  return v;
}

/// S outputs of length len (see combine_args): wide tiles of R batches, single batches, then the
/// narrower registers (a factor of 4 or 8 floats on AVX-512), then scalar columns.
template <std::size_t S, class T, class Arch>
void combine_outputs(const combine_args<T>& g, std::size_t len) noexcept {
  std::size_t v = 0;
  if constexpr (!simd::is_scalar_v<Arch>) {
    using wide = batch_ops<T, Arch>;
    // About half the register file (32 or 16 registers) holds accumulators.
    constexpr std::size_t W = wide::size, accumulators = W * sizeof(T) >= 64 ? 16 : 8;
    constexpr std::size_t R = S <= 4 ? accumulators / 4 : (accumulators / S > 0 ? accumulators / S : 1);
    for (; v + R * W <= len; v += R * W) combine_tile<wide, S, R>(g, v);
    v = combine_columns<wide, S>(g, v, len);
    using half = arch::narrow_ops_t<T, Arch, 32>;
    using quarter = arch::narrow_ops_t<T, Arch, 16>;
    if constexpr (!std::is_void_v<half>) v = combine_columns<half, S>(g, v, len);
    if constexpr (!std::is_void_v<quarter>) v = combine_columns<quarter, S>(g, v, len);
  }
  for (std::size_t i = 0; i < S; ++i)
    for (std::size_t q = v; q < len; ++q) {
      T a = T(0);
      for (std::size_t u = 0; u < g.count; ++u)
        a += g.coef[u * g.coef_stride + i * g.coef_step] * g.rows[u * g.row_stride + q];
      g.out[i * g.out_stride + q] = a;
    }
}

/// `outputs` output rows (see combine_args), S at a time (each matrix-row load serves S outputs),
/// the rest four at a time, then one.
template <class T, class Arch, std::size_t S = 4>
void combine_rows(combine_args<T> g, std::size_t outputs, std::size_t len) noexcept {
  std::size_t o = 0;
  const auto run = [&]<std::size_t s>(std::integral_constant<std::size_t, s>) {
    for (; o + s <= outputs; o += s) {
      combine_outputs<s, T, Arch>(g, len);
      g.out += s * g.out_stride;
      g.coef += s * g.coef_step;
    }
  };
  run(std::integral_constant<std::size_t, S>{});
  if constexpr (S > 4) run(std::integral_constant<std::size_t, 4>{});
  if constexpr (S > 1) run(std::integral_constant<std::size_t, 1>{});
}

template <class T, class Arch>
void kronecker_rows_impl(T* x, std::size_t rows, std::size_t row_stride, const T* r1,
                         std::size_t r1_stride, std::size_t a, const T* r2, std::size_t r2_stride,
                         std::size_t b, T* scratch) noexcept {
  // Row factor first while the b lanes fill fewer than four 64-byte registers (measured: 172 x 4 to
  // 172 x 32 gain 1.2-3x on AVX-512 and AVX2, 172 x 64 loses 1.2x; docs/performance.md).
  const bool row_factor_first = b * sizeof(T) < 256 && a > b;
  for (std::size_t i = 0; i < rows; ++i) {
    T* row = x + i * row_stride;
    if (row_factor_first) {
      // W^T = X^T R1: w^T_q = sum_p X[p][q] R1[p] (coefficient of output q, term p: row[p b + q]);
      // eight outputs per pass so R1 (a x a, often beyond L1) streams b / 8 times per row.
      combine_rows<T, Arch, 8>(combine_args<T>{scratch, a, row, b, 1, r1, r1_stride, a}, b, a);
      // Y = W R2: y_s = sum_q W^T[q][s] R2[q] (coefficient of output s, term q: scratch[q a + s]).
      combine_rows<T, Arch>(combine_args<T>{row, b, scratch, a, 1, r2, r2_stride, b}, a, b);
      continue;
    }
    // Z = X R2: z_p = sum_u X[p][u] R2[u] (coefficient of output p, term u: row[p b + u]).
    combine_rows<T, Arch>(combine_args<T>{scratch, b, row, 1, b, r2, r2_stride, b}, a, b);
    // Y = R1^T Z: y_s = sum_p R1[p][s] z_p (coefficient of output s, term p: r1[p r1_stride + s]).
    combine_rows<T, Arch>(combine_args<T>{row, b, r1, r1_stride, 1, scratch, b, a}, a, b);
  }
}

template <class Arch>
struct kronecker_kernel {
  /// Rows x + i row_stride (i < rows, length a b) <- row (R1 (x) R2); scratch: a b elements.
  static void apply_rows(float* x, std::size_t rows, std::size_t row_stride, const float* r1,
                         std::size_t r1_stride, std::size_t a, const float* r2,
                         std::size_t r2_stride, std::size_t b, float* scratch) noexcept;
  static void apply_rows(double* x, std::size_t rows, std::size_t row_stride, const double* r1,
                         std::size_t r1_stride, std::size_t a, const double* r2,
                         std::size_t r2_stride, std::size_t b, double* scratch) noexcept;
};

template <class Arch>
void kronecker_kernel<Arch>::apply_rows(float* x, std::size_t rows, std::size_t row_stride,
                                        const float* r1, std::size_t r1_stride, std::size_t a,
                                        const float* r2, std::size_t r2_stride, std::size_t b,
                                        float* scratch) noexcept {
  kronecker_rows_impl<float, Arch>(x, rows, row_stride, r1, r1_stride, a, r2, r2_stride, b, scratch);
}
template <class Arch>
void kronecker_kernel<Arch>::apply_rows(double* x, std::size_t rows, std::size_t row_stride,
                                        const double* r1, std::size_t r1_stride, std::size_t a,
                                        const double* r2, std::size_t r2_stride, std::size_t b,
                                        double* scratch) noexcept {
  kronecker_rows_impl<double, Arch>(x, rows, row_stride, r1, r1_stride, a, r2, r2_stride, b, scratch);
}

SINGLEQUANT_EXTERN_KERNEL(kronecker_kernel)

}  // namespace detail
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_KRONECKER_KERNELS_HPP
