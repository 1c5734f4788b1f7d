// singlequant/metrics.hpp - what a transform and a quantiser do to activations and to a layer's
// output: per-token max/RMS and kurtosis, the W4A4 output error of a linear layer.
#ifndef SINGLEQUANT_METRICS_HPP
#define SINGLEQUANT_METRICS_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "config.hpp"
#include "quant.hpp"
#include "site_transform.hpp"
#include "view.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

/// Smoothing metrics of activation rows (tokens x channels): what a rotation should lower.
struct activation_metrics {
  double mean_max_over_rms = 0;  ///< mean over tokens of max_k |x_k| / rms(x) (1 for zero rows)
  double max_max_over_rms = 0;   ///< worst token
  double mean_kurtosis = 0;      ///< mean over tokens of mean_k x^4 / (mean_k x^2)^2 (0 for zero rows)
};

/// Per-token max/RMS and kurtosis of rows (float or double; NaN/Inf are errors).
template <class T>
  requires float_or_double<T>
[[nodiscard]] activation_metrics measure_activations(matrix_view<const T> x) {
  activation_metrics m;
  const std::size_t n = x.cols();
  for (std::size_t t = 0; t < x.rows(); ++t) {
    double peak = 0, s2 = 0, s4 = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const double v = static_cast<double>(x(t, k));
      detail::check(std::isfinite(v), "measure_activations", "non-finite value at row ", t,
                    ", channel ", k);
      peak = std::max(peak, std::fabs(v));
      s2 += v * v;
      s4 += v * v * v * v;
    }
    const double ratio = s2 > 0 ? peak / std::sqrt(s2 / static_cast<double>(n)) : 1.0;
    m.mean_max_over_rms += ratio;
    m.max_max_over_rms = std::max(m.max_max_over_rms, ratio);
    if (s2 > 0) m.mean_kurtosis += (s4 / static_cast<double>(n)) / ((s2 / static_cast<double>(n)) * (s2 / static_cast<double>(n)));
  }
  if (x.rows() > 0) {
    m.mean_max_over_rms /= static_cast<double>(x.rows());
    m.mean_kurtosis /= static_cast<double>(x.rows());
  }
  return m;
}

/// The W4A4 output error of a layer y = x W^T (x tokens x n, W out x n):
/// relative Frobenius |Y - Y_q| / |Y| and SQNR 10 log10(|Y|^2 / |Y - Y_q|^2), with
/// Y_q = Q_a(x R) Q_w(W R)^T (R = identity when transform is null), everything in double.
/// An exact Y_q (all-zero activations included) gives 0 and +Inf. Errors: shapes, configs, a NaN or
/// Inf in x or W (named by position), and sqnr_db's (an all-zero Y with Y_q != 0).
struct layer_error {
  double relative_frobenius = 0;
  double sqnr_db = 0;
};
template <class T>
  requires float_or_double<T>
[[nodiscard]] layer_error measure_w4a4_layer(matrix_view<const T> x, matrix_view<const T> w,
                                             const site_transform* transform,
                                             const quant_options& activation_config,
                                             const quant_options& weight_config) {
  constexpr const char* fn = "measure_w4a4_layer";
  detail::check(x.cols() == w.cols(), fn, "activations have ", x.cols(), " channels, weights ",
                w.cols(), " columns");
  detail::check(transform == nullptr || transform->size() == x.cols(), fn, "transform of size ",
                transform == nullptr ? 0 : transform->size(), " for ", x.cols(), " channels");
  detail::check_config(activation_config, x.cols(), fn);
  detail::check_config(weight_config, w.cols(), fn);
  const std::size_t tokens = x.rows(), n = x.cols(), m = w.rows();
  std::size_t outputs = 0;
  detail::check(!detail::multiply_overflows(tokens, m, outputs), fn, tokens, " tokens x ", m, " outputs overflow");
  std::vector<double> xd = detail::finite_copy(x, fn, "activations");
  std::vector<double> wd = detail::finite_copy(w, fn, "weights");
  auto product = [&](const std::vector<double>& a, const std::vector<double>& b) {
    std::vector<double> y = detail::checked_vector<double>(fn, "layer outputs", outputs);
    for (std::size_t t = 0; t < tokens; ++t)
      for (std::size_t o = 0; o < m; ++o) {
        double sum = 0;
        for (std::size_t k = 0; k < n; ++k) sum += a[t * n + k] * b[o * n + k];
        y[t * m + o] = sum;
      }
    return y;
  };
  const std::vector<double> reference = product(xd, wd);
  if (transform != nullptr) {
    transform->apply_rows(matrix_view<double>(xd.data(), tokens, n));
    transform->apply_rows(matrix_view<double>(wd.data(), m, n));
  }
  std::vector<double> xq(xd.size()), wq(wd.size());
  fake_quantize<double>(matrix_view<const double>(xd.data(), tokens, n),
                        matrix_view<double>(xq.data(), tokens, n), activation_config);
  fake_quantize<double>(matrix_view<const double>(wd.data(), m, n),
                        matrix_view<double>(wq.data(), m, n), weight_config);
  const std::vector<double> approx = product(xq, wq);
  double signal = 0, noise = 0;
  for (std::size_t e = 0; e < reference.size(); ++e) {
    signal += reference[e] * reference[e];
    noise += (reference[e] - approx[e]) * (reference[e] - approx[e]);
  }
  layer_error result;
  result.sqnr_db = detail::sqnr_from_sums(signal, noise, fn);
  result.relative_frobenius = noise == 0 ? 0.0 : std::sqrt(noise / signal);
  return result;
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_METRICS_HPP
