// singlequant/detail/dense_kernels.hpp - dense multiply-add tiles: the second-moment matrix
// H = X^T X, the Cholesky factorisation of H and GPTQ's error feedback are all made of them.
//
// multiply_add forms each output's sum over the depth in one accumulator, in depth order, with a
// fused multiply-add on ISAs that have one (a product then an add, kept apart, on the others), and
// adds it to the output once. The SIMD body, its column tail and the scalar row tail do the same
// operations, so an output's bits depend on its inputs and the ISA only, never on how the callers
// cut the outputs into tiles or tasks: the threaded callers are deterministic for any thread count.
#ifndef SINGLEQUANT_DETAIL_DENSE_KERNELS_HPP
#define SINGLEQUANT_DETAIL_DENSE_KERNELS_HPP

#include <cmath>
#include <cstddef>
#include <type_traits>

#include "arch/generic.hpp"
#include "moment_kernels.hpp"
#include "simd_core.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail {

/// True when simd::fused_fma is one hardware instruction on Arch (then the scalar tails use std::fma).
template <class Arch>
constexpr bool dense_has_fma() noexcept {
  if constexpr (simd::is_scalar_v<Arch>) {
    return false;
  } else {
    return arch::has_fma(Arch{});
  }
}

/// a * b + c as the SIMD body of Arch computes it (one rounding with FMA, two without).
template <class T, class Arch>
SINGLEQUANT_INLINE T fused_multiply_add(T a, T b, T c) noexcept {
  if constexpr (dense_has_fma<Arch>()) {
    return std::fma(a, b, c);
  } else {
    T product = a * b;
    arch::no_contract<Arch>(product);
    return product + c;
  }
}

/// Register tile rows of multiply_add (8 x two batches fills half of AVX-512's 32 registers).
template <class Arch>
constexpr std::size_t dense_tile_rows() noexcept {
  if constexpr (simd::is_scalar_v<Arch>) {
    return 4;
  } else if constexpr (arch::vector_registers(Arch{}) >= 32) {
    return 8;
  } else {
    return 4;
  }
}

/// One scalar output: c +- sum_k a[k * lda] b[k * ldb].
template <class T, class Arch>
SINGLEQUANT_INLINE void dense_scalar_output(const T* a, std::size_t lda, const T* b, std::size_t ldb,
                                            std::size_t depth, T* c, bool subtract) noexcept {
  T acc = 0;
  for (std::size_t k = 0; k < depth; ++k) acc = fused_multiply_add<T, Arch>(a[k * lda], b[k * ldb], acc);
  *c = subtract ? *c - acc : *c + acc;
}

/// Rows x cols outputs, Rows known at compile time (see dense_kernel::multiply_add).
template <class T, class Arch, std::size_t Rows>
void dense_tile(const T* a, std::size_t lda, const T* b, std::size_t ldb, std::size_t depth, T* c,
                std::size_t ldc, std::size_t cols, bool subtract) noexcept {
  std::size_t j = 0;
  if constexpr (!simd::is_scalar_v<Arch>) {
    using batch = xsimd::batch<T, Arch>;
    constexpr std::size_t lanes = batch::size;
    for (; j + 2 * lanes <= cols; j += 2 * lanes) {
      batch low[Rows], high[Rows];
      SINGLEQUANT_UNROLL
      for (std::size_t r = 0; r < Rows; ++r) low[r] = high[r] = batch(T(0));
      for (std::size_t k = 0; k < depth; ++k) {
        const T* bk = b + k * ldb + j;
        const batch b0 = batch::load_unaligned(bk), b1 = batch::load_unaligned(bk + lanes);
        const T* ak = a + k * lda;
        SINGLEQUANT_UNROLL
        for (std::size_t r = 0; r < Rows; ++r) {
          const batch ar(ak[r]);
          low[r] = simd::fused_fma(ar, b0, low[r]);
          high[r] = simd::fused_fma(ar, b1, high[r]);
        }
      }
      SINGLEQUANT_UNROLL
      for (std::size_t r = 0; r < Rows; ++r) {
        T* cr = c + r * ldc + j;
        const batch c0 = batch::load_unaligned(cr), c1 = batch::load_unaligned(cr + lanes);
        (subtract ? c0 - low[r] : c0 + low[r]).store_unaligned(cr);
        (subtract ? c1 - high[r] : c1 + high[r]).store_unaligned(cr + lanes);
      }
    }
    if (j + lanes <= cols) {
      batch acc[Rows];
      SINGLEQUANT_UNROLL
      for (std::size_t r = 0; r < Rows; ++r) acc[r] = batch(T(0));
      for (std::size_t k = 0; k < depth; ++k) {
        const batch bk = batch::load_unaligned(b + k * ldb + j);
        const T* ak = a + k * lda;
        SINGLEQUANT_UNROLL
        for (std::size_t r = 0; r < Rows; ++r) acc[r] = simd::fused_fma(batch(ak[r]), bk, acc[r]);
      }
      SINGLEQUANT_UNROLL
      for (std::size_t r = 0; r < Rows; ++r) {
        T* cr = c + r * ldc + j;
        const batch c0 = batch::load_unaligned(cr);
        (subtract ? c0 - acc[r] : c0 + acc[r]).store_unaligned(cr);
      }
      j += lanes;
    }
  }
  for (; j < cols; ++j)
    for (std::size_t r = 0; r < Rows; ++r)
      dense_scalar_output<T, Arch>(a + r, lda, b + j, ldb, depth, c + r * ldc + j, subtract);
}

template <class T, class Arch, std::size_t Rows>
void dense_tail_rows(std::size_t count, const T* a, std::size_t lda, const T* b, std::size_t ldb,
                     std::size_t depth, T* c, std::size_t ldc, std::size_t cols, bool subtract) noexcept {
  if constexpr (Rows > 0) {
    if (count == Rows) {
      dense_tile<T, Arch, Rows>(a, lda, b, ldb, depth, c, ldc, cols, subtract);
    } else {
      dense_tail_rows<T, Arch, Rows - 1>(count, a, lda, b, ldb, depth, c, ldc, cols, subtract);
    }
  }
}

/// Dense kernels (T float or double).
template <class T, class Arch>
struct dense_kernel {
  /// c[r ldc + j] <- c[r ldc + j] +- sum_{k < depth} a[k lda + r] b[k ldb + j] for r < rows,
  /// j < cols (- when subtract): C +-= A^T B with A (depth x rows) and B (depth x cols) row-major.
  /// Columns are swept in panels of two batches, each panel over every row tile, so the panel of B
  /// stays in L1 while A's rows stream; callers block rows and columns for the outer caches.
  static void multiply_add(const T* a, std::size_t lda, const T* b, std::size_t ldb, std::size_t depth,
                           T* c, std::size_t ldc, std::size_t rows, std::size_t cols,
                           bool subtract) noexcept;
  /// y[j] <- fused_multiply_add(alpha, x[j], y[j]) for j < n.
  static void axpy(T alpha, const T* x, T* y, std::size_t n) noexcept;
};

template <class T, class Arch>
void dense_kernel<T, Arch>::multiply_add(const T* a, std::size_t lda, const T* b, std::size_t ldb,
                                         std::size_t depth, T* c, std::size_t ldc, std::size_t rows,
                                         std::size_t cols, bool subtract) noexcept {
  constexpr std::size_t tile_rows = dense_tile_rows<Arch>();
  std::size_t panel = 8;
  if constexpr (!simd::is_scalar_v<Arch>) panel = 2 * xsimd::batch<T, Arch>::size;
  for (std::size_t j0 = 0; j0 < cols; j0 += panel) {
    const std::size_t width = cols - j0 < panel ? cols - j0 : panel;
    std::size_t r0 = 0;
    for (; r0 + tile_rows <= rows; r0 += tile_rows)
      dense_tile<T, Arch, tile_rows>(a + r0, lda, b + j0, ldb, depth, c + r0 * ldc + j0, ldc, width,
                                     subtract);
    if (r0 < rows)
      dense_tail_rows<T, Arch, tile_rows - 1>(rows - r0, a + r0, lda, b + j0, ldb, depth,
                                              c + r0 * ldc + j0, ldc, width, subtract);
  }
}

template <class T, class Arch>
void dense_kernel<T, Arch>::axpy(T alpha, const T* x, T* y, std::size_t n) noexcept {
  std::size_t j = 0;
  if constexpr (!simd::is_scalar_v<Arch>) {
    using batch = xsimd::batch<T, Arch>;
    constexpr std::size_t lanes = batch::size;
    const batch scale(alpha);
    for (; j + lanes <= n; j += lanes)
      simd::fused_fma(scale, batch::load_unaligned(x + j), batch::load_unaligned(y + j)).store_unaligned(y + j);
  }
  for (; j < n; ++j) y[j] = fused_multiply_add<T, Arch>(alpha, x[j], y[j]);
}

SINGLEQUANT_EXTERN_KERNEL(dense_kernel, float)
SINGLEQUANT_EXTERN_KERNEL(dense_kernel, double)

}  // namespace detail
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_DENSE_KERNELS_HPP
