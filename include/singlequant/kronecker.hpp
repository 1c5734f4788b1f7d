// TEMPORARY STUB (feature/core only): the promised API of issue 4's kronecker.hpp (plain loops).
// Deleted in favour of main's file when rebasing.
#ifndef SINGLEQUANT_KRONECKER_HPP
#define SINGLEQUANT_KRONECKER_HPP

#include <cstddef>
#include <optional>
#include <vector>

#include "config.hpp"
#include "hadamard.hpp"
#include "view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

template <class T>
void kronecker_apply(matrix_view<const T> r1, matrix_view<const T> r2, matrix_view<T> x) {
  const std::size_t a = r1.rows(), b = r2.rows();
  detail::check(x.cols() == a * b, "kronecker_apply", "size");
  std::vector<T> tmp(a * b), out(a * b);
  for (std::size_t r = 0; r < x.rows(); ++r) {
    T* v = x.row(r).data();
    // tmp = X R2 ; out = R1^T tmp
    for (std::size_t p = 0; p < a; ++p)
      for (std::size_t q2 = 0; q2 < b; ++q2) {
        T s = 0;
        for (std::size_t q = 0; q < b; ++q) s += v[p * b + q] * r2(q, q2);
        tmp[p * b + q2] = s;
      }
    for (std::size_t p2 = 0; p2 < a; ++p2)
      for (std::size_t q = 0; q < b; ++q) {
        T s = 0;
        for (std::size_t p = 0; p < a; ++p) s += r1(p, p2) * tmp[p * b + q];
        out[p2 * b + q] = s;
      }
    for (std::size_t e = 0; e < a * b; ++e) v[e] = out[e];
  }
}
struct kronecker_split { std::size_t a = 0, b = 0; };
inline std::optional<kronecker_split> hadamard_kronecker_split(std::size_t n) {
  if (!is_hadamard_order_supported(n) || n < 4) return std::nullopt;
  std::size_t k = 0;
  while ((std::size_t(1) << k) < n) ++k;
  const std::size_t a = std::size_t(1) << (k / 2);
  return kronecker_split{a, n / a};
}

SINGLEQUANT_END_NAMESPACE
#endif
