// Tests of model/llama.hpp and model/forward.hpp: the reference float32 forward pass against the
// float64 reference logits in ../shared/models, against the independent llama2c session, KV-cache
// decoding against prefill, hooks, thread-count independence and bad input.
#include <singlequant/model/forward.hpp>

#include <numeric>

#include "model_support.hpp"

namespace sq = singlequant;

namespace {

std::vector<std::int32_t> to_int32(const std::vector<int>& v) { return {v.begin(), v.end()}; }

// Checks every position's top-5 ids and the last logits against a reference file.
void check_against_reference(const sq::llama_weights& w, const char* reference_name, double* max_diff) {
  const auto reference = llama2c::json::parse_file((std::filesystem::path(sq_test::models_dir()) / reference_name).string());
  const auto& sequence = reference["sequence"];
  const std::vector<std::int32_t> tokens = to_int32(sequence["token_ids"].to_int_vector());
  const auto& top5 = sequence["top5_token_ids_per_position"];
  const std::vector<double> last = sequence["last_position_logits_float32"].to_double_vector();
  const std::vector<float> logits = sq::forward_logits(w, tokens);
  const std::size_t vocab = w.config.vocab_size;
  REQUIRE(logits.size() == tokens.size() * vocab);
  for (std::size_t p = 0; p < tokens.size(); ++p) {
    std::vector<int> ids(vocab);
    std::iota(ids.begin(), ids.end(), 0);
    const float* row = logits.data() + p * vocab;
    std::partial_sort(ids.begin(), ids.begin() + 5, ids.end(), [&](int a, int b) {
      return row[a] != row[b] ? row[a] > row[b] : a < b;
    });
    ids.resize(5);
    CHECK_MESSAGE(ids == top5[p].to_int_vector(), "top-5 differs at position " << p);
  }
  double worst = 0;
  for (std::size_t i = 0; i < vocab; ++i)
    worst = std::max(worst, std::fabs(double(logits[(tokens.size() - 1) * vocab + i]) - last[i]));
  CHECK(worst < 1e-4);
  *max_diff = worst;
}

}  // namespace

TEST_CASE("model forward: stories260K and pycode11M match the float64 reference logits") {
  for (const char* name : {"stories260K", "pycode11M"}) {
    auto model = sq_test::load_reference_model((std::string(name) + ".bin").c_str());
    if (!model) continue;
    double diff = 0;
    check_against_reference(model->weights, (std::string(name) + ".reference.json").c_str(), &diff);
    MESSAGE(std::string(name) << ": max |logit - float64 reference| at the last position = " << diff);
  }
}

TEST_CASE("model forward: agrees with the llama2c session and KV-cache decoding agrees with prefill") {
  auto model = sq_test::load_reference_model("stories260K.bin");
  if (!model) return;
  const auto tokens = sq_test::random_tokens(40, model->weights.config.vocab_size, 3);
  const std::vector<float> prefill = sq::forward_logits(model->weights, tokens);
  const std::size_t vocab = model->weights.config.vocab_size;
  // Independent implementation: the llama2c example's token-by-token session.
  llama2c::session session(*model->file);
  std::vector<float> expected;
  for (std::size_t p = 0; p < tokens.size(); ++p) {
    const auto row = session.forward(tokens[p], int(p));
    expected.insert(expected.end(), row.begin(), row.end());
  }
  CHECK(sq_test::max_abs_diff(prefill, expected) < 1e-4);
  // Decoding in chunks of 1, 3, 7, ... through one cache gives the prefill's logits.
  sq::kv_cache cache(model->weights.config);
  std::vector<float> decoded;
  std::size_t at = 0, chunk = 1;
  while (at < tokens.size()) {
    const std::size_t n = std::min(chunk, tokens.size() - at);
    std::vector<float> part(n * vocab);
    sq::forward(model->weights, std::span(tokens).subspan(at, n), cache, sq::matrix_view<float>(part.data(), n, vocab));
    decoded.insert(decoded.end(), part.begin(), part.end());
    at += n;
    chunk += 2;
  }
  CHECK(cache.length() == tokens.size());
  CHECK(sq_test::max_abs_diff(prefill, decoded) < 1e-5);
  // Last-position-only logits equal the prefill's last row.
  sq::kv_cache fresh(model->weights.config);
  std::vector<float> last(vocab);
  sq::forward(model->weights, tokens, fresh, sq::matrix_view<float>(last.data(), 1, vocab));
  CHECK(std::equal(last.begin(), last.end(), prefill.end() - std::ptrdiff_t(vocab)));
}

TEST_CASE("model forward: hooks see every site with its width and can rewrite it") {
  const sq::llama_config c = sq_test::small_config();
  const sq::llama_model m = sq_test::random_model(c, 1);
  const auto tokens = sq_test::random_tokens(9, c.vocab_size, 2);
  std::vector<int> calls(5 * c.n_layers + 5, 0);
  sq::forward_hooks hooks;
  hooks.on_site_input = [&](sq::site_id site, std::size_t sequence, sq::matrix_view<float> x) {
    CHECK(sequence == 0);
    CHECK(x.rows() == tokens.size());
    CHECK(x.cols() == (site.kind == sq::site_kind::down_input ? c.hidden_dim : c.dim));
    CHECK(site.layer <= c.n_layers);
    ++calls[site.layer * 5 + static_cast<std::size_t>(site.kind)];
  };
  const auto plain = sq::forward_logits(m.weights(), tokens);
  CHECK(sq::forward_logits(m.weights(), tokens, hooks) == plain);
  for (std::size_t l = 0; l < c.n_layers; ++l)
    for (std::size_t s = 0; s < 4; ++s) CHECK(calls[l * 5 + s] == 1);
  CHECK(calls[c.n_layers * 5 + 4] == 1);
  // Zeroing the classifier input gives zero logits: the hook's rows are what the linear reads.
  hooks.on_site_input = [](sq::site_id site, std::size_t, sq::matrix_view<float> x) {
    if (site.kind == sq::site_kind::classifier_input)
      for (std::size_t t = 0; t < x.rows(); ++t)
        for (std::size_t k = 0; k < x.cols(); ++k) x(t, k) = 0;
  };
  for (const float v : sq::forward_logits(m.weights(), tokens, hooks)) CHECK(v == 0.0f);
}

TEST_CASE("model forward: a dense float64 recomputation of a small decoder agrees") {
  // Independent reference: the equations of llama.hpp written out directly in double.
  sq::llama_config c = sq_test::small_config();
  c.rope_theta = 500.0;
  c.norm_eps = 1e-3f;
  const sq::llama_model m = sq_test::random_model(c, 5);
  const sq::llama_weights w = m.weights();
  const auto tokens = sq_test::random_tokens(12, c.vocab_size, 6);
  const std::size_t T = tokens.size(), d = c.dim, hd = c.head_dim(), kv = c.kv_dim(), H = c.hidden_dim;
  std::vector<double> x(T * d);
  for (std::size_t t = 0; t < T; ++t)
    for (std::size_t i = 0; i < d; ++i) x[t * d + i] = w.embedding(std::size_t(tokens[t]), i);
  auto norm = [&](const std::vector<double>& in, sq::vector_view<const float> g) {
    std::vector<double> out(T * d);
    for (std::size_t t = 0; t < T; ++t) {
      double ss = 0;
      for (std::size_t i = 0; i < d; ++i) ss += in[t * d + i] * in[t * d + i];
      const double inv = 1.0 / std::sqrt(ss / double(d) + double(c.norm_eps));
      for (std::size_t i = 0; i < d; ++i) out[t * d + i] = in[t * d + i] * inv * double(g[i]);
    }
    return out;
  };
  auto mul = [&](const std::vector<double>& in, sq::matrix_view<const float> wm) {
    std::vector<double> out(T * wm.rows(), 0.0);
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t o = 0; o < wm.rows(); ++o)
        for (std::size_t k = 0; k < wm.cols(); ++k) out[t * wm.rows() + o] += in[t * wm.cols() + k] * double(wm(o, k));
    return out;
  };
  auto rope = [&](std::vector<double>& v, std::size_t width) {
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t e = 0; e < width; e += 2) {
        const std::size_t i = (e % hd) / 2;
        const double angle = double(t) * std::pow(c.rope_theta, -double(2 * i) / double(hd));
        const double a = v[t * width + e], b = v[t * width + e + 1];
        v[t * width + e] = a * std::cos(angle) - b * std::sin(angle);
        v[t * width + e + 1] = a * std::sin(angle) + b * std::cos(angle);
      }
  };
  for (std::size_t l = 0; l < c.n_layers; ++l) {
    const auto& L = w.layers[l];
    const auto a = norm(x, L.attention_norm);
    auto q = mul(a, L.q), k = mul(a, L.k);
    const auto v = mul(a, L.v);
    rope(q, d);
    rope(k, kv);
    std::vector<double> att(T * d, 0.0);
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t h = 0; h < c.n_heads; ++h) {
        const std::size_t g = h / (c.n_heads / c.n_kv_heads);
        std::vector<double> s(t + 1);
        double peak = -1e300, total = 0;
        for (std::size_t p = 0; p <= t; ++p) {
          double dot = 0;
          for (std::size_t i = 0; i < hd; ++i) dot += q[t * d + h * hd + i] * k[p * kv + g * hd + i];
          s[p] = dot / std::sqrt(double(hd));
          peak = std::max(peak, s[p]);
        }
        for (auto& e : s) total += e = std::exp(e - peak);
        for (std::size_t p = 0; p <= t; ++p)
          for (std::size_t i = 0; i < hd; ++i) att[t * d + h * hd + i] += s[p] / total * v[p * kv + g * hd + i];
      }
    const auto o = mul(att, L.o);
    for (std::size_t e = 0; e < T * d; ++e) x[e] += o[e];
    const auto f = norm(x, L.ffn_norm);
    const auto gate = mul(f, L.gate), up = mul(f, L.up);
    std::vector<double> hidden(T * H);
    for (std::size_t e = 0; e < T * H; ++e) hidden[e] = gate[e] / (1 + std::exp(-gate[e])) * up[e];
    const auto down = mul(hidden, L.down);
    for (std::size_t e = 0; e < T * d; ++e) x[e] += down[e];
  }
  const auto logits = mul(norm(x, w.final_norm), w.classifier);
  const auto got = sq::forward_logits(w, tokens);
  double worst = 0;
  for (std::size_t e = 0; e < got.size(); ++e) worst = std::max(worst, std::fabs(double(got[e]) - logits[e]));
  MESSAGE("small decoder: max |float32 - float64| = " << worst);
  CHECK(worst < 1e-4);
}

TEST_CASE("model forward: forward_batch gives the same logits for any thread count") {
  const sq::llama_config c = sq_test::small_config(true);
  const sq::llama_model m = sq_test::random_model(c, 11);
  std::vector<std::vector<std::int32_t>> sequences;
  for (std::size_t i = 0; i < 7; ++i) sequences.push_back(sq_test::random_tokens(5 + 3 * i, c.vocab_size, 20 + i));
  sq::batch_options one;
  one.threads = 1;
  sq::batch_options three;
  three.threads = 3;
  const auto a = sq::forward_batch(m.weights(), sequences, one);
  const auto b = sq::forward_batch(m.weights(), sequences, three);
  REQUIRE(a.size() == sequences.size());
  CHECK(a == b);
  for (std::size_t i = 0; i < sequences.size(); ++i) CHECK(a[i] == sq::forward_logits(m.weights(), sequences[i]));
}

TEST_CASE("model forward: bad configurations, weights and inputs are errors naming the sizes") {
  sq::llama_config c = sq_test::small_config();
  sq::llama_config bad = c;
  bad.n_kv_heads = 3;
  SQ_CHECK_ERROR_CONTAINS(sq::llama_model(bad), "llama_model", "n_kv_heads 3");
  bad = c;
  bad.n_heads = 5;
  SQ_CHECK_ERROR_CONTAINS(sq::llama_model(bad), "dim 32", "n_heads 5");
  bad = c;
  bad.norm_eps = 0;
  SQ_CHECK_ERROR_CONTAINS(sq::llama_model(bad), "norm_eps");
  const sq::llama_model m = sq_test::random_model(c, 1);
  sq::llama_weights w = m.weights();
  const std::vector<std::int32_t> tokens = {1, 2, 40};
  SQ_CHECK_ERROR_CONTAINS(sq::forward_logits(w, tokens), "forward", "token 40", "vocabulary of 40");
  sq::kv_cache small(c, 2);
  const std::vector<std::int32_t> three = {1, 2, 3};
  SQ_CHECK_ERROR_CONTAINS(sq::forward(w, three, small, {}), "3 tokens", "capacity 2");
  std::vector<float> logits(2 * c.vocab_size);
  sq::kv_cache cache(c);
  SQ_CHECK_ERROR_CONTAINS(sq::forward(w, three, cache, sq::matrix_view<float>(logits.data(), 2, c.vocab_size)),
                          "logits are 2 x 40");
  w.layers[1].q = sq::matrix_view<const float>(w.layers[1].q.data(), 31, 32);
  SQ_CHECK_ERROR_CONTAINS(sq::forward_logits(w, three), "q of layer 1 is 31 x 32");
  w = m.weights();
  w.layers.pop_back();
  SQ_CHECK_ERROR_CONTAINS(sq::forward_logits(w, three), "1 layers");
  sq::llama_config other = c;
  other.n_layers = 3;
  sq::kv_cache wrong(other);
  SQ_CHECK_ERROR_CONTAINS(sq::forward(m.weights(), three, wrong, {}), "another configuration");
}

TEST_CASE("README: Llama-family models") {
  namespace sq = singlequant;
  sq::llama_config c{.dim = 64, .hidden_dim = 172, .n_layers = 5, .n_heads = 8, .n_kv_heads = 4,
                     .vocab_size = 512, .max_seq_len = 512};
  sq::llama_model model(c);                     // owning, zero weights; or view your own memory:
  sq::llama_weights w = model.weights();        // llama_weights{config, embedding, layers, final_norm, classifier}
  std::vector<std::int32_t> tokens = {1, 72, 300};
  std::vector<float> logits = sq::forward_logits(w, tokens);        // 3 x 512, every position
  sq::kv_cache cache(c);                                            // decoding: one chunk at a time
  std::vector<float> last(512);
  sq::forward(w, tokens, cache, sq::matrix_view<float>(last.data(), 1, 512));  // last position only
  sq::forward_hooks hooks;                      // see (and rewrite) every site input, tokens x width
  hooks.on_site_input = [](sq::site_id /*kind, layer*/, std::size_t /*sequence*/, sq::matrix_view<float> /*x*/) {};
  static_cast<void>(sq::forward_logits(w, tokens, hooks));
  CHECK(logits.size() == 3 * 512);
  CHECK(std::equal(last.begin(), last.end(), logits.end() - 512));
}

TEST_CASE("issue 14 - model: a configuration (as read from a file header) cannot ask for unbounded memory") {
  const sq::llama_config c = sq_test::small_config();
  sq::llama_config huge = c;
  huge.n_layers = std::size_t{1} << 40;  // 2^40 layers of 32 x 48 matrices: > 1 TiB of parameters
  SQ_CHECK_ERROR_CONTAINS(sq::llama_model(huge), "llama_model", "parameters", "allocation limit");
  huge = c;
  huge.vocab_size = std::size_t{1} << 62;  // vocab x dim overflows
  SQ_CHECK_ERROR_CONTAINS(sq::llama_model(huge), "llama_model", "sizes overflow");
  huge = c;
  huge.max_seq_len = std::size_t{1} << 62;  // the KV cache 2 n_layers max_seq_len kv_dim overflows
  SQ_CHECK_ERROR_CONTAINS(sq::llama_model(huge), "llama_model", "sizes overflow", "max_seq_len");
  CHECK(sq::parameter_count(c) == sq_test::random_model(c, 5).weights().embedding.size() * 2 + c.dim +
                                      c.n_layers * (2 * c.dim + 2 * c.dim * c.dim + 2 * c.kv_dim() * c.dim +
                                                    3 * c.hidden_dim * c.dim));
}
