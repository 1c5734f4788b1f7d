// singlequant/detail/kronecker_kernels.hpp - x <- x (R1 (x) R2) for dense factors, row by row.
//
// With the row-major reshape X[p][q] = x[p b + q] (p < a, q < b): x (R1 (x) R2) = vec(R1^T X R2).
// Two small products per row, n (a + b) multiply-adds: Z = X R2 (row p of Z: z_p = sum_u X[p][u] R2[u])
// then Y = R1^T Z (y_s = sum_p R1[p][s] z_p), both as "coefficients times matrix rows" vectorised
// along the output row.
#ifndef SINGLEQUANT_DETAIL_KRONECKER_KERNELS_HPP
#define SINGLEQUANT_DETAIL_KRONECKER_KERNELS_HPP

#include <cstddef>

#include "simd_core.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail {

/// out[0..len) = sum_{u < count} coef[u * coef_stride] * rows[u * row_stride + 0..len).
template <class T, class Arch>
void combine_rows(T* out, const T* coef, std::size_t coef_stride, const T* rows,
                  std::size_t row_stride, std::size_t count, std::size_t len) noexcept {
  std::size_t v = 0;
  if constexpr (!simd::is_scalar_v<Arch>) {
    using batch = xsimd::batch<T, Arch>;
    constexpr std::size_t W = batch::size;
    for (; v + 4 * W <= len; v += 4 * W) {  // four registers of accumulators per coefficient load
      batch a0(T(0)), a1(T(0)), a2(T(0)), a3(T(0));
      for (std::size_t u = 0; u < count; ++u) {
        const batch c(coef[u * coef_stride]);
        const T* r = rows + u * row_stride + v;
        a0 = xsimd::fma(c, batch::load_unaligned(r), a0);
        a1 = xsimd::fma(c, batch::load_unaligned(r + W), a1);
        a2 = xsimd::fma(c, batch::load_unaligned(r + 2 * W), a2);
        a3 = xsimd::fma(c, batch::load_unaligned(r + 3 * W), a3);
      }
      a0.store_unaligned(out + v);
      a1.store_unaligned(out + v + W);
      a2.store_unaligned(out + v + 2 * W);
      a3.store_unaligned(out + v + 3 * W);
    }
    for (; v + W <= len; v += W) {
      batch a(T(0));
      for (std::size_t u = 0; u < count; ++u)
        a = xsimd::fma(batch(coef[u * coef_stride]), batch::load_unaligned(rows + u * row_stride + v), a);
      a.store_unaligned(out + v);
    }
  }
  for (; v < len; ++v) {
    T a = T(0);
    for (std::size_t u = 0; u < count; ++u) a += coef[u * coef_stride] * rows[u * row_stride + v];
    out[v] = a;
  }
}

template <class T, class Arch>
void kronecker_rows_impl(T* x, std::size_t rows, std::size_t row_stride, const T* r1,
                         std::size_t r1_stride, std::size_t a, const T* r2, std::size_t r2_stride,
                         std::size_t b, T* scratch) noexcept {
  for (std::size_t i = 0; i < rows; ++i) {
    T* row = x + i * row_stride;
    for (std::size_t p = 0; p < a; ++p)  // Z = X R2
      combine_rows<T, Arch>(scratch + p * b, row + p * b, 1, r2, r2_stride, b, b);
    for (std::size_t s = 0; s < a; ++s)  // Y = R1^T Z
      combine_rows<T, Arch>(row + s * b, r1 + s, r1_stride, scratch, b, a, b);
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
