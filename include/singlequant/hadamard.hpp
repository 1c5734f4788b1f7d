// TEMPORARY STUB (feature/core only): the promised API of issue 4's hadamard.hpp, powers of two only,
// so transform.hpp compiles before issue 4 lands. Deleted in favour of main's file when rebasing.
#ifndef SINGLEQUANT_HADAMARD_HPP
#define SINGLEQUANT_HADAMARD_HPP

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "config.hpp"
#include "view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

enum class normalization { none, orthonormal };
inline bool is_hadamard_order_supported(std::size_t n) { return n >= 1 && (n & (n - 1)) == 0; }
struct hadamard_factorization { std::size_t base = 1; std::size_t pow2 = 1; };
inline std::optional<hadamard_factorization> factor_hadamard_size(std::size_t n) {
  if (!is_hadamard_order_supported(n)) return std::nullopt;
  return hadamard_factorization{1, n};
}
struct hadamard_options { bool randomized = false; std::uint64_t seed = 0; std::size_t block_size = 0; };

template <class T>
class hadamard_transform {
 public:
  explicit hadamard_transform(std::size_t n, hadamard_options options = {}) : n_(n), options_(options) {
    detail::check(is_hadamard_order_supported(n), "hadamard_transform", "unsupported order ", n);
    block_ = options.block_size == 0 ? n : options.block_size;
    detail::check(is_hadamard_order_supported(block_) && n % block_ == 0, "hadamard_transform", "block");
    signs_.assign(n, T(1));
    std::uint64_t s = options.seed;
    if (options.randomized)
      for (auto& v : signs_) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        v = (s >> 63) ? T(-1) : T(1);
      }
  }
  std::size_t size() const { return n_; }
  void apply(vector_view<T> x) const {  // x <- x D H
    for (std::size_t i = 0; i < n_; ++i) x[i] *= signs_[i];
    fwht_blocks(x);
  }
  void apply_inverse(vector_view<T> x) const {  // x <- x H^T D
    fwht_blocks(x);
    for (std::size_t i = 0; i < n_; ++i) x[i] *= signs_[i];
  }
  void apply_rows(matrix_view<T> x) const { for (std::size_t r = 0; r < x.rows(); ++r) apply(x.row(r)); }
  void apply_rows_inverse(matrix_view<T> x) const {
    for (std::size_t r = 0; r < x.rows(); ++r) apply_inverse(x.row(r));
  }
  std::vector<double> to_dense() const {
    hadamard_transform<double> d(n_, options_);
    std::vector<double> m(n_ * n_, 0.0);
    for (std::size_t i = 0; i < n_; ++i) m[i * n_ + i] = 1;
    d.apply_rows(matrix_view<double>(m.data(), n_, n_));
    return m;
  }

 private:
  void fwht_blocks(vector_view<T> x) const {
    const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(block_)));
    for (std::size_t b0 = 0; b0 < n_; b0 += block_) {
      for (std::size_t h = 1; h < block_; h *= 2)
        for (std::size_t i = 0; i < block_; i += 2 * h)
          for (std::size_t j = i; j < i + h; ++j) {
            const T a = x[b0 + j], b = x[b0 + j + h];
            x[b0 + j] = a + b;
            x[b0 + j + h] = a - b;
          }
      for (std::size_t i = 0; i < block_; ++i) x[b0 + i] *= scale;
    }
  }
  std::size_t n_, block_ = 0;
  hadamard_options options_;
  std::vector<T> signs_;
};

SINGLEQUANT_END_NAMESPACE
#endif
