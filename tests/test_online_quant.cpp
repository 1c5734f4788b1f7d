#include <singlequant/online_quant.hpp>

#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "test_support.hpp"

namespace sq = singlequant;

namespace {
sq::site_transform hadamard_site(std::size_t n, std::uint64_t seed) {
  sq::transform_factor f;
  f.size = n;
  f.use_hadamard = true;
  f.hadamard.randomized = true;
  f.hadamard.seed = seed;
  f.rotations = sq::givens_sequence<double>(n);
  return sq::site_transform(std::move(f));
}
}  // namespace

TEST_CASE("transform_and_quantize: equals apply_rows then quantize_rows_fused, across blocks") {
  for (const std::size_t n : {64u, 1376u, 4096u})
    for (const auto grid : {sq::int4_grid::symmetric7, sq::int4_grid::full8}) {
      CAPTURE(n);
      const std::size_t rows = 2 * sq::online_block_rows(n) + 3;  // three blocks, the last partial
      const sq::site_transform r = hadamard_site(n, 4);
      auto x = sq_test::random_normal<float>(rows * n, 8);
      auto reference = x;
      r.apply_rows(sq::matrix_view<float>(reference.data(), rows, n));
      const auto expected = sq::quantize_rows_fused(sq::matrix_view<const float>(reference.data(), rows, n), 0.9, grid);
      const auto got = sq::transform_and_quantize(r, sq::matrix_view<float>(x.data(), rows, n), 0.9, grid);
      CHECK(std::memcmp(x.data(), reference.data(), x.size() * sizeof(float)) == 0);
      CHECK(std::equal(got.codes().begin(), got.codes().end(), expected.codes().begin()));
      CHECK(std::equal(got.scales().begin(), got.scales().end(), expected.scales().begin()));
    }
}

TEST_CASE("transform_and_quantize: bad input") {
  const sq::site_transform r = hadamard_site(64, 1);
  std::vector<float> x(3 * 64, 1.0f);
  SQ_CHECK_ERROR_CONTAINS(sq::transform_and_quantize(r, sq::matrix_view<float>(x.data(), 6, 32), 0.9, sq::int4_grid::full8),
                          "transform_and_quantize", "32 values", "64");
  sq::packed_int4 wrong(3, 64, sq::granularity::per_row, 0, sq::int4_grid::full8, false);
  SQ_CHECK_ERROR_CONTAINS(sq::transform_and_quantize(r, sq::matrix_view<float>(x.data(), 3, 64), 0.9, sq::int4_grid::symmetric7, wrong),
                          "transform_and_quantize", "out is 3 x 64");
  SQ_CHECK_ERROR_CONTAINS(sq::transform_and_quantize(r, sq::matrix_view<float>(x.data(), 3, 64), 1.5, sq::int4_grid::full8, wrong),
                          "transform_and_quantize", "clip ratio");
}
