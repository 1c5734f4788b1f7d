// The README's code snippets, verbatim inside test cases, so what the README shows compiles and runs.
// (The Hadamard snippet lives in test_hadamard.cpp.) Keep these in sync when the README changes.
#include <singlequant/singlequant.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "test_support.hpp"

TEST_CASE("README: Using it") {
  std::vector<float> x = {3.f, -4.f};
  float peak = singlequant::absmax(x);            // 4
  float energy = singlequant::dot(x, x);          // 25
  CHECK(peak == 4.f);
  CHECK(energy == 25.f);
}

TEST_CASE("README: Givens rotations and closed-form angles") {
  namespace sq = singlequant;
  std::vector<float> column_i = {9.f, -8.f, 0.5f}, column_j = {0.1f, 0.3f, -0.2f};  // 3 tokens
  const auto step = sq::angles::l4_optimal(sq::angles::accumulate_pair_moments(column_i, column_j));
  sq::givens_sequence<double> g(4);                          // built in double, on 4 channels
  g.push_back(sq::givens<double>::from_angle(0, 3, step.theta));
  std::vector<float> token = {9.f, 1.f, 2.f, 0.1f};
  g.apply<float>(token);                                     // token <- token G (online, in float)
  std::vector<float> w(2 * 4, 0.5f);                         // 2 x 4 weights (out x in)
  g.fold_into_weights(sq::matrix_view<float>(w.data(), 2, 4));      // W <- W G: y = x W^T unchanged
  CHECK(step.decrease >= 0);
  // y = x W^T is unchanged: the original token against the original weights gives 0.5 * 12.1.
  double y = 0;
  for (std::size_t k = 0; k < 4; ++k) y += double(token[k]) * double(w[k]);
  CHECK(y == doctest::Approx(0.5 * 12.1).epsilon(1e-6));
}

TEST_CASE("README: INT4 quantisation") {
  namespace sq = singlequant;
  std::vector<float> w(256 * 512, 0.5f), x(4 * 512, -1.0f);
  // Weights: per output row (rows of W), symmetric -7..7, MSE clip search over 1.0 .. 0.5.
  sq::packed_int4 qw = sq::quantize(sq::matrix_view<const float>(w.data(), 256, 512),
                                    {.gran = sq::granularity::per_row, .mse_clip_search = true});
  // Activations, online: per token, clip 0.9, one read of each float.
  sq::quant_report report;
  sq::packed_int4 qx = sq::quantize_rows_fused(sq::matrix_view<const float>(x.data(), 4, 512),
                                               {.grid = sq::int4_grid::full8, .clip_ratio = 0.9}, &report);
  std::int32_t acc = sq::int4_dot(qx.row_codes(0), qw.row_codes(0), 512);  // scalar reference
  float y00 = static_cast<float>(acc) * qx.scales()[0] * qw.scales()[0];
  // Exact product is 512 * -0.5 = -256; INT4 of constant rows is exact up to the clip of x (0.9).
  CHECK(y00 == doctest::Approx(-256.0 * 0.9).epsilon(1e-5));
}

TEST_CASE("README: SingleQuant transforms") {
  namespace sq = singlequant;
  const std::size_t n = 64, tokens = 256, out_features = 32;
  std::vector<float> x(tokens * n, 0.5f), w(out_features * n, 0.25f);  // activations, weights (y = x W^T)
  x[3] = 40.f;                                                       // an outlier
  sq::transform_options options;        // Hadamard, then ART (l4), then URT (greedy l4, n/2 rotations)
  sq::calibrator cal(n, options);       // owns the Hadamard; statistics are kept in its basis
  cal.observe(sq::matrix_view<const float>(x, tokens, n));         // any number of batches; merge() threads
  sq::site_transform r = cal.build();   // R = H G_art G_urt (row-vector order: x H, then ART, then URT)
  r.fold_into_weights(sq::matrix_view<float>(w, out_features, n)); // offline: W <- W R, in double
  r.apply_rows(sq::matrix_view<float>(x, tokens, n));              // online: x <- x R; now x W^T is unchanged
  std::vector<std::uint8_t> blob = r.serialize();                  // store next to the weights
  sq::site_transform loaded = sq::site_transform::deserialize(blob); // validated (checksum, planes, angles)
  CHECK(loaded.serialize() == blob);
  // Row 0 of x W^T is the unrotated 0.25 * (63 * 0.5 + 40).
  double y00 = 0;
  for (std::size_t k = 0; k < n; ++k) y00 += double(x[k]) * double(w[k]);
  CHECK(y00 == doctest::Approx(0.25 * (63 * 0.5 + 40)).epsilon(1e-5));
}
