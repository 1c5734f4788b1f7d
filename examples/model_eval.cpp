// model_eval: whole-model W4A4 results on the llama2.c models (stories260K, pycode11M): methods
// FP / RTN / Hadamard / SingleQuant, and Hadamard / SingleQuant with GPTQ weights (over 3 seeds: mean
// and spread), grids -7..7 and -8..7, on held-out text the model sampled itself (seeds distinct from calibration):
// perplexity, KL(P_fp || P_q), top-1 agreement and quantisation wall time, then ablations
// (activation-only objective, ART off, URT off, each URT mode, per-site vs shared residual
// transform) on the -7..7 grid.
//
// Usage: model_eval [--models DIR] [--model NAME] [--sequences N] [--length N] [--threads N]
// Prints markdown tables; a model whose file is absent is skipped with a message.
#include <singlequant/model/evaluate.hpp>
#include <singlequant/model/quantize.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <formats/llama2c_model.hpp>
#include <formats/llama2c_tokenizer.hpp>

namespace sq = singlequant;

namespace {

struct row_result {
  double ppl = 0, kl = 0, top1 = 0, seconds = 0;
};

void print_row(const char* name, const std::vector<row_result>& runs) {
  auto stat = [&](auto field, double& mean, double& spread) {
    mean = 0;
    for (const auto& r : runs) mean += field(r);
    mean /= double(runs.size());
    double lo = field(runs[0]), hi = lo;
    for (const auto& r : runs) lo = std::min(lo, field(r)), hi = std::max(hi, field(r));
    spread = (hi - lo) / 2;
  };
  double m[4], s[4];
  stat([](const row_result& r) { return r.ppl; }, m[0], s[0]);
  stat([](const row_result& r) { return r.kl; }, m[1], s[1]);
  stat([](const row_result& r) { return r.top1; }, m[2], s[2]);
  stat([](const row_result& r) { return r.seconds; }, m[3], s[3]);
  std::printf("| %s | %.4f ± %.4f | %.4f ± %.4f | %.4f ± %.4f | %.3f |\n", name, m[0], s[0], m[1], s[1], m[2], s[2], m[3]);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = SINGLEQUANT_MODELS_DIR, only;
  std::size_t sequences = 8, length = 128, threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--models") dir = value;
    else if (key == "--model") only = value;
    else if (key == "--sequences") sequences = std::stoul(value);
    else if (key == "--length") length = std::stoul(value);
    else if (key == "--threads") threads = std::stoul(value);
  }
  for (const char* name : {"stories260K", "pycode11M"}) {
    if (!only.empty() && only != name) continue;
    const std::string path = dir + "/" + name + ".bin";
    if (!std::filesystem::exists(path)) {
      std::printf("skipping %s: %s not found\n", name, path.c_str());
      continue;
    }
    const auto file = llama2c::model::load(path);
    const sq::llama_weights w = llama2c::to_weights(file);
    const std::vector<std::int32_t> bos = {llama2c::tokenizer::bos_id};
    std::vector<std::vector<std::int32_t>> calibration, held_out;
    for (std::size_t s = 0; s < sequences; ++s) {
      calibration.push_back(sq::generate(w, bos, length - 1, {.temperature = 1.0, .seed = s}));
      held_out.push_back(sq::generate(w, bos, length - 1, {.temperature = 1.0, .seed = 1000003 + s}));
    }
    std::printf("\n## %s: %zu x %zu calibration tokens, %zu x %zu held-out tokens (sampled, other seeds)\n", name,
                sequences, length, sequences, length);
    auto run = [&](const sq::quantize_model_options& options) {
      sq::quantize_report report;
      const auto q = sq::quantize_model(w, calibration, options, &report);
      const sq::evaluation e = sq::evaluate(w, q, held_out, threads);
      return row_result{e.perplexity, e.kl, e.top1, report.seconds_total};
    };
    const sq::evaluation fp = sq::evaluate(w, w, held_out, threads);
    for (const auto grid : {sq::int4_grid::symmetric7, sq::int4_grid::full8}) {
      std::printf("\n### grid %s\n\n| method | perplexity | KL | top-1 | quantise s |\n|---|---|---|---|---|\n",
                  grid == sq::int4_grid::full8 ? "-8..7" : "-7..7");
      print_row("FP", {row_result{fp.perplexity, 0, 1, 0}});
      auto preset = [&](sq::quant_method m, std::uint64_t seed) {
        auto o = sq::quantize_preset(m, seed);
        o.weights.grid = o.activations.grid = grid;
        o.threads = threads;
        return o;
      };
      print_row("RTN", {run(preset(sq::quant_method::rtn, 0))});
      for (const auto m : {sq::quant_method::hadamard, sq::quant_method::singlequant}) {
        std::vector<row_result> runs;
        for (std::uint64_t seed = 0; seed < 3; ++seed) runs.push_back(run(preset(m, seed)));
        print_row(m == sq::quant_method::hadamard ? "Hadamard (3 seeds)" : "SingleQuant (3 seeds)", runs);
      }
      for (const auto m : {sq::quant_method::hadamard, sq::quant_method::singlequant}) {
        std::vector<row_result> runs;
        for (std::uint64_t seed = 0; seed < 3; ++seed) {
          auto o = preset(m, seed);
          o.quantizer = sq::weight_quantizer::gptq;
          runs.push_back(run(o));
        }
        print_row(m == sq::quant_method::hadamard ? "Hadamard + GPTQ (3 seeds)" : "SingleQuant + GPTQ (3 seeds)", runs);
      }
      if (grid != sq::int4_grid::symmetric7) continue;
      std::printf("\n### ablations (grid -7..7, 3 seeds)\n\n| variant | perplexity | KL | top-1 | quantise s |\n|---|---|---|---|---|\n");
      struct variant {
        const char* name;
        void (*edit)(sq::quantize_model_options&);
      };
      const variant variants[] = {
          {"activation-only objective (lambda 0)", [](sq::quantize_model_options& o) { o.residual_rules.weight_term.lambda = o.online_rules.weight_term.lambda = 0; }},
          {"ART off", [](sq::quantize_model_options& o) { o.residual_rules.use_art = o.online_rules.use_art = false; }},
          {"URT off", [](sq::quantize_model_options& o) { o.residual_rules.use_urt = o.online_rules.use_urt = false; }},
          {"URT energy", [](sq::quantize_model_options& o) { o.residual_rules.urt.mode = o.online_rules.urt.mode = sq::urt_mode::energy; }},
          {"URT chain", [](sq::quantize_model_options& o) { o.residual_rules.urt.mode = o.online_rules.urt.mode = sq::urt_mode::chain; }},
          {"per-site residual", [](sq::quantize_model_options& o) { o.residual = sq::residual_mode::per_site; }},
      };
      for (const auto& v : variants) {
        std::vector<row_result> runs;
        for (std::uint64_t seed = 0; seed < 3; ++seed) {
          auto o = preset(sq::quant_method::singlequant, seed);
          v.edit(o);
          runs.push_back(run(o));
        }
        print_row(v.name, runs);
      }
    }
    // Per-stage times of one SingleQuant pass.
    auto o = sq::quantize_preset(sq::quant_method::singlequant, 0);
    o.threads = threads;
    sq::quantize_report r;
    static_cast<void>(sq::quantize_model(w, calibration, o, &r));
    std::printf("\n### SingleQuant single pass, stages (s): forward %.3f, statistics %.3f, build %.3f, fold+pack %.3f, total %.3f\n",
                r.seconds_forward, r.seconds_statistics, r.seconds_build, r.seconds_fold_pack, r.seconds_total);
  }
  return 0;
}
