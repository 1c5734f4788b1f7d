#include <singlequant/detail/fwht_kernels.hpp>
#include <singlequant/detail/kronecker_kernels.hpp>
#include <singlequant/hadamard.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <algorithm>
#include <vector>

#include "../test_support.hpp"
#include "arch_test.hpp"

using singlequant::detail::hadamard_kernel;
using singlequant::detail::kronecker_kernel;
using sq_test::scalar_arch;
using sq_test::test_arch;

namespace {
template <class T>
std::vector<T> random_signs(std::size_t n, std::uint64_t seed) {
  auto v = sq_test::random_normal<T>(n, seed);
  for (auto& x : v) x = x < 0 ? T(-1) : T(1);
  return v;
}
}  // namespace

// The butterfly levels run in the same order on every path, so the SIMD FWHT is bit-identical to the
// scalar one (including the cache-blocked sizes 2^14.. and the two-level blocking of 2^18..).
TEST_CASE_TEMPLATE("fwht: SIMD path equals the scalar path bit for bit", T, float, double) {
  for (std::size_t k = 0; k <= 20; k += (k < 14 ? 1 : 3)) {
    const std::size_t n = std::size_t{1} << k;
    const auto x = sq_test::random_normal<T>(n, k);
    const auto in_signs = random_signs<T>(n, 50 + k), out_signs = random_signs<T>(n, 90 + k);
    for (int variant = 0; variant < 3; ++variant) {
      const T* in = variant == 1 ? in_signs.data() : nullptr;
      const T* out = variant == 2 ? out_signs.data() : nullptr;
      const T scale = variant == 0 ? T(1) : T(0.25);
      auto simd = x, scalar = x;
      hadamard_kernel<test_arch>::fwht(simd.data(), k, scale, in, out);
      hadamard_kernel<scalar_arch>::fwht(scalar.data(), k, scale, in, out);
      INFO("n = " << n << " variant " << variant);
      CHECK(std::memcmp(simd.data(), scalar.data(), n * sizeof(T)) == 0);
    }
  }
}

TEST_CASE_TEMPLATE("fwht_rows: SIMD path equals the scalar path bit for bit", T, float, double) {
  // Rows of 2^10.. floats take the path that prefetches the next row while transforming this one.
  for (std::size_t k : {0u, 3u, 4u, 6u, 9u, 10u, 12u, 13u}) {
    const std::size_t n = std::size_t{1} << k, rows = 7, stride = n + 5;
    const auto x = sq_test::random_normal<T>(rows * stride, 7 + k);
    const auto signs = random_signs<T>(rows * n, 8 + k);
    for (int variant = 0; variant < 4; ++variant) {
      const std::size_t sign_stride = variant == 1 ? 0 : n;
      const T* in = variant == 0 || variant == 1 ? signs.data() : nullptr;
      const T* out = variant == 2 ? signs.data() : nullptr;  // variant 3: no signs at all
      auto simd = x, scalar = x;
      hadamard_kernel<test_arch>::fwht_rows(simd.data(), rows, stride, k, T(0.5), in, out, sign_stride);
      hadamard_kernel<scalar_arch>::fwht_rows(scalar.data(), rows, stride, k, T(0.5), in, out, sign_stride);
      INFO("n = " << n << " variant " << variant);
      CHECK(simd == scalar);
    }
  }
}

TEST_CASE_TEMPLATE("mix (the +-1 block product): SIMD path equals the scalar path bit for bit", T, float,
                   double) {
  for (std::size_t k : {12u, 20u, 28u, 108u, 172u}) {
    const auto h = singlequant::detail::cached_hadamard(k);
    for (bool transpose : {false, true}) {
      const singlequant::detail::mix_schedule schedule(*h, k, transpose, sizeof(T));
      const auto plan = schedule.plan(k);
      std::vector<T> scratch(
          singlequant::detail::mix_scratch_elements<T>(k, schedule.group_size, schedule.chunk_groups));
      for (std::size_t m : {1u, 4u, 8u, 16u, 32u, 64u, 128u}) {
        const auto x = sq_test::random_normal<T>(k * m, k + m);
        const auto signs = random_signs<T>(k * m, m);
        auto simd = x, scalar = x;
        // With a prefetch range (the next block of a batch), which must not change the result.
        hadamard_kernel<test_arch>::mix(simd.data(), m, plan, T(0.125), signs.data(), scratch.data(),
                                        x.data(), x.size());
        hadamard_kernel<scalar_arch>::mix(scalar.data(), m, plan, T(0.125), signs.data(), scratch.data(),
                                          nullptr, 0);
        INFO("K = " << k << " m = " << m << " transpose " << transpose);
        CHECK(std::memcmp(simd.data(), scalar.data(), k * m * sizeof(T)) == 0);
        // Signed zeros (the tables' negated half must be an exact sign flip on every path) and an
        // infinity: still bit for bit.
        auto zeros = x;
        for (std::size_t i = 0; i < k * m; ++i) zeros[i] = i % 3 == 0 ? T(0) : i % 3 == 1 ? -T(0) : x[i];
        zeros[m + m / 2] = std::numeric_limits<T>::infinity();
        auto simd_zeros = zeros, scalar_zeros = zeros;
        hadamard_kernel<test_arch>::mix(simd_zeros.data(), m, plan, T(1), nullptr, scratch.data(), nullptr, 0);
        hadamard_kernel<scalar_arch>::mix(scalar_zeros.data(), m, plan, T(1), nullptr, scratch.data(), nullptr, 0);
        CHECK(std::memcmp(simd_zeros.data(), scalar_zeros.data(), k * m * sizeof(T)) == 0);
        std::fill(zeros.begin(), zeros.end(), T(0));
        simd_zeros = zeros;
        scalar_zeros = zeros;
        hadamard_kernel<test_arch>::mix(simd_zeros.data(), m, plan, T(1), nullptr, scratch.data(), nullptr, 0);
        hadamard_kernel<scalar_arch>::mix(scalar_zeros.data(), m, plan, T(1), nullptr, scratch.data(), nullptr, 0);
        CHECK(std::memcmp(simd_zeros.data(), scalar_zeros.data(), k * m * sizeof(T)) == 0);
      }
    }
  }
}

TEST_CASE_TEMPLATE("mix: every group size and chunk split gives the scalar path's result bit for bit", T,
                   float, double) {
  // The cost model picks g = 3..5 for the orders LLMs use; the other table builders (g = 1..8)
  // and one-table chunks must agree all the same.
  for (std::size_t k : {20u, 172u}) {
    const auto h = singlequant::detail::cached_hadamard(k);
    for (std::size_t g = 1; g <= 8; ++g)
      for (std::size_t chunk : {std::size_t{1}, std::size_t{0}}) {  // 0: the cost model's chunk
        const singlequant::detail::mix_schedule schedule(*h, k, false, sizeof(T), g, chunk);
        REQUIRE(schedule.group_size == g);
        const auto plan = schedule.plan(k);
        std::vector<T> scratch(
            singlequant::detail::mix_scratch_elements<T>(k, schedule.group_size, schedule.chunk_groups));
        for (std::size_t m : {1u, 16u, 64u}) {
          const auto x = sq_test::random_normal<T>(k * m, k + m + g);
          auto simd = x, scalar = x;
          hadamard_kernel<test_arch>::mix(simd.data(), m, plan, T(0.5), nullptr, scratch.data(), nullptr, 0);
          hadamard_kernel<scalar_arch>::mix(scalar.data(), m, plan, T(0.5), nullptr, scratch.data(), nullptr, 0);
          INFO("K = " << k << " g = " << g << " chunk_groups = " << schedule.chunk_groups << " m = " << m);
          CHECK(std::memcmp(simd.data(), scalar.data(), k * m * sizeof(T)) == 0);
          // And the dense product y_r = 0.5 sum_s H[s][r] z_s, in double.
          double worst = 0;
          for (std::size_t r = 0; r < k; ++r)
            for (std::size_t q = 0; q < m; ++q) {
              double y = 0;
              for (std::size_t t = 0; t < k; ++t) y += (*h)[t * k + r] * static_cast<double>(x[t * m + q]);
              worst = std::max(worst, std::abs(0.5 * y - static_cast<double>(simd[r * m + q])));
            }
          CHECK(worst <= 64 * static_cast<double>(std::numeric_limits<T>::epsilon()) * static_cast<double>(k));
        }
      }
  }
}

TEST_CASE_TEMPLATE("kronecker apply_rows: SIMD path equals the scalar path to rounding", T, float, double) {
  for (auto [a, b] : {std::pair<std::size_t, std::size_t>{3, 5}, {12, 64}, {7, 33}, {16, 16}}) {
    const auto r1 = sq_test::random_normal<T>(a * a, a), r2 = sq_test::random_normal<T>(b * b, b);
    const std::size_t rows = 3, n = a * b;
    const auto x = sq_test::random_normal<T>(rows * n, n);
    auto simd = x, scalar = x;
    std::vector<T> scratch(n);
    kronecker_kernel<test_arch>::apply_rows(simd.data(), rows, n, r1.data(), a, a, r2.data(), b, b,
                                            scratch.data());
    kronecker_kernel<scalar_arch>::apply_rows(scalar.data(), rows, n, r1.data(), a, a, r2.data(), b, b,
                                              scratch.data());
    for (std::size_t i = 0; i < rows * n; ++i)
      CHECK(std::fabs(double(simd[i]) - double(scalar[i])) <=
            1e-4 * (std::is_same_v<T, float> ? 1.0 : 1e-8) * double(a + b) * (1 + std::fabs(double(scalar[i]))));
  }
}
