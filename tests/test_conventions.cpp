// The API conventions of CONTRIBUTING.md: one options struct per operation (quantize_rows_fused
// takes quant_options), one float_or_double concept, one spelling per operation
// (givens_sequence::fold_into_weights), an immutable site_transform, and the old names kept for one
// minor release forwarding to the new ones (docs/changes.md).
#include <singlequant/singlequant.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <type_traits>
#include <vector>

#include "test_support.hpp"

namespace sq = singlequant;

namespace {

std::vector<float> heavy_rows(std::size_t rows, std::size_t cols, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(rows * cols);
  for (auto& v : x) v = normal(gen);
  for (std::size_t i = 0; i < rows; ++i) x[i * cols + (i * 7) % cols] *= 40.0f;  // an outlier per row
  return x;
}

// Constraints checked as concepts (a requires-expression outside a template may not fail).
template <class T>
concept has_absmax = requires(std::vector<T> v) { sq::absmax(v); };
template <class T>
concept transform_applies_to = requires(const sq::site_transform& t, sq::matrix_view<T> x) { t.apply_rows(x); };
template <class T>
concept quantizes = requires(sq::matrix_view<const T> x, const sq::quant_options& o) { sq::quantize(x, o); };
template <class S>
concept has_report_setter = requires(S& t, const sq::transform_report& r) { t.set_report(r); };

}  // namespace

TEST_CASE("conventions: quantize_rows_fused with quant_options equals quantize (the non-fused path)") {
  const std::size_t rows = 5, cols = 37;
  const std::vector<float> x = heavy_rows(rows, cols, 3);
  const sq::matrix_view<const float> xv(x.data(), rows, cols);
  for (const auto grid : {sq::int4_grid::symmetric7, sq::int4_grid::full8})
    for (const double clip : {1.0, 0.9, 0.5}) {
      const sq::quant_options options{.grid = grid, .clip_ratio = clip};
      sq::quant_report fused_report, reference_report;
      const sq::packed_int4 reference = sq::quantize(xv, options, &reference_report);
      const sq::packed_int4 fused = sq::quantize_rows_fused(xv, options, &fused_report);
      std::vector<std::uint8_t> codes(rows * sq::row_bytes(cols));
      std::vector<float> scales(rows);
      sq::quantize_rows_fused(xv, codes, scales, options);
      REQUIRE(fused.rows() == rows);
      CHECK(fused.grid() == grid);
      CHECK(fused.gran() == sq::granularity::per_row);
      for (std::size_t i = 0; i < rows; ++i) {
        CHECK(fused.scales()[i] == reference.scales()[i]);
        CHECK(scales[i] == reference.scales()[i]);
        for (std::size_t k = 0; k < sq::row_bytes(cols); ++k) {
          CHECK(fused.row_codes(i)[k] == reference.row_codes(i)[k]);
          CHECK(codes[i * sq::row_bytes(cols) + k] == reference.row_codes(i)[k]);
        }
      }
      CHECK(fused_report.scale_count == reference_report.scale_count);
      CHECK(fused_report.clip_ratio_sum == reference_report.clip_ratio_sum);
    }
}

TEST_CASE("conventions: quantize_rows_fused refuses options the fused path does not compute") {
  const std::vector<float> x = heavy_rows(3, 8, 5);
  const sq::matrix_view<const float> xv(x.data(), 3, 8);
  std::vector<std::uint8_t> codes(3 * 4, 0xAB);
  std::vector<float> scales(3, -1.0f);
  const sq::quant_options refused[] = {
      {.gran = sq::granularity::per_group, .group_size = 4},
      {.gran = sq::granularity::per_tensor},
      {.asymmetric = true},
      {.mse_clip_search = true},
  };
  for (const auto& options : refused) {
    SQ_CHECK_ERROR_CONTAINS(sq::quantize_rows_fused(xv, codes, scales, options), "quantize_rows_fused",
                            "the fused path is per_row, symmetric, without clip search", "use quantize");
    SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::quantize_rows_fused(xv, options)), "quantize_rows_fused",
                            "the fused path");
  }
  SQ_CHECK_ERROR_CONTAINS(sq::quantize_rows_fused(xv, codes, scales, {.clip_ratio = 1.5}),
                          "quantize_rows_fused", "clip ratio 1.5");
  CHECK(codes == std::vector<std::uint8_t>(3 * 4, 0xAB));
  CHECK(scales == std::vector<float>(3, -1.0f));
}

// The old names must keep compiling (and forward) for one minor release, warning only when
// SINGLEQUANT_WARN_DEPRECATED is defined; this test uses them on purpose.
#if defined(__GNUC__)
#  pragma GCC diagnostic push
#  pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
TEST_CASE("conventions: the old names forward to the new ones") {
  static_assert(std::is_same_v<sq::quant_config, sq::quant_options>);
  static_assert(sq::givens_scalar<float> && sq::givens_scalar<double> && !sq::givens_scalar<int>);
  static_assert(sq::detail::transform_scalar<double> && !sq::detail::transform_scalar<long double>);

  // Positional quantize_rows_fused == the options form.
  const std::vector<float> x = heavy_rows(4, 20, 9);
  const sq::matrix_view<const float> xv(x.data(), 4, 20);
  const sq::packed_int4 old_form = sq::quantize_rows_fused(xv, 0.9, sq::int4_grid::full8);
  const sq::packed_int4 new_form = sq::quantize_rows_fused(xv, {.grid = sq::int4_grid::full8, .clip_ratio = 0.9});
  CHECK(std::vector<std::uint8_t>(old_form.codes().begin(), old_form.codes().end()) ==
        std::vector<std::uint8_t>(new_form.codes().begin(), new_form.codes().end()));
  CHECK(std::vector<float>(old_form.scales().begin(), old_form.scales().end()) ==
        std::vector<float>(new_form.scales().begin(), new_form.scales().end()));

  // Free fold_into_weights == the member, bit for bit, float and double weights.
  sq::givens_sequence<double> g(6);
  g.push_back(sq::givens<double>::from_angle(0, 5, 0.3));
  g.push_back(sq::givens<double>::from_angle(1, 2, -1.1));
  g.push_back(sq::givens<double>::from_angle(2, 5, 0.7));
  std::vector<float> w_free = heavy_rows(3, 6, 11), w_member = w_free;
  sq::fold_into_weights(g, sq::matrix_view<float>(w_free.data(), 3, 6));
  g.fold_into_weights(sq::matrix_view<float>(w_member.data(), 3, 6));
  CHECK(w_free == w_member);
  std::vector<double> d_free(w_free.begin(), w_free.end()), d_member = d_free;
  sq::fold_into_weights(g, sq::matrix_view<double>(d_free.data(), 3, 6));
  g.fold_into_weights(sq::matrix_view<double>(d_member.data(), 3, 6));
  CHECK(d_free == d_member);
  SQ_CHECK_ERROR_CONTAINS(g.fold_into_weights(sq::matrix_view<double>(d_free.data(), 2, 9)),
                          "givens_sequence::fold_into_weights", "9", "dim 6");
}
#if defined(__GNUC__)
#  pragma GCC diagnostic pop
#endif

TEST_CASE("conventions: float_or_double is exactly float and double, and constrains the API") {
  static_assert(sq::float_or_double<float> && sq::float_or_double<double>);
  static_assert(!sq::float_or_double<long double> && !sq::float_or_double<const float> &&
                !sq::float_or_double<int> && !sq::float_or_double<float&>);
  static_assert(has_absmax<float> && has_absmax<double> && !has_absmax<long double>);
  static_assert(transform_applies_to<float> && transform_applies_to<double>);
  static_assert(!transform_applies_to<long double> && !transform_applies_to<const float>);
  static_assert(quantizes<float> && quantizes<double> && !quantizes<long double>);
  CHECK(true);
}

TEST_CASE("conventions: site_transform is immutable once built (no public setter), the builders report") {
  static_assert(!has_report_setter<sq::site_transform>);
  const std::size_t n = 16;
  sq::transform_options options;
  options.use_hadamard = false;  // ART sees the outlier channel as it is
  sq::calibrator cal(n, options);
  std::vector<float> x(64 * n);
  for (std::size_t e = 0; e < x.size(); ++e) x[e] = std::sin(static_cast<float>(e));  // |x| <= 1
  for (std::size_t t = 0; t < 64; ++t) x[t * n + 3] = 500.0f + static_cast<float>(t);  // one outlier channel
  cal.observe(sq::matrix_view<const float>(x.data(), 64, n));
  const sq::site_transform built = cal.build();
  CHECK(built.report().art.rotations > 0);  // recorded by the builder (detail::site_transform_access)
  const sq::site_transform loaded = sq::site_transform::deserialize(built.serialize());
  CHECK(loaded.report().art.rotations == 0);  // a loaded transform carries no build report
}
