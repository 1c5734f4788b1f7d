// quickstart: one linear layer y = x W^T with LLM-like activations (a few massive channels, a
// heavy-tailed rest), quantised W4A4 with no rotation, with a randomised Hadamard, and with the
// SingleQuant transform (Hadamard, then closed-form ART and URT Givens rotations) built in one
// pass from calibration statistics. Prints what each does to the activations and to the layer.
#include <singlequant/singlequant.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace sq = singlequant;

namespace {
// tokens x n activations: Student-t-like nominal channels with per-channel scales, plus massive
// outlier channels (100x the median) and a few massive tokens.
std::vector<float> make_activations(std::size_t tokens, std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::gamma_distribution<double> chi2(2.0, 2.0);  // t with 4 degrees of freedom = z / sqrt(chi2 / 4)
  std::vector<double> channel_scale(n);
  for (auto& s : channel_scale) s = std::exp(0.5 * normal(rng));
  std::vector<float> x(tokens * n);
  for (std::size_t t = 0; t < tokens; ++t) {
    const bool massive_token = t % 37 == 5;
    for (std::size_t k = 0; k < n; ++k) {
      double v = channel_scale[k] * normal(rng) / std::sqrt(chi2(rng) / 4.0);
      if (k == 7 || k == 100) v *= 30.0;                // outlier channels
      if (massive_token && k == 7) v = 400.0;           // massive activation
      x[t * n + k] = static_cast<float>(v);
    }
  }
  return x;
}
}  // namespace

int main() {
  constexpr std::size_t n = 256, out_features = 256, calibration_tokens = 1024, test_tokens = 256;
  std::printf("singlequant %s, kernels running on %s\n\n", sq::version_string.data(),
              sq::isa_name(sq::active_isa()).data());
  const auto calibration = make_activations(calibration_tokens, n, 1);
  const auto x = make_activations(test_tokens, n, 2);  // held-out tokens
  std::vector<float> w(out_features * n);
  std::mt19937_64 rng(3);
  std::normal_distribution<float> normal(0.f, 0.05f);
  for (auto& v : w) v = normal(rng);
  const sq::matrix_view<const float> xv(x, test_tokens, n), wv(w, out_features, n);

  // One pass over calibration statistics: Hadamard basis, then ART and URT in closed form.
  const auto start = std::chrono::steady_clock::now();
  sq::transform_options options;
  options.hadamard.randomized = true;
  options.hadamard.seed = 42;
  sq::calibrator calibrator(n, options);
  calibrator.observe(sq::matrix_view<const float>(calibration, calibration_tokens, n));
  const sq::site_transform singlequant = calibrator.build();
  sq::transform_options hadamard_only = options;
  hadamard_only.use_art = false;
  hadamard_only.use_urt = false;
  const sq::site_transform hadamard = calibrator.build(hadamard_only);
  const double build_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  // W4A4: per-token activations (clip 0.9) and per-output-row weights (MSE clip search), -7..7.
  sq::quant_options activations{.clip_ratio = 0.9};
  sq::quant_options weights{.mse_clip_search = true};
  struct row {
    const char* name;
    const sq::site_transform* transform;
  };
  std::printf("%-26s %14s %12s %22s\n", "rotation", "max/RMS token", "kurtosis", "W4A4 output SQNR (dB)");
  for (const row r : {row{"none", nullptr}, row{"randomised Hadamard", &hadamard},
                      row{"SingleQuant (H+ART+URT)", &singlequant}}) {
    std::vector<float> rotated = x;
    if (r.transform != nullptr) r.transform->apply_rows(sq::matrix_view<float>(rotated, test_tokens, n));
    const auto shape = sq::measure_activations(sq::matrix_view<const float>(rotated, test_tokens, n));
    const auto error = sq::measure_w4a4_layer(xv, wv, r.transform, activations, weights);
    std::printf("%-26s %14.2f %12.2f %22.2f\n", r.name, shape.mean_max_over_rms, shape.mean_kurtosis,
                error.sqnr_db);
  }
  const auto& report = singlequant.report();
  std::printf("\nbuilt in %.0f ms from %zu tokens: ART %zu outlier channels, %zu rotations; URT %zu "
              "rotations\n", build_ms, calibration_tokens, report.art.outliers, report.art.rotations,
              report.urt.rotations);
  std::printf("serialised transform: %zu bytes\n", singlequant.serialize().size());
  return 0;
}
