// singlequant/kronecker.hpp - apply a Kronecker product R_a (x) R_b of dense factors in n (a + b).
//
// Index convention (docs/method.md section 8): for n = a * b and the row-major reshape
// X[p][q] = x[p * b + q] (a rows p < a of b lanes q < b),
//     x (R_a (x) R_b) = vec(R_a^T X R_b),   (R_a (x) R_b)[p b + q][s b + t] = R_a[p][s] R_b[q][t],
// so the row factor R_a (a x a) mixes the a rows of b lanes and the lane factor R_b (b x b) acts
// inside every row.
#ifndef SINGLEQUANT_KRONECKER_HPP
#define SINGLEQUANT_KRONECKER_HPP

#include <cstddef>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "config.hpp"
#include "detail/hadamard_construction.hpp"
#include "detail/kronecker_kernels.hpp"
#include "hadamard.hpp"
#include "simd.hpp"
#include "view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// Every row of x (length n = a b) <- row (R_a (x) R_b), the row factor R_a a x a and the lane
/// factor R_b b x b (row-major views), in n (a + b) multiply-adds per row (see the file comment for
/// the index convention).
/// Error: a non-square factor, x.cols() != a b, or a factor overlapping x. NaN/Inf are not checked:
/// one spreads over its own row (the channels the dense factors mix), never into other rows.
/// Example: kronecker_apply<float>(r_a, r_b, matrix_view<float>(tokens, rows, 11008));  // 172 x 64
template <class T>
  requires float_or_double<T>
void kronecker_apply(matrix_view<const T> r_a, matrix_view<const T> r_b, matrix_view<T> x) {
  const std::size_t a = r_a.rows(), b = r_b.rows();
  detail::check(r_a.cols() == a, "kronecker_apply", "row factor R_a is ", r_a.rows(), " x ",
                r_a.cols(), ", not square");
  detail::check(r_b.cols() == b, "kronecker_apply", "lane factor R_b is ", r_b.rows(), " x ",
                r_b.cols(), ", not square");
  detail::check(x.cols() == a * b, "kronecker_apply", "row length ", x.cols(), " != ", a, " x ", b,
                " = ", a * b, " (", x.rows(), " rows)");
  const std::size_t x_span = x.mapping().required_span_size();
  detail::check(!detail::overlaps(r_a.data(), r_a.mapping().required_span_size(), x.data(), x_span) &&
                    !detail::overlaps(r_b.data(), r_b.mapping().required_span_size(), x.data(), x_span),
                "kronecker_apply", "a factor overlaps the data it transforms");
  if (x.rows() == 0 || a * b == 0) return;
  T* scratch = detail::thread_scratch<T>(a * b);
  detail::dispatch([&](auto arch) {
    detail::kronecker_kernel<decltype(arch)>::apply_rows(x.data(), x.rows(), x.row_stride(),
                                                         r_a.data(), r_a.row_stride(), a, r_b.data(),
                                                         r_b.row_stride(), b, scratch);
  });
}

/// One vector x <- x (R_a (x) R_b).
template <class T>
  requires float_or_double<T>
void kronecker_apply(matrix_view<const T> r_a, matrix_view<const T> r_b, vector_view<T> x) {
  kronecker_apply<T>(r_a, r_b, as_row_matrix(x));
}

/// A split n = a * b for a Kronecker transform with a Hadamard inside each factor.
struct kronecker_split {
  std::size_t a = 0, b = 0;
};

/// n = a * b with b a power of two (so the lane factor R_b can use the FWHT) and a a supported Hadamard
/// order, minimising the per-token cost a + b (ties: the larger a): 11008 -> 172 x 64,
/// 13824 -> 108 x 128, 4096 -> 64 x 64, 8192 -> 128 x 64. nullopt when n is not a supported order.
[[nodiscard]] inline std::optional<kronecker_split> hadamard_kronecker_split(std::size_t n) {
  if (n == 0) return std::nullopt;
  std::optional<kronecker_split> best;
  std::unordered_map<std::size_t, bool> memo;
  // b runs over the powers of two dividing n; stopping at n's lowest set bit also keeps b from
  // doubling past 2^63 to 0 (n % 0).
  const std::size_t largest_b = n & (~n + 1);
  for (std::size_t b = 1; b <= largest_b; b *= 2) {
    const std::size_t a = n / b;
    if (detail::order_supported(a, memo) &&
        (!best || a + b < best->a + best->b || (a + b == best->a + best->b && a > best->a)))
      best = kronecker_split{a, b};
    if (b == largest_b) break;
  }
  return best;
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_KRONECKER_HPP
