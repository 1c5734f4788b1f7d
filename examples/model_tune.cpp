// model_tune: screens quantize_model options on the *validation* sequences (seeds 2000003..), never
// the held-out evaluation text (seeds 1000003.., model_eval's), so defaults are chosen on
// calibration-side data only. Prints the Hadamard preset's KL and each variant's KL and ratio.
//
// Usage: model_tune [--models DIR] [--model NAME] [--sequences N] [--length N] [--seeds N]
//                   [--grid 7|8|both] [--split validation|heldout] variant...
// A variant is a comma-separated list of edits on the singlequant preset ("default": none):
//   rl=X / ol=X   weight_term.lambda of the residual / online rules
//   rb=X / ob=X   urt.budget_per_channel of the residual / online rules
//   rw=energy / ow=energy   weight_term.weighting
//   rm=N / om=N   weight_term.max_rows;  um=N  urt.max_rows (both rule sets)
//   ps=1          per-site residual transforms;  art=0  ART off;  gptq=1  GPTQ weights
#include <singlequant/model/evaluate.hpp>
#include <singlequant/model/quantize.hpp>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <formats/llama2c_model.hpp>
#include <formats/llama2c_tokenizer.hpp>

namespace sq = singlequant;

namespace {

void apply_edit(sq::quantize_model_options& o, const std::string& key, const std::string& value) {
  const double x = value.empty() || !(std::isdigit(static_cast<unsigned char>(value[0])) || value[0] == '.') ? 0.0 : std::stod(value);
  auto& r = o.residual_rules;
  auto& n = o.online_rules;
  if (key == "rl") r.weight_term.lambda = x;
  else if (key == "ol") n.weight_term.lambda = x;
  else if (key == "rb") r.urt.budget_per_channel = x;
  else if (key == "ob") n.urt.budget_per_channel = x;
  else if (key == "rw") r.weight_term.weighting = value == "energy" ? sq::weight_row_weighting::energy : sq::weight_row_weighting::unit;
  else if (key == "ow") n.weight_term.weighting = value == "energy" ? sq::weight_row_weighting::energy : sq::weight_row_weighting::unit;
  else if (key == "rm") r.weight_term.max_rows = static_cast<std::size_t>(x);
  else if (key == "om") n.weight_term.max_rows = static_cast<std::size_t>(x);
  else if (key == "um") r.urt.max_rows = n.urt.max_rows = static_cast<std::size_t>(x);
  else if (key == "ps") o.residual = x != 0 ? sq::residual_mode::per_site : sq::residual_mode::shared;
  else if (key == "art") r.use_art = n.use_art = x != 0;
  else if (key == "gptq") o.quantizer = x != 0 ? sq::weight_quantizer::gptq : sq::weight_quantizer::rtn;
  else if (key != "default") std::fprintf(stderr, "unknown edit %s\n", key.c_str());
}

void apply_variant(sq::quantize_model_options& o, const std::string& variant) {
  std::stringstream ss(variant);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto eq = item.find('=');
    apply_edit(o, item.substr(0, eq), eq == std::string::npos ? std::string() : item.substr(eq + 1));
  }
}

// The W4A4 forward of a quantized_model with activation quantisation skipped at the sites of
// `skip` (by layer x site_kind): what each site's activation rounding costs in KL.
struct masked_executor {
  const sq::quantized_model* model;
  const std::vector<char>* skip;  // layer * 4 + site_kind
  void embed(std::int32_t token, float* row) const {
    const auto e = model->embedding().row(static_cast<std::size_t>(token));
    std::copy(e.begin(), e.end(), row);
  }
  [[nodiscard]] static const float* norm(sq::site_kind, std::size_t) noexcept { return nullptr; }
  void site_input(sq::site_id site, std::size_t, sq::matrix_view<float> x) const {
    if (const sq::site_transform* r = model->online(site.layer, site.kind)) r->apply_rows(x);
    if (site.kind == sq::site_kind::classifier_input) return;
    if ((*skip)[site.layer * 4 + static_cast<std::size_t>(site.kind)]) return;
    sq::fake_quantize<float>(x, x, model->activation_config());
  }
  void linear(sq::linear_kind kind, std::size_t layer, sq::matrix_view<const float> x, sq::matrix_view<float> y) const {
    sq::detail::linear_float(x, model->dequantized(layer, kind), y);
  }
};

double masked_kl(const sq::llama_weights& w, const sq::quantized_model& q, const std::vector<std::vector<std::int32_t>>& eval,
                 const std::vector<char>& skip) {
  const auto e = sq::evaluate_logits(
      [&](std::span<const std::int32_t> t) { return sq::forward_logits(w, t); },
      [&](std::span<const std::int32_t> t) {
        sq::kv_cache cache(q.config(), std::max<std::size_t>(t.size(), 1));
        std::vector<float> out(t.size() * q.config().vocab_size);
        masked_executor ex{&q, &skip};
        sq::detail::forward_scratch scratch;
        sq::detail::decoder_forward(ex, q.config(), t, cache, sq::matrix_view<float>(out.data(), t.size(), q.config().vocab_size), 0, scratch);
        return out;
      },
      std::span<const std::vector<std::int32_t>>(eval), w.config.vocab_size, 0);
  return e.kl;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = SINGLEQUANT_MODELS_DIR, only = "stories260K", grids = "both", split = "validation";
  std::size_t sequences = 8, length = 128, seeds = 3;
  std::vector<std::string> variants;
  std::string sites_variant;  // non-empty: per-site activation leave-one-out table instead
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (key.rfind("--", 0) == 0 && i + 1 < argc) {
      const std::string value = argv[++i];
      if (key == "--models") dir = value;
      else if (key == "--model") only = value;
      else if (key == "--sequences") sequences = std::stoul(value);
      else if (key == "--length") length = std::stoul(value);
      else if (key == "--seeds") seeds = std::stoul(value);
      else if (key == "--grid") grids = value;
      else if (key == "--split") split = value;
      else if (key == "--sites") sites_variant = value;
    } else {
      variants.push_back(key);
    }
  }
  if (variants.empty()) variants.push_back("default");
  const std::string path = dir + "/" + only + ".bin";
  if (!std::filesystem::exists(path)) {
    std::printf("skipping %s: %s not found\n", only.c_str(), path.c_str());
    return 0;
  }
  const auto file = llama2c::model::load(path);
  const sq::llama_weights w = llama2c::to_weights(file);
  const std::vector<std::int32_t> bos = {llama2c::tokenizer::bos_id};
  const std::uint64_t eval_base = split == "heldout" ? 1000003 : 2000003;
  std::vector<std::vector<std::int32_t>> calibration, eval;
  for (std::size_t s = 0; s < sequences; ++s) {
    calibration.push_back(sq::generate(w, bos, length - 1, {.temperature = 1.0, .seed = s}));
    eval.push_back(sq::generate(w, bos, length - 1, {.temperature = 1.0, .seed = eval_base + s}));
  }
  std::printf("# %s, %zu x %zu, split %s, %zu seeds\n", only.c_str(), sequences, length, split.c_str(), seeds);
  if (!sites_variant.empty()) {
    // KL with every site's activations quantised, then with one site kind (all layers) and one
    // (layer, site) left in float; Hadamard preset and the variant, seed 0, grid -7..7.
    const std::size_t L = w.config.n_layers;
    for (const auto m : {sq::quant_method::hadamard, sq::quant_method::singlequant}) {
      auto o = sq::quantize_preset(m, 0);
      if (m == sq::quant_method::singlequant) apply_variant(o, sites_variant);
      const auto q = sq::quantize_model(w, calibration, o);
      std::vector<char> skip(L * 4, 0);
      const double all = masked_kl(w, q, eval, skip);
      std::fill(skip.begin(), skip.end(), 1);
      const double weights_only = masked_kl(w, q, eval, skip);
      std::printf("%s: W4A4 KL %.4f, W4 only %.4f\n", m == sq::quant_method::hadamard ? "hadamard" : "singlequant", all,
                  weights_only);
      for (std::size_t k = 0; k < 4; ++k) {
        std::fill(skip.begin(), skip.end(), 0);
        for (std::size_t l = 0; l < L; ++l) skip[l * 4 + k] = 1;
        std::printf("  site %zu float (all layers): KL %.4f (drop %.4f); per layer drops:", k, masked_kl(w, q, eval, skip),
                    all - masked_kl(w, q, eval, skip));
        for (std::size_t l = 0; l < L; ++l) {
          std::fill(skip.begin(), skip.end(), 0);
          skip[l * 4 + k] = 1;
          std::printf(" %.4f", all - masked_kl(w, q, eval, skip));
        }
        std::printf("\n");
        std::fflush(stdout);
      }
    }
    return 0;
  }
  for (const auto grid : {sq::int4_grid::symmetric7, sq::int4_grid::full8}) {
    if (grids == "7" && grid != sq::int4_grid::symmetric7) continue;
    if (grids == "8" && grid != sq::int4_grid::full8) continue;
    const char* gname = grid == sq::int4_grid::full8 ? "-8..7" : "-7..7";
    auto mean_kl = [&](sq::quant_method m, const std::string& variant, double& seconds, std::vector<double>& each) {
      double kl = 0;
      seconds = 0;
      for (std::uint64_t seed = 0; seed < seeds; ++seed) {
        auto o = sq::quantize_preset(m, seed);
        o.weights.grid = o.activations.grid = grid;
        apply_variant(o, variant);
        sq::quantize_report report;
        const auto q = sq::quantize_model(w, calibration, o, &report);
        const double k = sq::evaluate(w, q, eval, 0).kl;
        each.push_back(k);
        kl += k;
        seconds += report.seconds_total;
        if (seed == 0 && m == sq::quant_method::singlequant)
          std::printf("  [%s seed 0 stages (s): forward %.3f, statistics %.3f, build %.3f, fold+pack %.3f, total %.3f]\n",
                      variant.c_str(), report.seconds_forward, report.seconds_statistics, report.seconds_build,
                      report.seconds_fold_pack, report.seconds_total);
      }
      seconds /= double(seeds);
      return kl / double(seeds);
    };
    double s_h = 0;
    std::vector<double> each_h;
    const double had = mean_kl(sq::quant_method::hadamard, "default", s_h, each_h);
    std::printf("%s hadamard KL %.4f\n", gname, had);
    std::fflush(stdout);
    for (const auto& v : variants) {
      double s = 0;
      std::vector<double> each;
      const double kl = mean_kl(sq::quant_method::singlequant, v, s, each);
      std::printf("%s %-40s KL %.4f  ratio %.3f  (", gname, v.c_str(), kl, kl / had);
      for (std::size_t i = 0; i < each.size(); ++i) std::printf("%s%.3f", i ? " " : "", each[i] / each_h[i]);
      std::printf(")  %.2f s\n", s);
      std::fflush(stdout);
    }
  }
  return 0;
}
