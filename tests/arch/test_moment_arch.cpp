#include <singlequant/detail/moment_kernels.hpp>

#include <cstring>
#include <vector>

#include "../test_support.hpp"
#include "arch_test.hpp"

using singlequant::detail::moment_kernel;
using sq_test::scalar_arch;
using sq_test::test_arch;

namespace {
bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}
}  // namespace

TEST_CASE("moment kernels: every SIMD path gives the scalar path's bits") {
  for (std::size_t cols : {1u, 7u, 8u, 17u, 45u}) {
    const std::size_t rows = 13, stride = cols + 3, m = 11;
    const auto x = sq_test::random_normal<double>(rows * stride, 5 + cols, 2.0);
    const auto w = sq_test::random_normal<double>(rows * m * 3, 7 + cols);
    std::vector<double> peak_s(cols, 0.5), s2_s(cols, 1.0), s4_s(cols, 2.0);
    auto peak_v = peak_s, s2_v = s2_s, s4_v = s4_s;
    moment_kernel<scalar_arch>::channel_sums(x.data(), rows, cols, stride, peak_s.data(), s2_s.data(), s4_s.data());
    moment_kernel<test_arch>::channel_sums(x.data(), rows, cols, stride, peak_v.data(), s2_v.data(), s4_v.data());
    CHECK(same_bits(peak_s, peak_v));
    CHECK(same_bits(s2_s, s2_v));
    CHECK(same_bits(s4_s, s4_v));
    for (std::size_t k_begin : {std::size_t(0), cols / 2}) {
      const std::size_t out_stride = cols + 1;
      std::vector<double> o31_s(m * out_stride, 0.25), o22_s = o31_s, o13_s = o31_s, o11_s = o31_s;
      auto o31_v = o31_s, o22_v = o22_s, o13_v = o13_s, o11_v = o11_s;
      const double* w3 = w.data();
      const double* w2 = w.data() + rows * m;
      const double* w1 = w.data() + 2 * rows * m;
      moment_kernel<scalar_arch>::cross_fourth(x.data(), rows, cols, stride, 8, k_begin, w3, w2, w1, m, m,
                                               o31_s.data(), o22_s.data(), o13_s.data(), out_stride);
      moment_kernel<test_arch>::cross_fourth(x.data(), rows, cols, stride, 8, k_begin, w3, w2, w1, m, m,
                                             o31_v.data(), o22_v.data(), o13_v.data(), out_stride);
      moment_kernel<scalar_arch>::cross_second(x.data(), rows, cols, stride, 8, k_begin, w1, m, m, o11_s.data(), out_stride);
      moment_kernel<test_arch>::cross_second(x.data(), rows, cols, stride, 8, k_begin, w1, m, m, o11_v.data(), out_stride);
      CHECK(same_bits(o31_s, o31_v));
      CHECK(same_bits(o22_s, o22_v));
      CHECK(same_bits(o13_s, o13_v));
      CHECK(same_bits(o11_s, o11_v));
      // And against a plain reference (to rounding).
      for (std::size_t c = 0; c < m; ++c)
        for (std::size_t k = k_begin; k < cols; ++k) {
          double r31 = 0.25, r22 = 0.25, r13 = 0.25;
          for (std::size_t t = 0; t < rows; ++t) {
            const double y = x[t * stride + k];
            r31 += w3[t * m + c] * y;
            r22 += w2[t * m + c] * y * y;
            r13 += w1[t * m + c] * y * y * y;
          }
          CHECK(sq_test::close(o31_s[c * out_stride + k], r31, 1e-12));
          CHECK(sq_test::close(o22_s[c * out_stride + k], r22, 1e-12));
          CHECK(sq_test::close(o13_s[c * out_stride + k], r13, 1e-12));
        }
    }
  }
}

#include <singlequant/urt.hpp>

#include "../synthetic_layer.hpp"

TEST_CASE("urt greedy: every ISA path builds the same rotations, bit for bit") {
  namespace sq = singlequant;
  const std::size_t n = 45, tokens = 70;
  const sq_test::llm_like_activations gen(n, 81);
  const auto x = gen.draw(tokens, 82);
  for (auto weighting : {sq::token_weighting::unit_norm, sq::token_weighting::raw}) {
    sq::activation_stats stats(n);
    stats.accumulate(sq::matrix_view<const double>(x, tokens, n));
    sq::urt_options options;
    options.weighting = weighting;
    const sq::givens_sequence<double> none(n);
    const auto a = sq::detail::build_urt_on<test_arch>(stats, nullptr, none, options);
    const auto b = sq::detail::build_urt_on<scalar_arch>(stats, nullptr, none, options);
    REQUIRE(a.rotations.stages().size() == b.rotations.stages().size());
    CHECK(a.rotations.rotation_count() > 0);
    sq_test::check_same_rotations(a.rotations, b.rotations);
  }
}
