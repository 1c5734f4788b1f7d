// Shared helpers of the model-layer tests: the reference models (skipping when absent), a small
// random decoder, and logit comparisons.
#ifndef SINGLEQUANT_TESTS_MODEL_SUPPORT_HPP
#define SINGLEQUANT_TESTS_MODEL_SUPPORT_HPP

#include <singlequant/model/llama.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <formats/json.hpp>
#include <formats/llama2c_model.hpp>
#include <formats/llama2c_tokenizer.hpp>

#include "llama2c/forward.hpp"
#include "test_support.hpp"

namespace sq_test {

/// A loaded reference model and its library views, or nullopt (with a MESSAGE) when absent.
struct loaded_model {
  std::unique_ptr<llama2c::model> file;
  singlequant::llama_weights weights;
};
inline std::optional<loaded_model> load_reference_model(const char* name) {
  const std::filesystem::path path = std::filesystem::path(models_dir()) / name;
  if (!std::filesystem::exists(path)) {
    MESSAGE("skipping: " << path.string() << " not found (set SINGLEQUANT_MODELS_DIR to the models directory)");
    return std::nullopt;
  }
  loaded_model m;
  m.file = std::make_unique<llama2c::model>(llama2c::model::load(path.string()));
  m.weights = llama2c::to_weights(*m.file);
  return m;
}

/// A random decoder (normal weights scaled by 1/sqrt(in), gains around 1) of the given shape.
inline singlequant::llama_model random_model(const singlequant::llama_config& c, std::uint64_t seed) {
  singlequant::llama_model m(c);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  auto fill = [&](singlequant::matrix_view<float> w, double scale) {
    for (std::size_t r = 0; r < w.rows(); ++r)
      for (std::size_t k = 0; k < w.cols(); ++k) w(r, k) = static_cast<float>(scale * normal(rng));
  };
  fill(m.embedding(), 1.0);
  if (!c.tied_classifier) fill(m.classifier(), 1.0 / std::sqrt(double(c.dim)));
  for (std::size_t l = 0; l < c.n_layers; ++l) {
    for (const auto kind : singlequant::layer_linears) {
      auto w = m.linear(l, kind);
      fill(w, 1.0 / std::sqrt(double(w.cols())));
    }
    for (float& g : m.layer_at(l).attention_norm) g = static_cast<float>(1.0 + 0.5 * normal(rng));
    for (float& g : m.layer_at(l).ffn_norm) g = static_cast<float>(1.0 + 0.5 * normal(rng));
  }
  for (float& g : m.final_norm()) g = static_cast<float>(1.0 + 0.5 * normal(rng));
  return m;
}

inline singlequant::llama_config small_config(bool tied = false) {
  singlequant::llama_config c;
  c.dim = 32;
  c.hidden_dim = 48;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 40;
  c.max_seq_len = 64;
  c.tied_classifier = tied;
  return c;
}

inline std::vector<std::int32_t> random_tokens(std::size_t n, std::size_t vocab, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::int32_t> t(n);
  for (auto& v : t) v = static_cast<std::int32_t>(rng() % vocab);
  return t;
}

/// max |a - b| over two equal-length vectors.
inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(double(a[i]) - double(b[i])));
  return worst;
}

}  // namespace sq_test

#endif  // SINGLEQUANT_TESTS_MODEL_SUPPORT_HPP
