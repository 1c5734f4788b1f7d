// Quantisers, dequantisation, error metrics and the fused per-token kernel, against independent
// references (a plain scalar quantiser written here, transposition, brute-force clip search).
#include <singlequant/interop/ggml.hpp>
#include <singlequant/quant.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "test_support.hpp"

namespace sq = singlequant;

namespace {
constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();
constexpr float inf_f = std::numeric_limits<float>::infinity();

/// Reference per-row symmetric quantiser, written from the documented formulas with library
/// rounding (std::nearbyint) rather than the kernels' arithmetic.
struct reference_row {
  float scale = 0;
  std::vector<int> codes;
};
reference_row reference_symmetric(const std::vector<float>& x, double clip, sq::int4_grid grid) {
  reference_row r;
  double hi = 0, lo = 0;
  for (float v : x)
    if (std::isfinite(v)) {
      hi = std::max(hi, static_cast<double>(v));
      lo = std::min(lo, static_cast<double>(v));
    }
  const int qmin = grid == sq::int4_grid::full8 ? -8 : -7;
  double s = grid == sq::int4_grid::full8 ? clip * (hi > -lo ? hi : lo) / -8.0 : clip * std::max(hi, -lo) / 7.0;
  r.scale = static_cast<float>(s);
  if (std::fabs(r.scale) < std::numeric_limits<float>::min()) r.scale = 0;
  const float inv = r.scale == 0 ? 0.0f : 1.0f / r.scale;
  for (float v : x) {
    const float y = v * inv;
    int q = 0;
    if (!std::isnan(y)) q = static_cast<int>(std::nearbyint(std::clamp(y, static_cast<float>(qmin), 7.0f)));
    r.codes.push_back(q);
  }
  return r;
}

template <class T>
sq::matrix_view<const T> view(const std::vector<T>& v, std::size_t rows, std::size_t cols) {
  return sq::matrix_view<const T>(v.data(), rows, cols);
}
}  // namespace

TEST_CASE("quantize: per-row symmetric codes and scales equal the reference quantiser") {
  for (const auto grid : {sq::int4_grid::symmetric7, sq::int4_grid::full8})
    for (const double clip : {1.0, 0.9, 0.6}) {
      const std::size_t rows = 5, cols = 37;
      auto x = sq_test::random_normal<float>(rows * cols, 7, 2.0);
      x[3] = 25.0f;  // a positive outlier: full8 gets a negative scale in row 0
      const auto q = sq::quantize(view(x, rows, cols), {.grid = grid, .clip_ratio = clip});
      CHECK(q.gran() == sq::granularity::per_row);
      for (std::size_t i = 0; i < rows; ++i) {
        const std::vector<float> row(x.begin() + static_cast<std::ptrdiff_t>(i * cols),
                                     x.begin() + static_cast<std::ptrdiff_t>((i + 1) * cols));
        const auto ref = reference_symmetric(row, clip, grid);
        CHECK(q.scales()[i] == ref.scale);
        for (std::size_t j = 0; j < cols; ++j) REQUIRE(q.code(i, j) == ref.codes[j]);
      }
      if (grid == sq::int4_grid::full8) {
        CHECK(q.scales()[0] < 0);
        CHECK(q.code(0, 3) == -8);  // the signed extreme lands on -8 (clip 1) or is clamped there
      }
    }
}

TEST_CASE_TEMPLATE("quantize: round trip error <= |scale| / 2 inside the clip range (property)", T, float, double) {
  std::mt19937_64 rng(2024);
  for (int trial = 0; trial < 60; ++trial) {
    const std::size_t group = std::vector<std::size_t>{1, 2, 3, 5, 8, 32}[rng() % 6];
    const std::size_t rows = 1 + rng() % 6, cols = group * (1 + rng() % 9);
    const auto gran = static_cast<sq::granularity>(rng() % 4);
    const sq::quant_options cfg{.grid = rng() % 2 ? sq::int4_grid::full8 : sq::int4_grid::symmetric7,
                               .gran = gran,
                               .group_size = group,
                               .clip_ratio = rng() % 2 ? 1.0 : 0.75,
                               .asymmetric = rng() % 3 == 0,
                               .mse_clip_search = rng() % 4 == 0};
    auto x = sq_test::random_normal<T>(rows * cols, rng(), 3.0);
    if (rng() % 2) for (auto& v : x) v = std::fabs(v);  // one-signed data exercises the zero point
    const auto q = sq::quantize(view(x, rows, cols), cfg);
    std::vector<T> y(rows * cols);
    sq::dequantize(q, sq::matrix_view<T>(y.data(), rows, cols));
    const int qmin = sq::grid_min(cfg.grid), qmax = sq::grid_max(cfg.grid);
    for (std::size_t i = 0; i < rows; ++i)
      for (std::size_t j = 0; j < cols; ++j) {
        const double s = q.scale(i, j), z = q.zero_point(i, j), v = static_cast<double>(x[i * cols + j]);
        const int code = q.code(i, j);
        REQUIRE(code >= qmin);
        REQUIRE(code <= qmax);
        CHECK(y[i * cols + j] == static_cast<T>(code - q.zero_point(i, j)) * static_cast<T>(q.scale(i, j)));
        if (s == 0) continue;
        const double u = v / s + z;  // the unclamped code
        if (u >= qmin - 0.5 && u <= qmax + 0.5)
          REQUIRE(std::fabs(v - static_cast<double>(y[i * cols + j])) <= std::fabs(s) * (0.5 + 1e-5));
      }
  }
}

TEST_CASE("quantize: per_column equals per_row of the transpose; per_tensor uses the global absmax") {
  const std::size_t rows = 6, cols = 9;
  const auto x = sq_test::random_normal<float>(rows * cols, 17);
  std::vector<float> xt(rows * cols);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) xt[j * rows + i] = x[i * cols + j];
  for (const bool asymmetric : {false, true})
    for (const bool search : {false, true}) {
      const sq::quant_options col{.gran = sq::granularity::per_column, .asymmetric = asymmetric, .mse_clip_search = search};
      const sq::quant_options row{.gran = sq::granularity::per_row, .asymmetric = asymmetric, .mse_clip_search = search};
      const auto qc = sq::quantize(view(x, rows, cols), col);
      const auto qr = sq::quantize(view(xt, cols, rows), row);
      for (std::size_t j = 0; j < cols; ++j) {
        CHECK(qc.scales()[j] == qr.scales()[j]);
        if (asymmetric) CHECK(qc.zero_points()[j] == qr.zero_points()[j]);
        for (std::size_t i = 0; i < rows; ++i) REQUIRE(qc.code(i, j) == qr.code(j, i));
      }
    }
  const auto qt = sq::quantize(view(x, rows, cols), {.gran = sq::granularity::per_tensor});
  float absmax = 0;
  for (float v : x) absmax = std::max(absmax, std::fabs(v));
  CHECK(qt.scale_count() == 1);
  CHECK(qt.scales()[0] == static_cast<float>(static_cast<double>(absmax) / 7.0));
}

TEST_CASE("quantize: per_group scales each group separately, odd group sizes included") {
  const std::size_t rows = 3, cols = 15;
  const auto x = sq_test::random_normal<float>(rows * cols, 5);
  const auto q = sq::quantize(view(x, rows, cols), {.gran = sq::granularity::per_group, .group_size = 5});
  CHECK(q.scale_count() == 9);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t g = 0; g < 3; ++g) {
      const std::vector<float> part(x.begin() + static_cast<std::ptrdiff_t>(i * cols + 5 * g),
                                    x.begin() + static_cast<std::ptrdiff_t>(i * cols + 5 * g + 5));
      const auto ref = reference_symmetric(part, 1.0, sq::int4_grid::symmetric7);
      CHECK(q.scales()[i * 3 + g] == ref.scale);
      for (std::size_t k = 0; k < 5; ++k) CHECK(q.code(i, 5 * g + k) == ref.codes[k]);
    }
}

TEST_CASE("quantize: asymmetric grid keeps 0 exact and spans [min(x, 0), max(x, 0)]") {
  std::vector<float> x = {0.0f, 1.0f, 2.0f, 3.0f, 4.5f, 0.25f};
  const auto q = sq::quantize(view(x, 1, 6), {.grid = sq::int4_grid::full8, .asymmetric = true});
  CHECK(q.scales()[0] == static_cast<float>(4.5 / 15));
  CHECK(q.zero_points()[0] == -8);  // all >= 0: zero sits at the bottom of the grid
  CHECK(q.code(0, 0) == -8);
  CHECK(q.code(0, 4) == 7);
  std::vector<float> y(6);
  sq::dequantize(q, sq::matrix_view<float>(y.data(), 1, 6));
  CHECK(y[0] == 0.0f);
  std::vector<float> mixed = {-1.0f, 0.0f, 3.0f};
  const auto m = sq::quantize(view(mixed, 1, 3), {.grid = sq::int4_grid::symmetric7, .asymmetric = true});
  sq::dequantize(m, sq::matrix_view<float>(y.data(), 1, 3));
  CHECK(y[1] == 0.0f);
  CHECK(std::fabs(y[2] - 3.0f) <= m.scales()[0] / 2);
}

TEST_CASE("quantize: NaN -> zero code, Inf -> extreme code, neither enters the scale; counted") {
  std::vector<float> x = {1.0f, nan_f, -3.5f, inf_f, -inf_f, 2.0f,   // row 0
                          0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,        // all zero
                          nan_f, nan_f, nan_f, nan_f, nan_f, nan_f,  // all NaN
                          inf_f, 0.0f, -inf_f, nan_f, 0.0f, 0.0f};   // only non-finite and zeros
  for (const auto grid : {sq::int4_grid::symmetric7, sq::int4_grid::full8}) {
    sq::quant_report report;
    const auto q = sq::quantize(view(x, 4, 6), {.grid = grid}, &report);
    CHECK(report.nan_count == 8);
    CHECK(report.inf_count == 4);
    CHECK(report.zero_scale_count == 3);
    CHECK(report.scale_count == 4);
    const float s = q.scales()[0];
    CHECK(std::fabs(s) == (grid == sq::int4_grid::full8 ? 3.5f / 8 : 3.5f / 7));
    CHECK(q.code(0, 1) == 0);
    CHECK(static_cast<float>(q.code(0, 3)) * s > 3.0f);   // +Inf: the extreme code of its sign
    CHECK(static_cast<float>(q.code(0, 4)) * s < -3.0f);
    std::vector<float> y(24, 42.0f);
    sq::dequantize(q, sq::matrix_view<float>(y.data(), 4, 6));
    for (std::size_t k = 6; k < 24; ++k) CHECK(y[k] == 0.0f);  // zero-scale rows: exact zeros
    for (std::size_t k = 6; k < 24; ++k) CHECK(q.code(k / 6, k % 6) == 0);
    CHECK(y[1] == 0.0f);
    // The fused kernel agrees byte for byte, and reports the same counts.
    sq::quant_report fused_report;
    const auto f = sq::quantize_rows_fused(view(x, 4, 6), 1.0, grid, &fused_report);
    CHECK(std::equal(f.codes().begin(), f.codes().end(), q.codes().begin()));
    CHECK(std::equal(f.scales().begin(), f.scales().end(), q.scales().begin()));
    CHECK(fused_report.nan_count == 8);
    CHECK(fused_report.inf_count == 4);
    CHECK(fused_report.zero_scale_count == 3);
  }
  // Double input: finite values beyond the float range count as infinities.
  std::vector<double> d = {1.0, 1e300, -2.0, 0.5};
  sq::quant_report report;
  const auto qd = sq::quantize(view(d, 1, 4), {}, &report);
  CHECK(report.inf_count == 1);
  CHECK(qd.scales()[0] == static_cast<float>(2.0 / 7));
  CHECK(qd.code(0, 1) == 7);
}

TEST_CASE("issue 14 - quantize: a scale below the smallest normal float is raised to it, not zeroed") {
  constexpr float smallest_normal = std::numeric_limits<float>::min();
  // Before: any row with absmax below ~8e-38 got scale 0 (README: only rows with no finite non-zero
  // value do). Now the scale is floored at FLT_MIN and the codes follow from it.
  std::vector<float> x = {5e-38f, -8e-38f, 0.0f, 1e-39f};
  sq::quant_report report;
  const auto q = sq::quantize(view(x, 1, 4), {}, &report);
  CHECK(q.scales()[0] == smallest_normal);
  CHECK(report.zero_scale_count == 0);
  CHECK(q.code(0, 0) == 4);   // rne(5e-38 / 2^-126) = rne(4.25)
  CHECK(q.code(0, 1) == -7);  // rne(-6.8)
  CHECK(q.code(0, 3) == 0);
  // full8: the extreme -8e-38 is negative, so the scale is positive (m / -8); the floor keeps the sign.
  const auto f = sq::quantize(view(x, 1, 4), {.grid = sq::int4_grid::full8});
  CHECK(f.scales()[0] == smallest_normal);
  std::vector<float> positive = {8e-38f, 1e-38f};
  const auto p = sq::quantize(view(positive, 1, 2), {.grid = sq::int4_grid::full8});
  CHECK(p.scales()[0] == -smallest_normal);
  CHECK(p.code(0, 0) == -7);  // rne(8e-38 / -2^-126) = rne(-6.8)
  // The fused per-token path agrees byte for byte.
  const auto fused = sq::quantize_rows_fused(view(x, 1, 4), 1.0, sq::int4_grid::symmetric7);
  CHECK(fused.scales()[0] == smallest_normal);
  CHECK(std::equal(fused.codes().begin(), fused.codes().end(), q.codes().begin()));
  // Only a row with no finite non-zero value gets scale 0.
  std::vector<float> zeros = {0.0f, -0.0f, nan_f};
  CHECK(sq::quantize(view(zeros, 1, 3), {}).scales()[0] == 0.0f);
}

TEST_CASE("quantize_rows_fused: the same bytes as quantize per_row, any shape") {
  for (const std::size_t cols : {1u, 2u, 15u, 64u, 127u, 128u, 129u, 300u, 4096u})
    for (const auto grid : {sq::int4_grid::symmetric7, sq::int4_grid::full8})
      for (const double clip : {1.0, 0.9}) {
        const std::size_t rows = 3;
        auto x = sq_test::random_normal<float>(rows * cols, cols, 1.5);
        if (cols > 10) x[cols + 7] = nan_f;  // row 1 takes the robust path
        const auto f = sq::quantize_rows_fused(view(x, rows, cols), clip, grid);
        const auto q = sq::quantize(view(x, rows, cols), {.grid = grid, .clip_ratio = clip});
        REQUIRE(f.codes().size() == q.codes().size());
        CHECK(std::equal(f.codes().begin(), f.codes().end(), q.codes().begin()));
        CHECK(std::equal(f.scales().begin(), f.scales().end(), q.scales().begin()));
        for (std::size_t i = 0; i < rows; ++i) {
          const std::vector<float> row(x.begin() + static_cast<std::ptrdiff_t>(i * cols),
                                       x.begin() + static_cast<std::ptrdiff_t>((i + 1) * cols));
          const auto ref = reference_symmetric(row, clip, grid);
          CHECK(f.scales()[i] == ref.scale);
          for (std::size_t j = 0; j < cols; ++j) REQUIRE(f.code(i, j) == ref.codes[j]);
        }
      }
  // Strided input and a raw destination with the documented row layout.
  std::vector<float> padded(4 * 10, 1.0f);
  for (std::size_t i = 0; i < 4; ++i)
    for (std::size_t j = 0; j < 7; ++j) padded[i * 10 + j] = static_cast<float>(i) - static_cast<float>(j);
  std::vector<std::uint8_t> codes(4 * 4);
  std::vector<float> scales(4);
  sq::quantize_rows_fused(sq::matrix_view<const float>(padded.data(), 4, 7, 10), codes, scales, 1.0,
                          sq::int4_grid::symmetric7);
  CHECK(scales[0] == 6.0f / 7);
  CHECK(codes[3] == 0x09);  // row 0: element 6 = -6 -> code -7 (0x9), zero high nibble
}

TEST_CASE("quantize_rows_fused: a destination too small is an error before anything is written") {
  std::vector<float> x(3 * 5, 1.0f);
  std::vector<std::uint8_t> codes(8, 0xAB);
  std::vector<float> scales(3, -1.0f);
  SQ_CHECK_ERROR_CONTAINS(sq::quantize_rows_fused(view(x, 3, 5), codes, scales, 1.0, sq::int4_grid::full8),
                          "quantize_rows_fused", "codes_out has 8 bytes", "need 9");
  std::vector<float> few(2, -1.0f);
  std::vector<std::uint8_t> enough(9, 0xAB);
  SQ_CHECK_ERROR_CONTAINS(sq::quantize_rows_fused(view(x, 3, 5), enough, few, 1.0, sq::int4_grid::full8),
                          "quantize_rows_fused", "scales_out has 2");
  SQ_CHECK_ERROR_CONTAINS(sq::quantize_rows_fused(view(x, 3, 5), enough, scales, 0.0, sq::int4_grid::full8),
                          "quantize_rows_fused", "clip ratio 0");
  CHECK(codes == std::vector<std::uint8_t>(8, 0xAB));
  CHECK(enough == std::vector<std::uint8_t>(9, 0xAB));
  CHECK(scales == std::vector<float>(3, -1.0f));
}

TEST_CASE("quantize: configuration errors") {
  std::vector<float> x(2 * 10, 1.0f);
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::quantize(view(x, 2, 10), {.gran = sq::granularity::per_group, .group_size = 4})),
                          "quantize", "group size 4 does not divide the row length 10");
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::quantize(view(x, 2, 10), {.gran = sq::granularity::per_group})),
                          "quantize", "group size 0");
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::quantize(view(x, 2, 10), {.clip_ratio = 1.5})), "quantize",
                          "clip ratio 1.5");
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::quantize(view(x, 2, 10), {.mse_clip_search = true, .clip_search_step = 0})),
                          "quantize", "clip search");
  const auto q = sq::quantize(view(x, 2, 10), {});
  std::vector<float> y(2 * 9, 5.0f);
  SQ_CHECK_ERROR_CONTAINS(sq::dequantize(q, sq::matrix_view<float>(y.data(), 2, 9)), "dequantize",
                          "destination is 2 x 9, tensor is 2 x 10");
  CHECK(y == std::vector<float>(18, 5.0f));
  SQ_CHECK_ERROR_CONTAINS(sq::fake_quantize<float>(view(x, 2, 10), sq::matrix_view<float>(y.data(), 2, 9), {}),
                          "fake_quantize", "destination is 2 x 9");
}

TEST_CASE("MSE clip search picks the best candidate (brute force over fixed clip ratios)") {
  const std::size_t rows = 6, cols = 64;
  auto x = sq_test::random_normal<float>(rows * cols, 99);
  for (std::size_t i = 0; i < rows; ++i) x[i * cols + i] = 12.0f;  // an outlier per row: clipping pays
  for (const bool asymmetric : {false, true}) {
    sq::quant_report report;
    const sq::quant_options cfg{.grid = sq::int4_grid::full8, .asymmetric = asymmetric, .mse_clip_search = true};
    std::vector<float> searched(rows * cols);
    sq::fake_quantize<float>(view(x, rows, cols), sq::matrix_view<float>(searched.data(), rows, cols), cfg, &report);
    CHECK(report.scale_count == rows);
    CHECK(report.mean_clip_ratio() < 1.0);
    for (std::size_t i = 0; i < rows; ++i) {
      const auto row = view(x, rows, cols).row_block(i, 1);
      double best = std::numeric_limits<double>::infinity();
      for (int k = 0; k <= 50; ++k) {
        std::vector<float> y(cols);
        sq::fake_quantize<float>(row, sq::matrix_view<float>(y.data(), 1, cols),
                                 {.grid = cfg.grid, .clip_ratio = 1.0 - 0.01 * k, .asymmetric = asymmetric});
        best = std::min(best, sq::mse(row, sq::matrix_view<const float>(y.data(), 1, cols)));
      }
      const double found = sq::mse(row, sq::matrix_view<const float>(searched.data() + i * cols, 1, cols));
      CHECK(found <= best * (1 + 1e-5));
    }
  }
}

TEST_CASE("fake_quantize: in place equals dequantize(quantize(x))") {
  auto x = sq_test::random_normal<double>(4 * 32, 3);
  const sq::quant_options cfg{.gran = sq::granularity::per_group, .group_size = 8, .clip_ratio = 0.9};
  const auto q = sq::quantize(view(x, 4, 32), cfg);
  std::vector<double> expected(x.size());
  sq::dequantize(q, sq::matrix_view<double>(expected.data(), 4, 32));
  sq::fake_quantize(sq::matrix_view<double>(x.data(), 4, 32), sq::matrix_view<double>(x.data(), 4, 32), cfg);
  CHECK(x == expected);
}

TEST_CASE("mse and sqnr_db: closed forms and the documented edge cases") {
  const std::vector<double> ref = {1, 2, 3, 4}, approx = {1, 2, 3, 3};
  CHECK(sq::mse(view(ref, 2, 2), view(approx, 2, 2)) == doctest::Approx(0.25));
  CHECK(sq::sqnr_db(view(ref, 2, 2), view(approx, 2, 2)) == doctest::Approx(10 * std::log10(30.0)));
  CHECK(sq::sqnr_db(view(ref, 2, 2), view(ref, 2, 2)) == std::numeric_limits<double>::infinity());
  const std::vector<double> zeros(4, 0.0);
  CHECK(sq::sqnr_db(view(zeros, 2, 2), view(zeros, 2, 2)) == std::numeric_limits<double>::infinity());
  CHECK(sq::mse(view(zeros, 0, 0), view(zeros, 0, 0)) == 0.0);
  // Issue 14: an all-zero reference with noise has no SQNR (before: -Inf), and a NaN or Inf element
  // is an error (before: NaN), so that neither averages into a table silently.
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::sqnr_db(view(zeros, 2, 2), view(ref, 2, 2))), "sqnr_db",
                          "reference is all zero", "undefined");
  for (const double bad : {std::nan(""), std::numeric_limits<double>::infinity()}) {
    const std::vector<double> with_bad = {1, bad, 3, 4};
    SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::sqnr_db(view(ref, 2, 2), view(with_bad, 2, 2))), "sqnr_db",
                            "not finite");
    SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::sqnr_db(view(with_bad, 2, 2), view(ref, 2, 2))), "sqnr_db",
                            "not finite");
    SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::mse(view(ref, 2, 2), view(with_bad, 2, 2))), "mse", "NaN or Inf");
  }
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::mse(view(ref, 2, 2), view(ref, 1, 4))), "mse", "shapes differ");
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::sqnr_db(view(ref, 2, 2), view(ref, 4, 1))), "sqnr_db",
                          "shapes differ");
  // Quantisation noise of a uniform grid: SQNR of 4-bit per-row RTN on Gaussian data is ~20 dB.
  const auto x = sq_test::random_normal<float>(64 * 256, 8);
  std::vector<float> y(x.size());
  sq::fake_quantize<float>(view(x, 64, 256), sq::matrix_view<float>(y.data(), 64, 256), {});
  const double db = sq::sqnr_db(view(x, 64, 256), view(y, 64, 256));
  CHECK(db > 15.0);
  CHECK(db < 25.0);
}

TEST_CASE("int4_dot on quantised rows equals the integer dot of the unpacked codes") {
  const auto a = sq_test::random_normal<float>(2 * 99, 1), b = sq_test::random_normal<float>(2 * 99, 2);
  const auto qa = sq::quantize_rows_fused(view(a, 2, 99), 0.9, sq::int4_grid::full8);
  const auto qb = sq::quantize_rows_fused(view(b, 2, 99), 0.9, sq::int4_grid::full8);
  const auto ca = qa.unpack(), cb = qb.unpack();
  std::int32_t expected = 0;
  for (std::size_t k = 0; k < 99; ++k) expected += ca[99 + k] * cb[k];
  CHECK(sq::int4_dot(qa.row_codes(1), qb.row_codes(0), 99) == expected);
}

TEST_CASE("dequantize: large outputs (non-temporal stores) equal small-output results") {
  const std::size_t rows = 1100, cols = 1026;  // > 4 MiB of floats; odd row alignment in bytes
  const auto x = sq_test::random_normal<float>(rows * cols, 77);
  const auto q = sq::quantize_rows_fused(view(x, rows, cols), 1.0, sq::int4_grid::full8);
  std::vector<float> big(rows * cols);
  sq::dequantize(q, sq::matrix_view<float>(big.data(), rows, cols));
  for (std::size_t i = 0; i < rows; i += 97)
    for (std::size_t j = 0; j < cols; ++j) REQUIRE(big[i * cols + j] == q.value(i, j));
}

TEST_CASE("issue 14 - quantisers: out-of-range enum values are errors, not some other grid") {
  const auto x = sq_test::random_normal<float>(4 * 64, 9);
  // Before: grid 7 quantised as symmetric7, granularity 9 allocated 4 GB.
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::quantize(view(x, 4, 64), {.grid = static_cast<sq::int4_grid>(7)})),
                          "quantize", "grid has no enumerator of value 7");
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::quantize(view(x, 4, 64), {.gran = static_cast<sq::granularity>(9)})),
                          "quantize", "granularity has no enumerator of value 9");
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::quantize(view(x, 4, 64), {.gran = static_cast<sq::granularity>(-1)})),
                          "quantize", "granularity has no enumerator of value -1");
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::quantize_rows_fused(view(x, 4, 64), 1.0, static_cast<sq::int4_grid>(2))),
                          "quantize_rows_fused", "grid has no enumerator of value 2");
}

// quantize_q4_0 writes the blocks of to_q4_0(quantize(x, cfg)) directly: the same bytes for both
// grids, clip ratios and the clip search, rows with NaN / Inf / zero / tiny groups, the same report;
// and, element by element, u = code + 8 of the file's reference quantiser for a plain case.
TEST_CASE("quantize_q4_0: the blocks of to_q4_0(quantize), the same report") {
  for (const auto grid : {sq::int4_grid::symmetric7, sq::int4_grid::full8})
    for (const double clip : {1.0, 0.85})
      for (const bool mse : {false, true})
        for (const std::size_t cols : {std::size_t{32}, std::size_t{512}, std::size_t{1056}}) {
          const std::size_t rows = 5;
          auto x = sq_test::random_normal<float>(rows * cols, cols + (mse ? 1u : 0u), 3.0);
          x[7] = nan_f;
          x[cols + 40] = -inf_f;
          for (std::size_t k = 0; k < 32; ++k) {
            x[2 * cols + k] = 0.0f;
            if (cols > 32) x[2 * cols + 32 + k] = 1e-39f;
          }
          const sq::matrix_view<const float> xv(x.data(), rows, cols);
          const sq::quant_options cfg{.grid = grid, .gran = sq::granularity::per_group, .group_size = 32,
                                      .clip_ratio = clip, .mse_clip_search = mse};
          sq::quant_report ra, rb;
          const auto direct = sq::quantize_q4_0(xv, cfg, &ra);
          const auto expected = sq::to_q4_0(sq::quantize(xv, cfg, &rb));
          INFO("cols " << cols << " clip " << clip << " mse " << mse);
          REQUIRE(direct.size() == expected.size());
          CHECK(std::memcmp(direct.data(), expected.data(), direct.size() * sizeof(sq::q4_0_block)) == 0);
          CHECK(ra.nan_count == rb.nan_count);
          CHECK(ra.inf_count == rb.inf_count);
          CHECK(ra.zero_scale_count == rb.zero_scale_count);
          CHECK(ra.scale_count == rb.scale_count);
          CHECK(ra.clip_ratio_sum == rb.clip_ratio_sum);
        }
  const auto x = sq_test::random_normal<float>(4 * 1024, 9, 1.0);
  const auto blocks = sq::quantize_q4_0(sq::matrix_view<const float>(x.data(), 4, 1024));
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    const std::vector<float> group(x.begin() + static_cast<std::ptrdiff_t>(32 * b),
                                   x.begin() + static_cast<std::ptrdiff_t>(32 * b + 32));
    const reference_row r = reference_symmetric(group, 1.0, sq::int4_grid::full8);
    CHECK(blocks[b].d == sq::float_to_half_bits(r.scale));
    for (std::size_t j = 0; j < 16; ++j) {
      CHECK((blocks[b].qs[j] & 0xF) == r.codes[j] + 8);
      CHECK((blocks[b].qs[j] >> 4) == r.codes[j + 16] + 8);
    }
  }
}

TEST_CASE("quantize_q4_0: bad input") {
  const std::vector<float> x(2 * 64, 1.0f);
  const sq::matrix_view<const float> xv(x.data(), 2, 64);
  std::vector<sq::q4_0_block> out(4);
  SQ_CHECK_ERROR_CONTAINS(sq::quantize_q4_0(xv, out, {.gran = sq::granularity::per_row}), "quantize_q4_0",
                          "group size 32");
  SQ_CHECK_ERROR_CONTAINS(sq::quantize_q4_0(xv, out, {.gran = sq::granularity::per_group, .group_size = 64}),
                          "quantize_q4_0", "group size 64");
  SQ_CHECK_ERROR_CONTAINS(
      sq::quantize_q4_0(xv, out, {.gran = sq::granularity::per_group, .group_size = 32, .asymmetric = true}),
      "quantize_q4_0", "zero points");
  std::vector<sq::q4_0_block> short_out(3);
  SQ_CHECK_ERROR_CONTAINS(sq::quantize_q4_0(xv, short_out), "quantize_q4_0", "4 blocks");
  const std::vector<float> odd(48, 1.0f);
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::quantize_q4_0(sq::matrix_view<const float>(odd.data(), 1, 48))),
                          "quantize_q4_0", "48");
  std::vector<float> big(x);
  big[64 + 3] = 1e6f;  // row 1: scale 1e6 / 8 > 65504
  SQ_CHECK_ERROR_CONTAINS(sq::quantize_q4_0(sq::matrix_view<const float>(big.data(), 2, 64), out), "quantize_q4_0",
                          "fp16");
  CHECK(out[0].d == sq::float_to_half_bits(-0.125f));  // row 0 was written (documented)
  // The same in rows of 16 groups (AVX-512: one vector step, whose fp16 check fails for row 1).
  std::vector<float> wide(2 * 512, 1.0f);
  wide[512 + 300] = 1e6f;
  std::vector<sq::q4_0_block> wide_out(32);
  SQ_CHECK_ERROR_CONTAINS(sq::quantize_q4_0(sq::matrix_view<const float>(wide.data(), 2, 512), wide_out),
                          "quantize_q4_0", "fp16");
  for (std::size_t b = 0; b < 16; ++b) CHECK(wide_out[b].d == sq::float_to_half_bits(-0.125f));
  CHECK(sq::quantize_q4_0(sq::matrix_view<const float>(x.data(), 0, 64)).empty());
}

// choose_group screens double rows in float before the exact search (screen_clip_candidates): the
// chosen scale must be the one of the exhaustive exact search (every candidate's double error,
// first least wins), including near ties (fine search grids) and rows at the ends of the range.
TEST_CASE("quantize (double rows, MSE clip search): the float screen keeps the exhaustive search's choice") {
  using kernel = sq::detail::quant_kernel<sq::simd::scalar_arch>;
  std::mt19937_64 rng(1919);
  auto exhaustive = [](const std::vector<double>& row, const sq::quant_options& cfg) {
    const int qmin = sq::grid_min(cfg.grid), qmax = sq::grid_max(cfg.grid);
    double lo = 0, hi = 0;
    for (const double v : row) lo = std::min(lo, v), hi = std::max(hi, v);
    const std::vector<double> ratios = sq::detail::clip_candidates(cfg);
    sq::detail::quant_params best = sq::detail::make_params(lo, hi, ratios[0], qmin, qmax, cfg.asymmetric);
    double best_error = std::numeric_limits<double>::infinity();
    for (const double r : ratios) {
      const auto p = sq::detail::make_params(lo, hi, r, qmin, qmax, cfg.asymmetric);
      if (p.scale == 0.0f) continue;
      const double e = kernel::clip_error(row.data(), row.size(), 1.0 / static_cast<double>(p.scale), p.zero, qmin, qmax) *
                       (static_cast<double>(p.scale) * static_cast<double>(p.scale));
      if (e < best_error) best_error = e, best = p;
    }
    return best;
  };
  // 120 trials take ~50 s under the sanitizers (the exhaustive reference is n x 2001 clip errors per
  // row): there a third of them, every candidate spacing and width still drawn.
  const int trials = sq_test::sanitized_build ? 40 : 120;
  std::size_t rows_checked = 0;
  for (int trial = 0; trial < trials; ++trial) {
    const std::size_t n = std::vector<std::size_t>{64, 65, 100, 512, 1000, 5120}[rng() % 6];
    const int family = static_cast<int>(rng() % 7);
    std::vector<double> row = sq_test::random_normal<double>(n, rng(), 1.0);
    switch (family) {
      case 1: row[rng() % n] = 40.0; break;                          // one outlier
      case 2: for (auto& v : row) v = std::round(v * 3.0); break;    // on a grid: exact ties
      case 3: for (auto& v : row) v *= 1e-41; break;                 // below float's normal range
      case 4: for (auto& v : row) v *= 1e36; break;                  // near float's top
      case 5: for (auto& v : row) v = std::fabs(v); break;           // one-signed (zero points)
      case 6: std::fill(row.begin(), row.end(), 0.5); row[0] = 1.0; break;
      default: break;
    }
    sq::quant_options cfg{.grid = rng() % 2 ? sq::int4_grid::full8 : sq::int4_grid::symmetric7,
                          .asymmetric = rng() % 3 == 0, .mse_clip_search = true};
    if (trial % 3 == 1) cfg.clip_search_step = 0.001;                          // 501 close candidates
    if (trial % 3 == 2) cfg.clip_search_min = 0.8, cfg.clip_search_step = 0.0001;  // 2001 nearer ones
    const std::size_t rows = 2;
    std::vector<double> x(row);
    x.insert(x.end(), row.rbegin(), row.rend());
    sq::quant_report report;
    const auto q = sq::quantize(sq::matrix_view<const double>(x.data(), rows, n), cfg, &report);
    for (std::size_t i = 0; i < rows; ++i) {
      const std::vector<double> r(x.begin() + static_cast<std::ptrdiff_t>(i * n), x.begin() + static_cast<std::ptrdiff_t>((i + 1) * n));
      const auto p = exhaustive(r, cfg);
      REQUIRE(q.scales()[i] == p.scale);
      if (cfg.asymmetric) REQUIRE(q.zero_points()[i] == p.zero);
      ++rows_checked;
    }
  }
  CHECK(rows_checked == 2 * static_cast<std::size_t>(trials));
}
