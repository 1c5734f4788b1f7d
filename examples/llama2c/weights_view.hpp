// weights_view.hpp - singlequant::llama_weights views over a loaded llama2c::model (no copy).
#pragma once

#include <singlequant/model/llama.hpp>

#include "llama2c.hpp"

namespace llama2c {

/// The model's parameters as the library's views (valid while `m` lives and keeps its shape).
inline singlequant::llama_weights to_weights(const model& m) {
  namespace sq = singlequant;
  const config& c = m.cfg();
  sq::llama_weights w;
  const auto size = [](int n) { return static_cast<std::size_t>(n); };
  w.config.dim = size(c.dim);
  w.config.hidden_dim = size(c.hidden_dim);
  w.config.n_layers = size(c.n_layers);
  w.config.n_heads = size(c.n_heads);
  w.config.n_kv_heads = size(c.n_kv_heads);
  w.config.vocab_size = size(c.vocab_size);
  w.config.max_seq_len = size(c.seq_len);
  w.config.norm_eps = 1e-5f;
  w.config.rope_theta = 10000.0;
  w.config.tied_classifier = c.shared_classifier;
  const auto view = [&](const_matrix_ref r) {
    return sq::matrix_view<const float>(r.data, size(r.out_features), size(r.in_features));
  };
  w.embedding = view(m.token_embedding());
  w.classifier = view(m.classifier());
  w.final_norm = sq::vector_view<const float>(m.rms_final().data(), m.rms_final().size());
  w.layers.resize(w.config.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    sq::llama_layer_view& layer = w.layers[size(l)];
    layer.attention_norm = sq::vector_view<const float>(m.rms_att(l).data(), m.rms_att(l).size());
    layer.ffn_norm = sq::vector_view<const float>(m.rms_ffn(l).data(), m.rms_ffn(l).size());
    layer.q = view(m.linear(weight_id::wq, l));
    layer.k = view(m.linear(weight_id::wk, l));
    layer.v = view(m.linear(weight_id::wv, l));
    layer.o = view(m.linear(weight_id::wo, l));
    layer.gate = view(m.linear(weight_id::w1, l));
    layer.up = view(m.linear(weight_id::w3, l));
    layer.down = view(m.linear(weight_id::w2, l));
  }
  return w;
}

}  // namespace llama2c
