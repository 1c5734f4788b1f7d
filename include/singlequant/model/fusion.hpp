// singlequant/model/fusion.hpp - exact, function-preserving transformations of a llama_model.
//
// Every function below changes the weights so that the logits stay the same in exact arithmetic
// (float32 results move by rounding only); each works in double and rounds every weight once.
//   fold_norms:       W <- W diag(g) for the linears reading each RMSNorm (q, k, v by the attention
//                     norm, gate, up by the FFN norm, the classifier by the final norm); gains -> 1.
//                     rmsnorm(x) g W^T = rmsnorm(x) (W diag(g))^T.
//   rotate_residual:  residual stream x -> x R for an orthogonal R (needs folded norms, since
//                     rmsnorm(x R) = rmsnorm(x) R only without gains): embedding E <- E R, inputs of
//                     q, k, v, gate, up and the classifier W <- W R, outputs of o and down W <- R^T W.
//   rotate_heads:     per head, v_h -> v_h R (R of order head_dim): rows of each kv head of v
//                     W_v,h <- R^T W_v,h and each head's columns of o W_o,h <- W_o,h R. Attention
//                     mixes v over positions only, so the head outputs turn by R and o undoes it.
//   fold_online:      an online transform R at a site: every linear reading it W <- W R; at run time
//                     the site input must become x R (online_transforms + online_hooks do that for
//                     the float forward). y = (x R)(W R)^T = x W^T.
#ifndef SINGLEQUANT_MODEL_FUSION_HPP
#define SINGLEQUANT_MODEL_FUSION_HPP

#include <array>
#include <cstddef>
#include <optional>
#include <vector>

#include "../config.hpp"
#include "../transform.hpp"
#include "../view.hpp"
#include "forward.hpp"
#include "llama.hpp"

SINGLEQUANT_BEGIN_NAMESPACE

namespace detail {

/// Every row of w <- row R (W <- W R), in double.
inline void rotate_inputs(matrix_view<float> w, const site_transform& r) { r.fold_into_weights(w); }

/// W <- R^T W for w (rows x cols) and R of order rows (the output side: y R = x (R^T W)^T), in double:
/// the columns of W turn as row vectors.
inline void rotate_outputs(matrix_view<float> w, const site_transform& r) {
  const std::size_t rows = w.rows(), cols = w.cols();
  std::vector<double> t(cols * rows);
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) t[j * rows + i] = static_cast<double>(w(i, j));
  r.apply_rows(matrix_view<double>(t.data(), cols, rows));
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) w(i, j) = static_cast<float>(t[j * rows + i]);
}

inline bool unit_or_empty(const std::vector<float>& g) noexcept {
  for (const float v : g)
    if (v != 1.0f) return false;
  return true;
}

}  // namespace detail

/// Folds every RMSNorm gain into the linears that read the norm (see the file comment) and clears
/// the gains (empty = all ones). A tied classifier is untied first when the final gains are not all
/// ones. Idempotent.
inline void fold_norms(llama_model& m) {
  const llama_config& c = m.config();
  auto scale_columns = [](matrix_view<float> w, const std::vector<float>& g) {
    for (std::size_t r = 0; r < w.rows(); ++r)
      for (std::size_t k = 0; k < w.cols(); ++k)
        w(r, k) = static_cast<float>(static_cast<double>(w(r, k)) * static_cast<double>(g[k]));
  };
  for (std::size_t l = 0; l < c.n_layers; ++l) {
    auto& layer = m.layer_at(l);
    if (!layer.attention_norm.empty())
      for (const linear_kind k : {linear_kind::q, linear_kind::k, linear_kind::v})
        scale_columns(m.linear(l, k), layer.attention_norm);
    if (!layer.ffn_norm.empty())
      for (const linear_kind k : {linear_kind::gate, linear_kind::up}) scale_columns(m.linear(l, k), layer.ffn_norm);
    layer.attention_norm.clear();
    layer.ffn_norm.clear();
  }
  if (!detail::unit_or_empty(m.final_norm())) {
    m.untie_classifier();
    scale_columns(m.classifier(), m.final_norm());
  }
  m.final_norm().clear();
}

/// True when no norm carries gains (fold_norms has run, or every gain is 1).
[[nodiscard]] inline bool norms_folded(llama_model& m) {
  for (std::size_t l = 0; l < m.config().n_layers; ++l)
    if (!detail::unit_or_empty(m.layer_at(l).attention_norm) || !detail::unit_or_empty(m.layer_at(l).ffn_norm))
      return false;
  return detail::unit_or_empty(m.final_norm());
}

/// Rotates the residual stream by r (order dim; see the file comment). A tied classifier stays
/// tied (E R serves both). Errors: r of another order, norms not folded.
inline void rotate_residual(llama_model& m, const site_transform& r) {
  constexpr const char* fn = "rotate_residual";
  const llama_config& c = m.config();
  detail::check(r.size() == c.dim, fn, "transform of order ", r.size(), " for residual width ", c.dim);
  detail::check(norms_folded(m), fn, "the norms carry gains: fold_norms first (rmsnorm(x R) = rmsnorm(x) R needs unit gains)");
  detail::rotate_inputs(m.embedding(), r);
  if (!c.tied_classifier) detail::rotate_inputs(m.classifier(), r);
  for (std::size_t l = 0; l < c.n_layers; ++l) {
    for (const linear_kind k : {linear_kind::q, linear_kind::k, linear_kind::v, linear_kind::gate, linear_kind::up})
      detail::rotate_inputs(m.linear(l, k), r);
    detail::rotate_outputs(m.linear(l, linear_kind::o), r);
    detail::rotate_outputs(m.linear(l, linear_kind::down), r);
  }
}

/// Fuses a per-head rotation r (order head_dim) into v and o of one layer (see the file comment).
/// Errors: r of another order, layer out of range.
inline void rotate_heads(llama_model& m, std::size_t layer, const site_transform& r) {
  constexpr const char* fn = "rotate_heads";
  const llama_config& c = m.config();
  const std::size_t hd = c.head_dim();
  detail::check(r.size() == hd, fn, "transform of order ", r.size(), " for head_dim ", hd);
  detail::check(layer < c.n_layers, fn, "layer ", layer, " of ", c.n_layers);
  const matrix_view<float> v = m.linear(layer, linear_kind::v), o = m.linear(layer, linear_kind::o);
  for (std::size_t g = 0; g < c.n_kv_heads; ++g) detail::rotate_outputs(v.row_block(g * hd, hd), r);
  for (std::size_t h = 0; h < c.n_heads; ++h) detail::rotate_inputs(o.submatrix(0, h * hd, o.rows(), hd), r);
}

/// Online transforms of every layer's sites (absent: none), applied to the site inputs at run time.
struct online_transforms {
  std::vector<std::array<std::optional<site_transform>, 4>> layers;  ///< by layer, then site_kind
  [[nodiscard]] const site_transform* at(std::size_t layer, site_kind site) const noexcept {
    if (layer >= layers.size() || site == site_kind::classifier_input) return nullptr;
    const auto& t = layers[layer][static_cast<std::size_t>(site)];
    return t ? &*t : nullptr;
  }
};

/// The linears that read a layer site.
[[nodiscard]] inline std::vector<linear_kind> readers_of(site_kind site) {
  switch (site) {
    case site_kind::attention_input: return {linear_kind::q, linear_kind::k, linear_kind::v};
    case site_kind::o_proj_input: return {linear_kind::o};
    case site_kind::ffn_input: return {linear_kind::gate, linear_kind::up};
    case site_kind::down_input: return {linear_kind::down};
    case site_kind::classifier_input: return {linear_kind::classifier};
  }
  return {};
}

/// Folds an online transform r into every linear reading `site` of `layer` (W <- W R) and records
/// it in `online` (the run-time half). Exact with or without folded norms (the rotation acts after
/// the norm). Errors: r of another order than the site width, layer out of range, the classifier
/// site, a site that already has an online transform.
inline void fold_online(llama_model& m, online_transforms& online, std::size_t layer, site_kind site,
                        site_transform r) {
  constexpr const char* fn = "fold_online";
  const llama_config& c = m.config();
  detail::check(layer < c.n_layers && site != site_kind::classifier_input, fn, "layer ", layer, " of ",
                c.n_layers, " (the classifier input takes no online transform)");
  const std::size_t width = site == site_kind::down_input ? c.hidden_dim : c.dim;
  detail::check(r.size() == width, fn, "transform of order ", r.size(), " at ", to_string(site), " of width ",
                width);
  detail::check(!online.at(layer, site), fn, to_string(site), " of layer ", layer, " already has an online transform");
  for (const linear_kind k : readers_of(site)) detail::rotate_inputs(m.linear(layer, k), r);
  if (online.layers.size() < c.n_layers) online.layers.resize(c.n_layers);
  online.layers[layer][static_cast<std::size_t>(site)] = std::move(r);
}

/// Hooks that apply the online transforms to the site inputs of the float forward pass (x <- x R).
/// `online` must outlive the hooks.
[[nodiscard]] inline forward_hooks online_hooks(const online_transforms& online) {
  forward_hooks hooks;
  hooks.on_site_input = [&online](site_id site, std::size_t, matrix_view<float> x) {
    if (const site_transform* r = online.at(site.layer, site.kind)) r->apply_rows(x);
  };
  return hooks;
}

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_MODEL_FUSION_HPP
