#include <singlequant/model/quantize.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "model_support.hpp"
#include "test_support.hpp"

namespace sq = singlequant;

// The int4 backend runs the same quantised model with exact integer sums instead of float products
// of dequantised values: only the float summation order differs, so logits agree to float rounding
// unless an activation code lands on the other side of a rounding boundary (which moves that
// token's next site input by one quantisation step). Stated tolerance: 2e-3 of the largest |logit|.
TEST_CASE("model int4 backend: logits match the simulated backend (rtn, hadamard, per-group, INT4 classifier)") {
  const sq::llama_config c = sq_test::small_config(false);
  const sq::llama_model fp = sq_test::random_model(c, 77);
  const auto tokens = sq_test::random_tokens(20, c.vocab_size, 5);
  for (int variant = 0; variant < 3; ++variant) {
    CAPTURE(variant);
    sq::quantize_model_options options = sq::quantize_preset(variant == 0 ? sq::quant_method::rtn : sq::quant_method::hadamard, 3);
    if (variant == 2) {
      options.weights.gran = sq::granularity::per_group;
      options.weights.group_size = 16;
      options.activations.grid = sq::int4_grid::full8;
      options.quantize_classifier = true;
    }
    sq::quantized_model q = sq::quantize_model(fp.weights(), {}, options);
    const auto simulated = q.logits(tokens);
    q.set_backend(sq::w4a4_backend::int4);
    CHECK(q.backend() == sq::w4a4_backend::int4);
    CHECK(q.gemm_weights(0, sq::linear_kind::down) != nullptr);
    const auto int4 = q.logits(tokens);
    double largest = 0;
    for (const float v : simulated) largest = std::max(largest, std::fabs(double(v)));
    CHECK(sq_test::max_abs_diff(simulated, int4) <= 2e-3 * largest);
    MESSAGE("max |logit difference| = " << sq_test::max_abs_diff(simulated, int4) << " of max |logit| " << largest);
    // Decoding token by token through the cache gives the prefill's last logits.
    sq::kv_cache cache(c, tokens.size());
    std::vector<float> step(c.vocab_size);
    for (const auto t : tokens) q.forward(std::span<const std::int32_t>(&t, 1), cache, sq::matrix_view<float>(step.data(), 1, c.vocab_size));
    const std::vector<float> last(int4.end() - static_cast<std::ptrdiff_t>(c.vocab_size), int4.end());
    CHECK(sq_test::max_abs_diff(step, last) <= 1e-4 * largest);
    q.set_backend(sq::w4a4_backend::simulated);
    CHECK(q.gemm_weights(0, sq::linear_kind::down) == nullptr);
    CHECK(sq_test::max_abs_diff(q.logits(tokens), simulated) == 0);
  }
}

TEST_CASE("model int4 backend: refuses activations int4_gemm cannot take") {
  const sq::llama_config c = sq_test::small_config(false);
  const sq::llama_model fp = sq_test::random_model(c, 78);
  sq::quantize_model_options options = sq::quantize_preset(sq::quant_method::rtn);
  options.activations.gran = sq::granularity::per_group;
  options.activations.group_size = 16;
  sq::quantized_model q = sq::quantize_model(fp.weights(), {}, options);
  SQ_CHECK_ERROR_CONTAINS(q.set_backend(sq::w4a4_backend::int4), "set_backend", "per_row");
  SQ_CHECK_ERROR_CONTAINS(q.set_backend(static_cast<sq::w4a4_backend>(7)), "set_backend", "backend");
}
