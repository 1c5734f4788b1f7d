// Test helpers of the ART/URT/transform tests: a seeded generator of LLM-like activations and a
// plain W4A4 reference (symmetric INT4 round-to-nearest, per token / per output row).
#ifndef SINGLEQUANT_TESTS_SYNTHETIC_LAYER_HPP
#define SINGLEQUANT_TESTS_SYNTHETIC_LAYER_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace sq_test {

/// tokens x n activations shaped like an LLM's linear-layer input: heavy-tailed nominal channels
/// (Student t, 5 dof) with log-normal per-channel scales, a few systematic outlier channels
/// (10-30x the median scale on every token), and a few massive channels that fire at 100-1000x the
/// median on about 3% of the tokens (BOS/delimiter-like). Row-major, reproducible from the seed.
struct llm_like_activations {
  std::size_t n = 0;
  std::vector<double> scale;
  std::vector<std::size_t> systematic, massive;
  std::vector<double> systematic_gain, massive_gain;

  llm_like_activations(std::size_t n_, std::uint64_t seed) : n(n_), scale(n_) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    for (auto& s : scale) s = std::exp(0.5 * normal(rng));
    for (std::size_t k = 0; k < 3; ++k) {
      systematic.push_back((k * 37 + 5) % n);
      systematic_gain.push_back(10.0 + 10.0 * static_cast<double>(k));
    }
    for (std::size_t k = 0; k < 3; ++k) {
      massive.push_back((k * 53 + 17) % n);
      massive_gain.push_back(k == 0 ? 100.0 : k == 1 ? 300.0 : 1000.0);
    }
  }

  std::vector<double> draw(std::size_t tokens, std::uint64_t seed) const {
    std::mt19937_64 rng(seed);
    std::student_t_distribution<double> heavy(5.0);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    std::vector<double> x(tokens * n);
    for (std::size_t t = 0; t < tokens; ++t) {
      double* row = x.data() + t * n;
      for (std::size_t k = 0; k < n; ++k) row[k] = scale[k] * heavy(rng);
      for (std::size_t c = 0; c < systematic.size(); ++c)
        row[systematic[c]] = systematic_gain[c] * (1.0 + 0.3 * normal(rng));
      if (uniform(rng) < 0.03)
        for (std::size_t c = 0; c < massive.size(); ++c)
          row[massive[c]] = massive_gain[c] * (1.0 + 0.1 * normal(rng));
    }
    return x;
  }
};

/// Symmetric INT4 round-to-nearest of each row (grid -7..7, scale absmax / 7), in place.
inline void fake_quantize_rows_int4(std::vector<double>& x, std::size_t rows, std::size_t cols) {
  for (std::size_t r = 0; r < rows; ++r) {
    double* row = x.data() + r * cols;
    double peak = 0;
    for (std::size_t k = 0; k < cols; ++k) peak = std::max(peak, std::fabs(row[k]));
    if (peak == 0) continue;
    const double scale = peak / 7.0;
    for (std::size_t k = 0; k < cols; ++k)
      row[k] = std::clamp(std::nearbyint(row[k] / scale), -7.0, 7.0) * scale;
  }
}

/// y = x W^T for x tokens x n, W m x n.
inline std::vector<double> matmul_xwt(const std::vector<double>& x, const std::vector<double>& w,
                                      std::size_t tokens, std::size_t n, std::size_t m) {
  std::vector<double> y(tokens * m, 0.0);
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t o = 0; o < m; ++o) {
      double s = 0;
      for (std::size_t k = 0; k < n; ++k) s += x[t * n + k] * w[o * n + k];
      y[t * m + o] = s;
    }
  return y;
}

/// 10 log10(|reference|^2 / |reference - approx|^2).
inline double sqnr_db(const std::vector<double>& reference, const std::vector<double>& approx) {
  double signal = 0, noise = 0;
  for (std::size_t i = 0; i < reference.size(); ++i) {
    signal += reference[i] * reference[i];
    noise += (reference[i] - approx[i]) * (reference[i] - approx[i]);
  }
  return 10.0 * std::log10(signal / noise);
}

/// sum of y^4 over a row-major matrix (the l4 objective).
inline double fourth_power_sum(const std::vector<double>& y) {
  double s = 0;
  for (const double v : y) s += (v * v) * (v * v);
  return s;
}

}  // namespace sq_test

#endif
