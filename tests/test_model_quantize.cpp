// Tests of model/quantize.hpp and model/evaluate.hpp: the W4A4 forward against a straightforward
// dequantise-then-float reference, bit-identical models for any thread count, the presets'
// quality order on stories260K, the metrics against closed forms, and bad input.
#include <singlequant/model/evaluate.hpp>
#include <singlequant/model/fusion.hpp>
#include <singlequant/model/quantize.hpp>

#include <limits>

#include "model_support.hpp"

namespace sq = singlequant;

namespace {

std::vector<std::vector<std::int32_t>> sequences(std::size_t count, std::size_t length, std::size_t vocab,
                                                 std::uint64_t seed) {
  std::vector<std::vector<std::int32_t>> out;
  for (std::size_t i = 0; i < count; ++i) out.push_back(sq_test::random_tokens(length, vocab, seed + i));
  return out;
}

// W by hand from the codes and scales: (code) * scale of the element's group (symmetric tensors).
std::vector<float> unpack_by_hand(const sq::packed_int4& q) {
  std::vector<float> out(q.rows() * q.cols());
  std::vector<std::int8_t> codes(q.cols());
  for (std::size_t r = 0; r < q.rows(); ++r) {
    sq::unpack_int4(q.row_codes(r), codes);
    for (std::size_t k = 0; k < q.cols(); ++k) {
      const std::size_t g = q.gran() == sq::granularity::per_row ? r : r * (q.cols() / q.group_size()) + k / q.group_size();
      out[r * q.cols() + k] = float(codes[k]) * q.scales()[g];
    }
  }
  return out;
}

// Per-token symmetric fake quantisation by hand: scale = clip * absmax / 7 (symmetric7) or
// clip * m / -8 (full8, m the signed value of largest magnitude), code = clamp(rne(x / scale)).
void quantize_rows_by_hand(sq::matrix_view<float> x, double clip, sq::int4_grid grid) {
  for (std::size_t t = 0; t < x.rows(); ++t) {
    float m = 0;
    for (std::size_t k = 0; k < x.cols(); ++k)
      if (std::fabs(x(t, k)) > std::fabs(m) || (std::fabs(x(t, k)) == std::fabs(m) && x(t, k) < m)) m = x(t, k);
    const double qmin = grid == sq::int4_grid::full8 ? -8 : -7;
    const auto scale = float(grid == sq::int4_grid::full8 ? clip * double(m) / -8.0 : clip * std::fabs(double(m)) / 7.0);
    for (std::size_t k = 0; k < x.cols(); ++k) {
      if (scale == 0) {
        x(t, k) = 0;
        continue;
      }
      const double code = std::clamp(std::nearbyint(double(x(t, k) * (1.0f / scale))), qmin, 7.0);
      x(t, k) = float(code) * scale;
    }
  }
}

// The quantised model rebuilt as a float model (hand-unpacked weights, unit norms) plus hooks that
// apply the online transforms and the per-token quantiser by hand.
struct reference_of {
  sq::llama_model model;
  sq::forward_hooks hooks;
  explicit reference_of(const sq::quantized_model& q) : model([&] {
      sq::llama_config c = q.config();
      c.tied_classifier = false;
      return c;
    }()) {
    const sq::llama_config& c = model.config();
    for (std::size_t r = 0; r < c.vocab_size; ++r)
      for (std::size_t k = 0; k < c.dim; ++k) {
        model.embedding()(r, k) = q.embedding()(r, k);
        model.classifier()(r, k) = q.classifier()(r, k);
      }
    for (std::size_t l = 0; l < c.n_layers; ++l) {
      model.layer_at(l).attention_norm.clear();
      model.layer_at(l).ffn_norm.clear();
      for (const auto kind : sq::layer_linears) {
        const std::vector<float> w = unpack_by_hand(q.weight(l, kind));
        auto dst = model.linear(l, kind);
        std::copy(w.begin(), w.end(), dst.data());
      }
    }
    model.final_norm().clear();
    hooks.on_site_input = [&q](sq::site_id site, std::size_t, sq::matrix_view<float> x) {
      if (const sq::site_transform* r = q.online(site.layer, site.kind)) r->apply_rows(x);
      if (site.kind != sq::site_kind::classifier_input)
        quantize_rows_by_hand(x, q.activation_config().clip_ratio, q.activation_config().grid);
    };
  }
};

}  // namespace

TEST_CASE("model quantize: the W4A4 forward equals a dequantise-then-float reference (every preset, both grids)") {
  const sq::llama_config c = sq_test::small_config();
  const sq::llama_model fp = sq_test::random_model(c, 31);
  const auto calibration = sequences(4, 24, c.vocab_size, 100);
  const auto held_out = sequences(2, 20, c.vocab_size, 200);
  for (const auto method : {sq::quant_method::rtn, sq::quant_method::hadamard, sq::quant_method::singlequant})
    for (const auto grid : {sq::int4_grid::symmetric7, sq::int4_grid::full8}) {
      sq::quantize_model_options options = sq::quantize_preset(method, 5);
      options.weights.grid = options.activations.grid = grid;
      options.threads = 2;
      sq::quantize_report report;
      const sq::quantized_model q = sq::quantize_model(fp.weights(), calibration, options, &report);
      const reference_of ref(q);
      double worst = 0;
      for (const auto& tokens : held_out)
        worst = std::max(worst, sq_test::max_abs_diff(q.logits(tokens), sq::forward_logits(ref.model.weights(), tokens, ref.hooks)));
      MESSAGE("method " << int(method) << " grid " << int(grid) << ": max |W4A4 - reference| = " << worst
                        << ", rotations residual " << report.residual_rotations << " online " << report.online_rotations);
      CHECK(worst < 1e-4);
      CHECK((q.residual() != nullptr) == (method != sq::quant_method::rtn));
      CHECK((q.online(1, sq::site_kind::down_input) != nullptr) == (method != sq::quant_method::rtn));
      if (method == sq::quant_method::singlequant) CHECK(report.online_rotations > 0);
      if (method == sq::quant_method::singlequant) CHECK(report.calibration_tokens == 4 * 24);
      if (method != sq::quant_method::singlequant) CHECK(report.calibration_tokens == 0);
    }
}

TEST_CASE("model quantize: per-site residual transforms, per-group weights, INT4 classifier follow the reference") {
  const sq::llama_config c = sq_test::small_config(true);
  const sq::llama_model fp = sq_test::random_model(c, 41);
  const auto calibration = sequences(3, 16, c.vocab_size, 300);
  sq::quantize_model_options options = sq::quantize_preset(sq::quant_method::singlequant, 1);
  options.residual = sq::residual_mode::per_site;
  options.weights.gran = sq::granularity::per_group;
  options.weights.group_size = 16;
  const sq::quantized_model q = sq::quantize_model(fp.weights(), calibration, options);
  CHECK(q.residual() == nullptr);
  CHECK(q.online(0, sq::site_kind::attention_input) != nullptr);
  CHECK(q.online(1, sq::site_kind::ffn_input) != nullptr);
  const reference_of ref(q);
  const auto tokens = sq_test::random_tokens(15, c.vocab_size, 9);
  CHECK(sq_test::max_abs_diff(q.logits(tokens), sq::forward_logits(ref.model.weights(), tokens, ref.hooks)) < 1e-4);
  options.quantize_classifier = true;
  const sq::quantized_model qc = sq::quantize_model(fp.weights(), calibration, options);
  CHECK(qc.classifier_weights().has_value());
  CHECK(qc.classifier().empty());
}

TEST_CASE("model quantize: bit-identical models and logits for 1, 2 and 3 threads") {
  const sq::llama_config c = sq_test::small_config();
  const sq::llama_model fp = sq_test::random_model(c, 51);
  const auto calibration = sequences(5, 20, c.vocab_size, 400);
  const auto tokens = sq_test::random_tokens(18, c.vocab_size, 3);
  std::vector<sq::quantized_model> models;
  for (const std::size_t threads : {std::size_t{1}, std::size_t{2}, std::size_t{3}}) {
    sq::quantize_model_options options = sq::quantize_preset(sq::quant_method::singlequant, 7);
    options.threads = threads;
    models.push_back(sq::quantize_model(fp.weights(), calibration, options));
  }
  for (std::size_t m = 1; m < models.size(); ++m) {
    CHECK(models[m].residual()->serialize() == models[0].residual()->serialize());
    for (std::size_t l = 0; l < c.n_layers; ++l) {
      for (const auto kind : sq::layer_linears) {
        const auto& a = models[0].weight(l, kind);
        const auto& b = models[m].weight(l, kind);
        CHECK(std::equal(a.codes().begin(), a.codes().end(), b.codes().begin(), b.codes().end()));
        CHECK(std::equal(a.scales().begin(), a.scales().end(), b.scales().begin(), b.scales().end()));
      }
      CHECK(models[m].online(l, sq::site_kind::o_proj_input)->serialize() ==
            models[0].online(l, sq::site_kind::o_proj_input)->serialize());
    }
    CHECK(models[m].logits(tokens) == models[0].logits(tokens));
  }
}

TEST_CASE("model evaluate: metrics against closed forms") {
  // Two positions, vocab 2: reference logits (0, 0) and (ln 3, 0); candidate (0, ln 3) and (0, 0).
  const std::vector<std::int32_t> tokens = {0, 1};
  const std::vector<float> p = {0.f, 0.f, float(std::log(3.0)), 0.f};
  const std::vector<float> q = {0.f, float(std::log(3.0)), 0.f, 0.f};
  const sq::evaluation e = sq::evaluate_logits([&](std::span<const std::int32_t>) { return p; },
                                               [&](std::span<const std::int32_t>) { return q; },
                                               std::vector<std::vector<std::int32_t>>{tokens}, 2, 1);
  // KL((1/2,1/2) || (1/4,3/4)) and KL((3/4,1/4) || (1/2,1/2)).
  const double kl0 = 0.5 * std::log(0.5 / 0.25) + 0.5 * std::log(0.5 / 0.75);
  const double kl1 = 0.75 * std::log(0.75 / 0.5) + 0.25 * std::log(0.25 / 0.5);
  CHECK(e.kl == doctest::Approx((kl0 + kl1) / 2).epsilon(1e-6));  // ln 3 is rounded to float
  CHECK(e.top1 == 0.5);  // position 0: argmax 0 (tie, lowest id) vs 1; position 1: 0 vs 0 (tie)
  CHECK(e.positions == 2);
  CHECK(e.predictions == 1);
  CHECK(e.perplexity == doctest::Approx(1.0 / 0.75).epsilon(1e-6));           // Q_0[1] = 3/4
  CHECK(e.reference_perplexity == doctest::Approx(2.0).epsilon(1e-6));        // P_0[1] = 1/2
  SQ_CHECK_ERROR_CONTAINS(sq::score_sequence(p, std::span<const float>(q).first(3), tokens, 2), "score_sequence");
}

TEST_CASE("model quantize: on stories260K Hadamard and SingleQuant beat RTN; generate is seeded") {
  auto real = sq_test::load_reference_model("stories260K.bin");
  if (!real) return;
  const sq::llama_weights& w = real->weights;
  const std::vector<std::int32_t> bos = {1};
  std::vector<std::vector<std::int32_t>> calibration, held_out;
  for (std::uint64_t s = 0; s < 4; ++s) calibration.push_back(sq::generate(w, bos, 63, {.temperature = 1.0, .seed = s}));
  for (std::uint64_t s = 0; s < 4; ++s) held_out.push_back(sq::generate(w, bos, 63, {.temperature = 1.0, .seed = 1000 + s}));
  CHECK(sq::generate(w, bos, 20, {.temperature = 1.0, .seed = 3}) == sq::generate(w, bos, 20, {.temperature = 1.0, .seed = 3}));
  CHECK(sq::generate(w, bos, 20, {.temperature = 0.0}) == sq::generate(w, bos, 20, {.temperature = 0.0, .seed = 9}));
  double kl[3];
  for (const auto method : {sq::quant_method::rtn, sq::quant_method::hadamard, sq::quant_method::singlequant}) {
    const auto q = sq::quantize_model(w, calibration, sq::quantize_preset(method, 0));
    const sq::evaluation e = sq::evaluate(w, q, held_out);
    kl[int(method)] = e.kl;
    MESSAGE("stories260K method " << int(method) << ": ppl " << e.perplexity << " (fp " << e.reference_perplexity
                                  << ") KL " << e.kl << " top-1 " << e.top1);
  }
  CHECK(kl[1] < kl[0]);
  CHECK(kl[2] < kl[0]);
  const sq::evaluation same = sq::evaluate(w, w, held_out);
  CHECK(same.kl == doctest::Approx(0.0).epsilon(1e-12));
  CHECK(same.top1 == 1.0);
}

TEST_CASE("model quantize: bad input is an error naming the sizes") {
  const sq::llama_config c = sq_test::small_config();
  const sq::llama_model fp = sq_test::random_model(c, 1);
  const std::vector<std::vector<std::int32_t>> none;
  SQ_CHECK_ERROR_CONTAINS(sq::quantize_model(fp.weights(), none, sq::quantize_preset(sq::quant_method::singlequant)),
                          "quantize_model", "calibration is empty");
  CHECK_NOTHROW(static_cast<void>(sq::quantize_model(fp.weights(), none, sq::quantize_preset(sq::quant_method::hadamard))));
  sq::quantize_model_options options = sq::quantize_preset(sq::quant_method::rtn);
  options.weights.gran = sq::granularity::per_group;
  options.weights.group_size = 20;
  SQ_CHECK_ERROR_CONTAINS(sq::quantize_model(fp.weights(), none, options), "group size 20");
  const std::vector<std::vector<std::int32_t>> bad = {{1, 2, 99}};
  SQ_CHECK_ERROR_CONTAINS(sq::quantize_model(fp.weights(), bad, sq::quantize_preset(sq::quant_method::singlequant)),
                          "calibration token 99");
  sq::llama_config odd = c;
  odd.hidden_dim = 42;  // 2 x odd: no Hadamard of order 42 for the online down transform
  const sq::llama_model fp_odd = sq_test::random_model(odd, 2);
  SQ_CHECK_ERROR_CONTAINS(sq::quantize_model(fp_odd.weights(), none, sq::quantize_preset(sq::quant_method::hadamard)),
                          "Hadamard of order 42");
}

TEST_CASE("issue 14 - model quantize: a NaN or Inf parameter is an error naming the tensor, layer and element") {
  const sq::llama_config c = sq_test::small_config();
  const std::vector<std::vector<std::int32_t>> none;
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
    sq::llama_model fp = sq_test::random_model(c, 3);
    fp.linear(1, sq::linear_kind::down)(2, 5) = bad;
    // Before: the row of W R became NaN, quantize zeroed it, only the report's nan_count told.
    SQ_CHECK_ERROR_CONTAINS(sq::quantize_model(fp.weights(), none, sq::quantize_preset(sq::quant_method::hadamard)),
                            "quantize_model", "down of layer 1", "non-finite", "row 2, column 5");
    sq::llama_model gains = sq_test::random_model(c, 4);
    gains.layer_at(0).ffn_norm[7] = bad;
    SQ_CHECK_ERROR_CONTAINS(sq::quantize_model(gains.weights(), none, sq::quantize_preset(sq::quant_method::rtn)),
                            "quantize_model", "ffn_norm of layer 0", "column 7");
  }
  // Out-of-range enum values are errors.
  SQ_CHECK_ERROR_CONTAINS(static_cast<void>(sq::quantize_preset(static_cast<sq::quant_method>(3))), "quantize_preset",
                          "method has no enumerator of value 3");
  auto options = sq::quantize_preset(sq::quant_method::rtn);
  options.residual = static_cast<sq::residual_mode>(7);
  SQ_CHECK_ERROR_CONTAINS(sq::quantize_model(sq_test::random_model(c, 6).weights(), none, options), "quantize_model",
                          "residual has no enumerator of value 7");
}

TEST_CASE("issue 18 - model quantize: GPTQ weights are bit-identical for 1 and 3 threads and need calibration") {
  const sq::llama_config c = sq_test::small_config();
  const sq::llama_model fp = sq_test::random_model(c, 5);
  const auto calibration = sequences(4, 20, c.vocab_size, 77);
  for (const auto method : {sq::quant_method::rtn, sq::quant_method::singlequant}) {
    auto o = sq::quantize_preset(method, 2);
    o.quantizer = sq::weight_quantizer::gptq;
    o.threads = 1;
    const auto one = sq::quantize_model(fp.weights(), calibration, o);
    o.threads = 3;
    const auto three = sq::quantize_model(fp.weights(), calibration, o);
    auto rtn_options = o;
    rtn_options.quantizer = sq::weight_quantizer::rtn;
    const auto rtn = sq::quantize_model(fp.weights(), calibration, rtn_options);
    bool differs_from_rtn = false;
    for (std::size_t l = 0; l < c.n_layers; ++l)
      for (const auto kind : sq::layer_linears) {
        const auto& a = one.weight(l, kind);
        const auto& b = three.weight(l, kind);
        CHECK(std::equal(a.codes().begin(), a.codes().end(), b.codes().begin(), b.codes().end()));
        CHECK(std::equal(a.scales().begin(), a.scales().end(), b.scales().begin(), b.scales().end()));
        const auto& r = rtn.weight(l, kind);
        differs_from_rtn |= !std::equal(a.codes().begin(), a.codes().end(), r.codes().begin(), r.codes().end());
      }
    CHECK(differs_from_rtn);
  }
  auto o = sq::quantize_preset(sq::quant_method::rtn);
  o.quantizer = sq::weight_quantizer::gptq;
  SQ_CHECK_ERROR_CONTAINS(sq::quantize_model(fp.weights(), std::span<const std::vector<std::int32_t>>(), o),
                          "GPTQ needs calibration tokens");
  o.quantizer = static_cast<sq::weight_quantizer>(7);
  SQ_CHECK_ERROR_CONTAINS(sq::quantize_model(fp.weights(), calibration, o), "quantizer");
}

TEST_CASE("issue 18 - model quantize: on stories260K GPTQ weights lower the KL of RTN weights (Hadamard, SingleQuant)") {
  auto real = sq_test::load_reference_model("stories260K.bin");
  if (!real) return;
  const sq::llama_weights& w = real->weights;
  const std::vector<std::int32_t> bos = {1};
  std::vector<std::vector<std::int32_t>> calibration, held_out;
  for (std::uint64_t s = 0; s < 4; ++s) calibration.push_back(sq::generate(w, bos, 63, {.temperature = 1.0, .seed = s}));
  for (std::uint64_t s = 0; s < 4; ++s) held_out.push_back(sq::generate(w, bos, 63, {.temperature = 1.0, .seed = 1000 + s}));
  // Under the sanitizers (-O0, ~20x slower) only the Hadamard preset: the same GPTQ model path
  // without the ART/URT builds; the Release jobs compare both presets.
  std::vector<sq::quant_method> methods = {sq::quant_method::hadamard};
  if (!sq_test::sanitized_build) methods.push_back(sq::quant_method::singlequant);
  for (const auto method : methods) {
    auto o = sq::quantize_preset(method, 0);
    const double rtn = sq::evaluate(w, sq::quantize_model(w, calibration, o), held_out).kl;
    o.quantizer = sq::weight_quantizer::gptq;
    const double gptq = sq::evaluate(w, sq::quantize_model(w, calibration, o), held_out).kl;
    MESSAGE("stories260K method " << int(method) << ": KL rtn " << rtn << ", gptq " << gptq);
    CHECK(gptq < rtn);
  }
}
