// W4A4 model forward on the int4 backend (int4_gemm) against the float32 forward, same run.
// A random Llama-shaped decoder (dim 768, hidden 2048, 4 layers, vocab 2048), quantised with the rtn
// preset (no calibration). Counters: tok/s of the mode, and vs_float32 = its tok/s over the float32
// forward's tok/s measured in the same benchmark call. prefill: 512 tokens from an empty cache;
// decode: 32 single-token steps after a 64-token prompt. One thread everywhere (the float32 forward
// is single-threaded; int4_gemm runs with its default of one thread).
#include <singlequant/model/forward.hpp>
#include <singlequant/model/quantize.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <random>
#include <vector>

#include "bench_support.hpp"

namespace sq = singlequant;

namespace {

struct fixture {
  sq::llama_config config;
  sq::llama_model fp;
  sq::quantized_model simulated, int4;
  std::vector<std::int32_t> tokens;
  fixture() {
    config.dim = 768;
    config.hidden_dim = 2048;
    config.n_layers = 4;
    config.n_heads = 12;
    config.n_kv_heads = 12;
    config.vocab_size = 2048;
    config.max_seq_len = 640;
    config.tied_classifier = true;
    fp = sq::llama_model(config);
    std::mt19937_64 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    auto fill = [&](sq::matrix_view<float> w) {
      const float s = 1.0f / std::sqrt(static_cast<float>(w.cols()));
      for (std::size_t r = 0; r < w.rows(); ++r)
        for (std::size_t k = 0; k < w.cols(); ++k) w(r, k) = s * normal(rng);
    };
    fill(fp.embedding());
    for (std::size_t l = 0; l < config.n_layers; ++l)
      for (const auto kind : sq::layer_linears) fill(fp.linear(l, kind));
    simulated = sq::quantize_model(fp.weights(), {}, sq::quantize_preset(sq::quant_method::rtn));
    int4 = simulated;
    int4.set_backend(sq::w4a4_backend::int4);
    tokens.resize(512);
    for (auto& t : tokens) t = static_cast<std::int32_t>(rng() % config.vocab_size);
  }
};

fixture& shared() {
  static fixture f;
  return f;
}

// Seconds of a prefill (tokens.size() tokens) or of `steps` decode steps after a 64-token prompt.
template <class Forward>
double run(const fixture& f, bool decode, Forward&& forward) {
  sq::kv_cache cache(f.config, f.config.max_seq_len);
  std::vector<float> logits(f.config.vocab_size);
  const sq::matrix_view<float> last(logits.data(), 1, f.config.vocab_size);
  if (!decode) {
    const auto t0 = std::chrono::steady_clock::now();
    forward(std::span<const std::int32_t>(f.tokens), cache, last);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  forward(std::span<const std::int32_t>(f.tokens).first(64), cache, last);
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t s = 0; s < 32; ++s) forward(std::span<const std::int32_t>(f.tokens).subspan(64 + s, 1), cache, last);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void bm_model(benchmark::State& state) {
  const fixture& f = shared();
  const bool decode = state.range(0) != 0;
  const int mode = static_cast<int>(state.range(1));  // 0 float32, 1 simulated W4A4, 2 int4 W4A4
  auto float_forward = [&](std::span<const std::int32_t> t, sq::kv_cache& c, sq::matrix_view<float> y) {
    sq::forward(f.fp.weights(), t, c, y);
  };
  auto quant_forward = [&](std::span<const std::int32_t> t, sq::kv_cache& c, sq::matrix_view<float> y) {
    (mode == 1 ? f.simulated : f.int4).forward(t, c, y);
  };
  double best = 1e30;
  for (auto _ : state) best = std::min(best, mode == 0 ? run(f, decode, float_forward) : run(f, decode, quant_forward));
  const double tokens = decode ? 32.0 : static_cast<double>(f.tokens.size());
  state.counters["tok/s"] = tokens / best;
  if (mode != 0) {
    const double reference = std::min(run(f, decode, float_forward), run(f, decode, float_forward));
    state.counters["vs_float32"] = reference / best;
  }
  state.SetLabel(std::string(decode ? "decode" : "prefill512") + (mode == 0 ? " float32" : mode == 1 ? " w4a4 simulated" : " w4a4 int4"));
}

}  // namespace

BENCHMARK(bm_model)->ArgNames({"decode", "mode"})->ArgsProduct({{0, 1}, {0, 1, 2}})->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  // Quick mode: float32 and the INT4 kernels (the README's ratios); the simulated path is the slow one.
  sq_bench::initialize(argc, argv, "bm_model/decode:[01]/mode:[02]/");
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
