#include <singlequant/int4_gemm.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "../int4_gemm_support.hpp"
#include "../test_support.hpp"
#include "arch_test.hpp"

using singlequant::granularity;
using singlequant::int4_grid;
using singlequant::detail::int4_gemm_kernel;
using sq_test::scalar_arch;
using sq_test::test_arch;

namespace {

// y of kernel K over the whole problem (one call, or one call per row and per panel: the split a
// thread team makes must not change any bit).
template <class Arch>
std::vector<float> run_kernel(const singlequant::packed_int4& a, const singlequant::int4_gemm_weights& w,
                              bool allow_vnni, bool split) {
  singlequant::detail::int4_gemm_activations act;
  singlequant::detail::prepare_int4_activations(a, w, act);
  singlequant::detail::int4_gemm_problem p;
  w.fill_problem(p);
  p.a = act.codes.data();
  p.lda = act.lda;
  p.a_corr = act.corr.data();
  p.a_scales = act.scales.data();
  std::vector<float> y(a.rows() * w.rows(), -1.0f);
  p.y = y.data();
  p.ldy = w.rows();
  p.m = a.rows();
  p.allow_vnni = allow_vnni;
  if (!split) {
    int4_gemm_kernel<Arch>::run(p, 0, p.m, 0, w.panels());
  } else {
    for (std::size_t i = 0; i < p.m; ++i)
      for (std::size_t q = 0; q < w.panels(); ++q) int4_gemm_kernel<Arch>::run(p, i, i + 1, q, q + 1);
  }
  return y;
}

void check_shape(std::size_t m, std::size_t n, std::size_t k, granularity gran, std::size_t group, int4_grid grid,
                 std::uint64_t seed) {
  CAPTURE(m);
  CAPTURE(n);
  CAPTURE(k);
  CAPTURE(group);
  for (int scale_kind : {0, 1, 2}) {
    CAPTURE(scale_kind);
    const auto a = sq_test::random_int4(m, k, granularity::per_row, 0, grid, scale_kind, seed);
    const auto wq = sq_test::random_int4(n, k, gran, group, grid, scale_kind, seed + 1);
    const singlequant::int4_gemm_weights w(wq);
    std::vector<double> magnitude;
    const auto expected = sq_test::int4_reference(a, wq, &magnitude);
    const double groups = static_cast<double>(w.groups());
    const auto scalar = run_kernel<scalar_arch>(a, w, true, false);
    for (const bool vnni : {false, true}) {
      if (vnni && !int4_gemm_kernel<test_arch>::uses_vnni()) continue;
      CAPTURE(vnni);
      const auto simd = run_kernel<test_arch>(a, w, vnni, false);
      const auto split = run_kernel<test_arch>(a, w, vnni, true);
      CHECK(std::memcmp(simd.data(), split.data(), simd.size() * sizeof(float)) == 0);
      for (std::size_t i = 0; i < simd.size(); ++i) {
        if (scale_kind < 2) {
          // Integer sums times powers of two: every path is exact (int32 sums, exact float folds).
          REQUIRE(static_cast<double>(simd[i]) == expected[i]);
          REQUIRE(static_cast<double>(scalar[i]) == expected[i]);
        } else {
          // Float folds of exact int32 sums: one rounding per group and two more (cvt, the final
          // scale), each at most 2^-24 of the sum of |terms|; 1e-6 (G + 3) covers them.
          const double bound = 1e-6 * (groups + 3) * magnitude[i] + 1e-30;
          REQUIRE(std::abs(static_cast<double>(simd[i]) - static_cast<double>(scalar[i])) <= 2 * bound);
          REQUIRE(std::abs(static_cast<double>(scalar[i]) - expected[i]) <= bound);
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("int4_gemm kernel: exact int32 sums and the scalar path, per-row weights, odd shapes") {
  std::uint64_t seed = 1;
  for (const int4_grid grid : {int4_grid::symmetric7, int4_grid::full8})
    for (std::size_t m : {1u, 2u, 3u, 5u, 6u, 7u, 8u, 13u, 17u})
      for (std::size_t n : {1u, 15u, 16u, 17u, 70u})
        for (std::size_t k : {1u, 7u, 8u, 33u, 64u, 257u}) check_shape(m, n, k, granularity::per_row, 0, grid, seed++);
}

TEST_CASE("int4_gemm kernel: per-group weights, group sizes 32..128") {
  std::uint64_t seed = 100;
  for (const int4_grid grid : {int4_grid::symmetric7, int4_grid::full8})
    for (std::size_t group : {32u, 40u, 64u, 100u, 128u})
      for (std::size_t groups : {1u, 3u})
        for (std::size_t m : {1u, 4u, 9u})
          for (std::size_t n : {1u, 16u, 50u}) check_shape(m, n, group * groups, granularity::per_group, group, grid, seed++);
}

TEST_CASE("int4_gemm kernel: extreme codes do not saturate (all -8 activations times all 7 / -8 weights)") {
  const std::size_t m = 5, n = 33, k = 4096;
  for (const int wcode : {-8, 7}) {
    singlequant::packed_int4 a(m, k, granularity::per_row, 0, int4_grid::full8, false);
    singlequant::packed_int4 wq(n, k, granularity::per_row, 0, int4_grid::full8, false);
    std::vector<std::int8_t> ra(k, -8), rw(k, static_cast<std::int8_t>(wcode));
    for (std::size_t i = 0; i < m; ++i) singlequant::pack_int4(ra, a.row_codes(i));
    for (std::size_t j = 0; j < n; ++j) singlequant::pack_int4(rw, wq.row_codes(j));
    for (auto& s : a.scales()) s = 1.0f;
    for (auto& s : wq.scales()) s = 1.0f;
    const singlequant::int4_gemm_weights w(wq);
    for (const bool vnni : {false, true}) {
      if (vnni && !int4_gemm_kernel<test_arch>::uses_vnni()) continue;
      for (const float v : run_kernel<test_arch>(a, w, vnni, false)) REQUIRE(v == static_cast<float>(-8 * wcode * static_cast<int>(k)));
    }
  }
}
