#include <singlequant/givens.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "../test_support.hpp"
#include "arch_test.hpp"

namespace sq = singlequant;
using singlequant::detail::givens_kernel;
using singlequant::detail::rotation_span;
using sq_test::scalar_arch;
using sq_test::test_arch;

namespace {

/// `count` stages; dense ones pair up a random half-or-more of the channels, sparse ones a few.
template <class T>
std::vector<std::vector<sq::givens<T>>> random_stages(std::size_t cols, std::size_t count, bool dense,
                                                      std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> angle(-3.1, 3.1);
  std::vector<std::vector<sq::givens<T>>> stages;
  for (std::size_t s = 0; s < count; ++s) {
    std::vector<std::size_t> channels(cols);
    for (std::size_t k = 0; k < cols; ++k) channels[k] = k;
    std::shuffle(channels.begin(), channels.end(), rng);
    const std::size_t pairs = dense ? cols / 2 : std::min<std::size_t>(3, cols / 2);
    std::vector<sq::givens<T>> stage;
    for (std::size_t p = 0; p < pairs; ++p)
      stage.push_back(sq::givens<T>::from_angle(channels[2 * p], channels[2 * p + 1], angle(rng)));
    stages.push_back(std::move(stage));
  }
  return stages;
}

template <class T, class U>
void check_tiled_against_scalar(std::size_t rows, std::size_t cols, std::size_t stride, std::size_t stage_count,
                                bool dense, bool inverse, std::uint64_t seed) {
  const auto stages = random_stages<T>(cols, stage_count, dense, seed);
  std::vector<rotation_span<T>> spans;
  for (const auto& s : stages) spans.push_back({s.data(), s.size()});
  constexpr std::size_t tile = sq::detail::givens_block_cols<U>;  // data at every offset in a 64-byte line

  // Data at every misalignment within a 64-byte line (the plan aligns its blocks to it).
  const auto values = sq_test::random_normal<U>(rows * stride, seed + 1, 2.0);
  std::vector<U, xsimd::aligned_allocator<U, 64>> storage(values.size() + tile);
  U* data = storage.data() + seed % tile;
  std::copy(values.begin(), values.end(), data);
  const auto plan = sq::detail::make_tile_plan<T, U>(spans, inverse, cols, stride, data);
  CHECK(plan.misalignment == seed % tile);
  givens_kernel<U, test_arch>::apply_rows_tiled(spans.data(), spans.size(), inverse, plan.view(), data, rows, cols,
                                                stride);
  const std::vector<U> x(data, data + values.size());
  auto reference = values, direct = values;
  givens_kernel<U, scalar_arch>::apply_rows_direct(spans.data(), spans.size(), inverse, reference.data(), rows,
                                                   stride);
  givens_kernel<U, test_arch>::apply_rows_direct(spans.data(), spans.size(), inverse, direct.data(), rows, stride);
  CHECK(direct == reference);  // the same scalar code, compiled for this ISA

  // Same operations in the same order (FMA in both or in neither): bit-identical. The tolerance
  // check says how far off a mismatch is.
  CHECK_MESSAGE(x == reference, rows << " x " << cols << " (stride " << stride << "), " << stage_count
                                     << std::string(dense ? " dense" : " sparse") << " stages, inverse " << inverse);
  const double eps = std::numeric_limits<U>::epsilon();
  for (std::size_t r = 0; r < rows; ++r) {
    double norm = 0;
    for (std::size_t c = 0; c < cols; ++c) norm += double(reference[r * stride + c]) * double(reference[r * stride + c]);
    for (std::size_t c = 0; c < cols; ++c)
      REQUIRE(std::fabs(double(x[r * stride + c]) - double(reference[r * stride + c])) <=
              2.0 * double(stage_count) * eps * std::sqrt(norm));
  }
}

}  // namespace

TEST_CASE_TEMPLATE("givens: tiled SIMD path equals the scalar path (float data)", T, float, double) {
  std::uint64_t seed = 1;
  for (std::size_t rows : {16u, 17u, 35u, 64u})
    for (std::size_t cols : {2u, 16u, 37u, 64u, 130u})
      for (bool inverse : {false, true}) {
        check_tiled_against_scalar<T, float>(rows, cols, cols, 1, true, inverse, ++seed);
        check_tiled_against_scalar<T, float>(rows, cols, cols + 5, 3, true, inverse, ++seed);
        check_tiled_against_scalar<T, float>(rows, cols, cols + 16, 2, false, inverse, ++seed);
      }
}

TEST_CASE_TEMPLATE("givens: tiled SIMD path equals the scalar path on wide rows", T, float, double) {
  // More than 32 blocks (the kernel transposes the last tile out 32 blocks away from the next
  // one in) and row strides that are multiples of 4 KiB.
  std::uint64_t seed = 200;
  for (bool inverse : {false, true}) {
    check_tiled_against_scalar<T, float>(24, 1024, 1024, 1, true, inverse, ++seed);
    check_tiled_against_scalar<T, float>(19, 601, 608, 3, true, inverse, ++seed);
    check_tiled_against_scalar<T, double>(12, 512, 512, 2, true, inverse, ++seed);
  }
}

TEST_CASE_TEMPLATE("givens: tiled SIMD path equals the scalar path (double data)", T, float, double) {
  std::uint64_t seed = 100;
  for (std::size_t rows : {8u, 9u, 23u, 32u})
    for (std::size_t cols : {2u, 8u, 21u, 64u, 131u})
      for (bool inverse : {false, true}) {
        check_tiled_against_scalar<T, double>(rows, cols, cols, 1, true, inverse, ++seed);
        check_tiled_against_scalar<T, double>(rows, cols, cols + 3, 3, true, inverse, ++seed);
        check_tiled_against_scalar<T, double>(rows, cols, cols + 8, 2, false, inverse, ++seed);
      }
}

TEST_CASE_TEMPLATE("givens: tiled path bit-identical with signed zeros, Inf and exact angles", U, float, double) {
  // theta = 0 gives s = 0: s x_j is a signed zero, and -(s x_j) must keep its sign as in the scalar
  // path (0 - v would not); Inf times a zero is NaN in both paths.
  const std::size_t rows = 36, cols = 70;
  std::vector<sq::givens<U>> stage;  // channel k with k + 35: lines in different blocks
  for (std::size_t k = 0; k < cols / 2; ++k)
    stage.push_back(sq::givens<U>::from_angle(k, k + cols / 2, k % 3 == 0 ? 0.0 : k % 3 == 1 ? 1.5707963267948966 : 0.1 * double(k)));
  const rotation_span<U> span{stage.data(), stage.size()};
  std::vector<U> values(rows * cols);
  const U special[] = {U(0), -U(0), std::numeric_limits<U>::infinity(), -std::numeric_limits<U>::infinity(), U(1.5), -U(2)};
  for (std::size_t r = 0; r < rows; ++r)  // every (x_i, x_j) pair of specials meets every angle
    for (std::size_t c = 0; c < cols; ++c) values[r * cols + c] = special[c < cols / 2 ? r % 6 : (c + r / 6) % 6];
  for (bool inverse : {false, true}) {
    auto simd = values, scalar = values;
    const auto plan = sq::detail::make_tile_plan<U, U>(std::span(&span, 1), inverse, cols, cols, simd.data());
    givens_kernel<U, test_arch>::apply_rows_tiled(&span, 1, inverse, plan.view(), simd.data(), rows, cols, cols);
    givens_kernel<U, scalar_arch>::apply_rows_direct(&span, 1, inverse, scalar.data(), rows, cols);
    std::size_t mismatches = 0;  // bitwise, except the sign and payload of a NaN (compilers fold -(s b) into fmsub or not)
    for (std::size_t k = 0; k < values.size(); ++k)
      if (std::memcmp(&simd[k], &scalar[k], sizeof(U)) != 0 && !(std::isnan(simd[k]) && std::isnan(scalar[k]))) ++mismatches;
    CHECK(mismatches == 0);
  }
}

TEST_CASE("givens: the public entry points agree with the scalar path on this ISA") {
  const std::size_t dim = 96, rows = 40;
  sq::givens_sequence<double> seq(dim);
  for (const auto& stage : random_stages<double>(dim, 4, true, 9)) seq.push_back_stage(sq::givens_stage<double>(stage));
  auto x = sq_test::random_normal<float>(rows * dim, 3);
  auto reference = x;
  seq.apply_rows(sq::matrix_view<float>(x.data(), rows, dim));
  std::vector<rotation_span<double>> spans;
  for (const auto& stage : seq.stages()) spans.push_back({stage.rotations().data(), stage.size()});
  givens_kernel<float, scalar_arch>::apply_rows_direct(spans.data(), spans.size(), false, reference.data(), rows,
                                                       dim);
  for (std::size_t k = 0; k < x.size(); ++k) CHECK(std::fabs(x[k] - reference[k]) <= 1e-5f);
}
