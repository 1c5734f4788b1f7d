// Tests of model/fusion.hpp: each transformation leaves the logits unchanged (float tolerance
// stated per test) and equals the dense-matrix product it stands for.
#include <singlequant/model/fusion.hpp>

#include "model_support.hpp"

namespace sq = singlequant;

namespace {

// A randomised Hadamard followed by random Givens rotations: a dense, non-trivial orthogonal R.
sq::site_transform random_rotation(std::size_t n, std::uint64_t seed) {
  sq::transform_factor f;
  f.size = n;
  f.use_hadamard = sq::is_hadamard_order_supported(n);
  f.hadamard.randomized = true;
  f.hadamard.seed = seed;
  f.rotations = sq::givens_sequence<double>(n);
  std::mt19937_64 rng(seed);
  for (std::size_t r = 0; r < 3 * n; ++r) {
    const std::size_t i = rng() % n, j = (i + 1 + rng() % (n - 1)) % n;
    f.rotations.push_back(sq::givens<double>::from_angle(i, j, double(rng() % 10000) * 1e-3));
  }
  return sq::site_transform(std::move(f));
}

// The matrices of a model as doubles (for dense references).
std::vector<double> to_double(sq::matrix_view<const float> m) {
  std::vector<double> out(m.rows() * m.cols());
  for (std::size_t r = 0; r < m.rows(); ++r)
    for (std::size_t k = 0; k < m.cols(); ++k) out[r * m.cols() + k] = m(r, k);
  return out;
}
// a (rows x inner) times b (inner x cols), all row-major double.
std::vector<double> matmul(const std::vector<double>& a, const std::vector<double>& b, std::size_t rows,
                           std::size_t inner, std::size_t cols) {
  std::vector<double> out(rows * cols, 0.0);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t k = 0; k < inner; ++k)
      for (std::size_t j = 0; j < cols; ++j) out[i * cols + j] += a[i * inner + k] * b[k * cols + j];
  return out;
}
std::vector<double> transpose(const std::vector<double>& a, std::size_t rows, std::size_t cols) {
  std::vector<double> out(rows * cols);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) out[j * rows + i] = a[i * cols + j];
  return out;
}
double max_diff(sq::matrix_view<const float> m, const std::vector<double>& expected) {
  double worst = 0;
  for (std::size_t r = 0; r < m.rows(); ++r)
    for (std::size_t k = 0; k < m.cols(); ++k)
      worst = std::max(worst, std::fabs(double(m(r, k)) - expected[r * m.cols() + k]));
  return worst;
}

std::vector<std::vector<std::int32_t>> some_sequences(std::size_t vocab) {
  return {sq_test::random_tokens(17, vocab, 1), sq_test::random_tokens(9, vocab, 2)};
}

double logits_change(const sq::llama_weights& before, const sq::llama_weights& after,
                     const sq::forward_hooks& hooks = {}) {
  double worst = 0;
  for (const auto& tokens : some_sequences(before.config.vocab_size))
    worst = std::max(worst, sq_test::max_abs_diff(sq::forward_logits(before, tokens),
                                                  sq::forward_logits(after, tokens, hooks)));
  return worst;
}

}  // namespace

TEST_CASE("model fusion: fold_norms keeps the logits and scales the columns (random and real models)") {
  for (const bool tied : {false, true}) {
    const sq::llama_config c = sq_test::small_config(tied);
    const sq::llama_model original = sq_test::random_model(c, 3);
    sq::llama_model folded = original;
    sq::fold_norms(folded);
    CHECK(folded.layer_at(0).attention_norm.empty());
    CHECK(folded.final_norm().empty());
    CHECK_FALSE(folded.config().tied_classifier);  // the final gains are not all ones
    CHECK(sq::norms_folded(folded));
    CHECK(logits_change(original.weights(), folded.weights()) < 1e-5);
    // W diag(g), column by column, for q of layer 1 and the classifier.
    sq::llama_model copy = original;
    const auto g = copy.layer_at(1).attention_norm;
    const auto q = copy.linear(1, sq::linear_kind::q);
    std::vector<double> expected = to_double(q);
    for (std::size_t r = 0; r < q.rows(); ++r)
      for (std::size_t k = 0; k < q.cols(); ++k) expected[r * q.cols() + k] *= double(g[k]);
    CHECK(max_diff(folded.linear(1, sq::linear_kind::q), expected) < 1e-6);
  }
  auto real = sq_test::load_reference_model("stories260K.bin");
  if (!real) return;
  sq::llama_model folded(real->weights);
  sq::fold_norms(folded);
  const double change = logits_change(real->weights, folded.weights());
  MESSAGE("stories260K: max |logit change| after fold_norms = " << change);
  CHECK(change < 1e-4);
}

TEST_CASE("model fusion: rotate_residual keeps the logits and equals E R, W R, R^T W_o") {
  for (const bool tied : {false, true}) {
    const sq::llama_config c = sq_test::small_config(tied);
    sq::llama_model original = sq_test::random_model(c, 4);
    sq::fold_norms(original);
    sq::llama_model rotated = original;
    const sq::site_transform r = random_rotation(c.dim, 9);
    sq::rotate_residual(rotated, r);
    CHECK(rotated.config().tied_classifier == original.config().tied_classifier);
    const double change = logits_change(original.weights(), rotated.weights());
    MESSAGE("small decoder: max |logit change| after rotate_residual = " << change);
    CHECK(change < 1e-4);
    // Dense references.
    const std::vector<double> R = r.to_dense();
    const std::size_t d = c.dim;
    const auto w = original.weights();
    CHECK(max_diff(rotated.embedding(), matmul(to_double(w.embedding), R, c.vocab_size, d, d)) < 1e-5);
    CHECK(max_diff(rotated.classifier(), matmul(to_double(w.classifier), R, c.vocab_size, d, d)) < 1e-5);
    CHECK(max_diff(rotated.linear(1, sq::linear_kind::k), matmul(to_double(w.layers[1].k), R, c.kv_dim(), d, d)) < 1e-5);
    CHECK(max_diff(rotated.linear(0, sq::linear_kind::up), matmul(to_double(w.layers[0].up), R, c.hidden_dim, d, d)) < 1e-5);
    CHECK(max_diff(rotated.linear(0, sq::linear_kind::o), matmul(transpose(R, d, d), to_double(w.layers[0].o), d, d, d)) < 1e-5);
    CHECK(max_diff(rotated.linear(1, sq::linear_kind::down),
                   matmul(transpose(R, d, d), to_double(w.layers[1].down), d, d, c.hidden_dim)) < 1e-5);
  }
  sq::llama_model unfolded = sq_test::random_model(sq_test::small_config(), 4);
  SQ_CHECK_ERROR_CONTAINS(sq::rotate_residual(unfolded, random_rotation(32, 1)), "rotate_residual", "fold_norms");
  SQ_CHECK_ERROR_CONTAINS(sq::rotate_residual(unfolded, random_rotation(16, 1)), "order 16", "width 32");
}

TEST_CASE("model fusion: rotate_heads keeps the logits and equals R^T W_v,h and W_o,h R") {
  const sq::llama_config c = sq_test::small_config();
  const sq::llama_model original = sq_test::random_model(c, 5);
  sq::llama_model rotated = original;
  const sq::site_transform r = random_rotation(c.head_dim(), 10);
  for (std::size_t l = 0; l < c.n_layers; ++l) sq::rotate_heads(rotated, l, r);
  const double change = logits_change(original.weights(), rotated.weights());
  MESSAGE("small decoder: max |logit change| after rotate_heads = " << change);
  CHECK(change < 1e-4);
  // Dense reference: blockdiag(R, ..., R) on the v outputs and on the o inputs.
  const std::size_t d = c.dim, hd = c.head_dim(), kv = c.kv_dim();
  const std::vector<double> R = r.to_dense();
  std::vector<double> Bv(kv * kv, 0.0), Bo(d * d, 0.0);
  for (std::size_t g = 0; g < kv / hd; ++g)
    for (std::size_t i = 0; i < hd; ++i)
      for (std::size_t j = 0; j < hd; ++j) Bv[(g * hd + i) * kv + g * hd + j] = R[i * hd + j];
  for (std::size_t h = 0; h < d / hd; ++h)
    for (std::size_t i = 0; i < hd; ++i)
      for (std::size_t j = 0; j < hd; ++j) Bo[(h * hd + i) * d + h * hd + j] = R[i * hd + j];
  const auto w = original.weights();
  CHECK(max_diff(rotated.linear(1, sq::linear_kind::v), matmul(transpose(Bv, kv, kv), to_double(w.layers[1].v), kv, kv, d)) < 1e-5);
  CHECK(max_diff(rotated.linear(1, sq::linear_kind::o), matmul(to_double(w.layers[1].o), Bo, d, d, d)) < 1e-5);
  SQ_CHECK_ERROR_CONTAINS(sq::rotate_heads(rotated, 0, random_rotation(c.dim, 1)), "rotate_heads", "head_dim 8");
}

TEST_CASE("model fusion: fold_online at every site keeps the logits (with the online hooks) and equals W R") {
  const sq::llama_config c = sq_test::small_config();
  const sq::llama_model original = sq_test::random_model(c, 6);
  sq::llama_model rotated = original;
  sq::online_transforms online;
  std::uint64_t seed = 20;
  for (std::size_t l = 0; l < c.n_layers; ++l)
    for (const sq::site_kind site : sq::layer_sites)
      sq::fold_online(rotated, online, l, site, random_rotation(site == sq::site_kind::down_input ? c.hidden_dim : c.dim, seed++));
  const double change = logits_change(original.weights(), rotated.weights(), sq::online_hooks(online));
  MESSAGE("small decoder: max |logit change| after fold_online at all sites = " << change);
  CHECK(change < 1e-4);
  CHECK(logits_change(original.weights(), rotated.weights()) > 1e-2);  // without the online half it breaks
  const auto w = original.weights();
  const std::vector<double> Rd = online.at(1, sq::site_kind::down_input)->to_dense();
  CHECK(max_diff(rotated.linear(1, sq::linear_kind::down),
                 matmul(to_double(w.layers[1].down), Rd, c.dim, c.hidden_dim, c.hidden_dim)) < 1e-5);
  const std::vector<double> Ra = online.at(0, sq::site_kind::attention_input)->to_dense();
  CHECK(max_diff(rotated.linear(0, sq::linear_kind::v), matmul(to_double(w.layers[0].v), Ra, c.kv_dim(), c.dim, c.dim)) < 1e-5);
  SQ_CHECK_ERROR_CONTAINS(sq::fold_online(rotated, online, 0, sq::site_kind::o_proj_input, random_rotation(c.dim, 1)),
                          "fold_online", "already has");
  SQ_CHECK_ERROR_CONTAINS(sq::fold_online(rotated, online, 0, sq::site_kind::down_input, random_rotation(c.dim, 1)),
                          "order 32", "width 48");
}

TEST_CASE("model fusion: the whole chain on stories260K keeps the logits") {
  auto real = sq_test::load_reference_model("stories260K.bin");
  if (!real) return;
  const sq::llama_config& c = real->weights.config;
  sq::llama_model m(real->weights);
  sq::fold_norms(m);
  sq::rotate_residual(m, random_rotation(c.dim, 1));
  sq::online_transforms online;
  for (std::size_t l = 0; l < c.n_layers; ++l) {
    sq::rotate_heads(m, l, random_rotation(c.head_dim(), 100 + l));
    sq::fold_online(m, online, l, sq::site_kind::o_proj_input, random_rotation(c.dim, 200 + l));
    sq::fold_online(m, online, l, sq::site_kind::down_input, random_rotation(c.hidden_dim, 300 + l));
  }
  const double change = logits_change(real->weights, m.weights(), sq::online_hooks(online));
  MESSAGE("stories260K: max |logit change| after folding, residual, head and online rotations = " << change);
  CHECK(change < 1e-3);
}
