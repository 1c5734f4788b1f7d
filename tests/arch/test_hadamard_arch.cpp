#include <singlequant/detail/fwht_kernels.hpp>
#include <singlequant/detail/kronecker_kernels.hpp>
#include <singlequant/hadamard.hpp>
#include <singlequant/kronecker.hpp>

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

TEST_CASE_TEMPLATE("mix with compact table entries (plans for blocks shorter than an entry): SIMD equals the "
                   "scalar path bit for bit", T, float, double) {
  for (std::size_t k : {12u, 20u, 108u, 172u}) {
    const auto h = singlequant::detail::cached_hadamard(k);
    for (bool transpose : {false, true})
      for (std::size_t m : {1u, 2u, 4u, 8u, 16u, 32u})
        for (std::size_t g : {0u, 1u, 5u, 8u}) {  // 0: the cost model's group size
          const singlequant::detail::mix_schedule schedule(*h, k, transpose, sizeof(T), g, 0, m);
          REQUIRE(schedule.entry_elements * sizeof(T) == singlequant::detail::mix_entry_bytes_for(m, sizeof(T)));
          const auto plan = schedule.plan(k);
          std::vector<T> scratch(singlequant::detail::mix_scratch_elements<T>(
              k, schedule.group_size, schedule.chunk_groups, schedule.entry_elements));
          const auto x = sq_test::random_normal<T>(k * m, k + m + g);
          const auto signs = random_signs<T>(k * m, m);
          auto simd = x, scalar = x;
          hadamard_kernel<test_arch>::mix(simd.data(), m, plan, T(0.125), signs.data(), scratch.data(),
                                          x.data(), x.size());
          hadamard_kernel<scalar_arch>::mix(scalar.data(), m, plan, T(0.125), signs.data(), scratch.data(),
                                            nullptr, 0);
          INFO("K = " << k << " m = " << m << " g = " << schedule.group_size << " chunk_groups = "
                      << schedule.chunk_groups << " transpose " << transpose);
          CHECK(std::memcmp(simd.data(), scalar.data(), k * m * sizeof(T)) == 0);
          auto zeros = x;
          for (std::size_t i = 0; i < k * m; ++i) zeros[i] = i % 3 == 0 ? T(0) : i % 3 == 1 ? -T(0) : x[i];
          zeros[m + m / 2] = std::numeric_limits<T>::infinity();
          auto simd_zeros = zeros, scalar_zeros = zeros;
          hadamard_kernel<test_arch>::mix(simd_zeros.data(), m, plan, T(1), nullptr, scratch.data(), nullptr, 0);
          hadamard_kernel<scalar_arch>::mix(scalar_zeros.data(), m, plan, T(1), nullptr, scratch.data(), nullptr, 0);
          CHECK(std::memcmp(simd_zeros.data(), scalar_zeros.data(), k * m * sizeof(T)) == 0);
          // And the dense product y_r = sum_s H^(T)[s][r] z_s .* signs / 8, in double.
          double worst = 0;
          for (std::size_t r = 0; r < k; ++r)
            for (std::size_t q = 0; q < m; ++q) {
              double y = 0;
              for (std::size_t t = 0; t < k; ++t)
                y += (transpose ? (*h)[r * k + t] : (*h)[t * k + r]) * static_cast<double>(x[t * m + q]);
              y *= 0.125 * static_cast<double>(signs[r * m + q]);
              worst = std::max(worst, std::abs(y - static_cast<double>(simd[r * m + q])));
            }
          CHECK(worst < (sizeof(T) == 4 ? 1e-4 : 1e-12) * static_cast<double>(k));
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

// Both orders of the two products: lane factor first (b >= a or b wide) and row factor first
// (33 x 7 .. 172 x 4, with tails of every register width).
TEST_CASE_TEMPLATE("kronecker apply_rows: SIMD path equals the scalar path to rounding", T, float, double) {
  for (auto [a, b] : {std::pair<std::size_t, std::size_t>{3, 5}, {12, 64}, {7, 33}, {16, 16},
                        {33, 7}, {43, 12}, {21, 1}, {172, 4}}) {
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

// Rows shorter than a register, back to back (the K blocks of a K x 4 or K x 8 transform on
// AVX-512): several rows per register, still the scalar path's bits.
TEST_CASE_TEMPLATE("fwht_rows: contiguous rows shorter than a register equal the scalar path", T, float,
                   double) {
  for (std::size_t k = 0; k <= 4; ++k)
    for (std::size_t rows : {1u, 7u, 172u}) {
      const std::size_t n = std::size_t{1} << k;
      const auto x = sq_test::random_normal<T>(rows * n, 70 + k + rows);
      const auto signs = random_signs<T>(rows * n, 80 + k);
      for (int variant = 0; variant < 4; ++variant) {
        const std::size_t sign_stride = variant == 1 ? 0 : n;
        const T* in = variant == 0 || variant == 1 ? signs.data() : nullptr;
        const T* out = variant == 2 ? signs.data() : nullptr;
        auto simd = x, scalar = x;
        hadamard_kernel<test_arch>::fwht_rows(simd.data(), rows, n, k, T(0.5), in, out, sign_stride);
        hadamard_kernel<scalar_arch>::fwht_rows(scalar.data(), rows, n, k, T(0.5), in, out, sign_stride);
        INFO("n = " << n << " rows " << rows << " variant " << variant);
        CHECK(std::memcmp(simd.data(), scalar.data(), rows * n * sizeof(T)) == 0);
      }
    }
}

namespace {
// One row through the K x 2^k transform as hadamard_transform runs it: FWHT of the K blocks (with
// the signs d first), then the K x K product and the scale.
template <class Arch, class T>
void k_pow2_transform(T* row, std::size_t k, std::size_t m, const singlequant::detail::mix_plan& plan,
                      const T* d, T* scratch) {
  std::size_t log2_m = 0;
  while ((std::size_t{1} << log2_m) < m) ++log2_m;
  hadamard_kernel<Arch>::fwht_rows(row, k, m, log2_m, T(1), d, nullptr, m);
  hadamard_kernel<Arch>::mix(row, m, plan, T(1) / std::sqrt(T(k * m)), nullptr, scratch, nullptr, 0);
}
}  // namespace

// The widths LLMs use, whatever their power-of-two part (688 = 172 x 4 .. 28672 = 7 x 4096): the
// whole K x 2^k transform and the Kronecker product of the library's split on every ISA.
TEST_CASE_TEMPLATE("K x 2^k Hadamard and Kronecker at LLM widths: SIMD equals the scalar path", T, float,
                   double) {
  for (std::size_t n : {688u, 1376u, 2752u, 5504u, 11008u, 13824u, 5120u, 14336u, 28672u}) {
    const auto f = singlequant::detail::factor_base_pow2(n);
    REQUIRE(f.has_value());
    const std::size_t k = f->first, m = f->second;
    const auto x = sq_test::random_normal<T>(n, n);
    const auto d = random_signs<T>(n, n + 1);
    if (k > 1) {
      const auto h = singlequant::detail::cached_hadamard(k);
      for (bool transpose : {false, true})
        for (std::size_t block_length : {std::size_t{0}, m}) {  // m: the library's plan (hadamard.hpp)
          const singlequant::detail::mix_schedule schedule(*h, k, transpose, sizeof(T), 0, 0, block_length);
          const auto plan = schedule.plan(k);
          std::vector<T> scratch(singlequant::detail::mix_scratch_elements<T>(
              k, schedule.group_size, schedule.chunk_groups, schedule.entry_elements));
          auto simd = x, scalar = x;
          k_pow2_transform<test_arch>(simd.data(), k, m, plan, d.data(), scratch.data());
          k_pow2_transform<scalar_arch>(scalar.data(), k, m, plan, d.data(), scratch.data());
          INFO("n = " << n << " = " << k << " x " << m << " transpose " << transpose << " block_length "
                      << block_length);
          CHECK(std::memcmp(simd.data(), scalar.data(), n * sizeof(T)) == 0);
        }
    }
    const auto split = singlequant::hadamard_kronecker_split(n);
    REQUIRE(split.has_value());
    const std::size_t a = split->a, b = split->b;
    const auto r1 = sq_test::random_normal<T>(a * a, a), r2 = sq_test::random_normal<T>(b * b, b);
    std::vector<T> scratch(n);
    auto simd = x, scalar = x;
    kronecker_kernel<test_arch>::apply_rows(simd.data(), 1, n, r1.data(), a, a, r2.data(), b, b, scratch.data());
    kronecker_kernel<scalar_arch>::apply_rows(scalar.data(), 1, n, r1.data(), a, a, r2.data(), b, b,
                                              scratch.data());
    INFO("n = " << n << " = " << a << " (x) " << b);
    for (std::size_t i = 0; i < n; ++i)
      CHECK(std::fabs(double(simd[i]) - double(scalar[i])) <=
            1e-4 * (std::is_same_v<T, float> ? 1.0 : 1e-8) * double(a + b) * (1 + std::fabs(double(scalar[i]))));
#if XSIMD_WITH_AVX512F && XSIMD_WITH_AVX2 && XSIMD_WITH_FMA3_AVX2
    // Fused multiply-adds at every width: the AVX-512 kernel (narrow factors in 256- and 128-bit
    // registers) gives the AVX2 kernel's bits.
    if constexpr (std::is_base_of_v<xsimd::avx512f, test_arch>) {
      auto avx2 = x;
      kronecker_kernel<xsimd::fma3<xsimd::avx2>>::apply_rows(avx2.data(), 1, n, r1.data(), a, a, r2.data(), b, b,
                                                             scratch.data());
      CHECK(std::memcmp(simd.data(), avx2.data(), n * sizeof(T)) == 0);
    }
#endif
  }
}
