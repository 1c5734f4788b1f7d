// GPTQ on one layer, against dense products of the same flops measured in the same run.
//   * gptq 4096 x 4096 from its 4096 x 4096 H (per_row, symmetric7, block 128), 2 threads and 1;
//     target <= 5 s on 2 cores. 11008 x 4096 (an MLP up/gate projection) on 2 threads: should take
//     about the factorisation plus 11008 / 4096 of the column updates.
//   * the reference: the flops GPTQ cannot avoid, as plain products on the same threads: the
//     factorisation (one Cholesky and one triangular inverse, n^3 / 3 multiply-adds in double) and
//     the error feedback (m n^2 / 2 multiply-adds in float). With OpenBLAS (found at configure
//     time) they are its dgemm and sgemm of those sizes; otherwise singlequant's own dense_kernel
//     tiles (bench "own_products"). The summary prints gptq / reference.
//   * hessian_stats::accumulate of 2048 tokens x 4096 (the statistics GPTQ needs), vs the same
//     multiply-adds as a dense product.
#include <singlequant/gptq.hpp>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bench_support.hpp"

#if SINGLEQUANT_BENCH_OPENBLAS
#  include <cblas.h>
extern "C" void openblas_set_num_threads(int);
#endif

namespace {
namespace sq = singlequant;

// Not constexpr: with constant extents GCC 12 reports bogus -Waggressive-loop-optimizations.
std::size_t width = 4096;
std::size_t calibration_tokens = 2048;

std::vector<float> random_values(std::size_t count, std::uint64_t seed) {
  std::vector<float> v(count);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist;
  for (auto& e : v) e = dist(rng);
  return v;
}

// H of correlated inputs (x = z A, A = 0.2 I + N(0, 1 / n), built as a product of random rows).
const sq::hessian_stats& hessian() {
  static const sq::hessian_stats h = [] {
    const std::size_t n = width, tokens = calibration_tokens;
    const auto z = random_values(tokens * n, 1);
    std::vector<float> x = z;
    // Mix neighbouring channels so H is far from diagonal (cheap: a banded A).
    for (std::size_t t = 0; t < tokens; ++t)
      for (std::size_t k = 1; k < n; ++k) x[t * n + k] = 0.7f * x[t * n + k - 1] + 0.3f * z[t * n + k];
    sq::hessian_stats stats(n);
    stats.accumulate(sq::matrix_view<const float>(x.data(), tokens, n));
    return stats;
  }();
  return h;
}

const std::vector<float>& weights(std::size_t rows) {
  static std::map<std::size_t, std::vector<float>> cache;
  auto it = cache.find(rows);
  if (it == cache.end()) it = cache.emplace(rows, random_values(rows * width, 2 + rows)).first;
  return it->second;
}

void gptq_layer(benchmark::State& state) {
  const auto rows = static_cast<std::size_t>(state.range(0));
  sq::gptq_options options;
  options.threads = static_cast<std::size_t>(state.range(1));
  // range(2): 0 plain GPTQ; 1 + refine_passes 4; 2 + clip_search output (1 .. 0.5 step 0.05, 11
  // sweeps) and refine_passes 4; 3 the same with step 0.02 (26 sweeps, measure_sites' tuned choice).
  if (state.range(2) >= 1) options.refine_passes = 4;
  if (state.range(2) >= 2) {
    options.clip_search = sq::gptq_clip_search::output;
    options.output_clip_min = 0.5;
    options.output_clip_step = state.range(2) == 2 ? 0.05 : 0.02;
  }
  const auto& w = weights(rows);
  for (auto _ : state)
    benchmark::DoNotOptimize(sq::gptq(sq::matrix_view<const float>(w.data(), rows, width), hessian(), options));
}

// The reference multiply-adds: n^3 / 3 in double (factorisation) + m n^2 / 2 in float (feedback).
void reference_products(benchmark::State& state) {
  const auto rows = static_cast<std::size_t>(state.range(0));
  const auto threads = static_cast<std::size_t>(state.range(1));
  const std::size_t n = width, depth_d = n / 3, depth_f = n / 2;
  std::vector<double> ad(n * depth_d, 0.5), bd(depth_d * n, 0.25), cd(n * n, 0.0);
  std::vector<float> af(rows * depth_f, 0.5f), bf(depth_f * n, 0.25f), cf(rows * n, 0.0f);
#if SINGLEQUANT_BENCH_OPENBLAS
  openblas_set_num_threads(static_cast<int>(threads));
  for (auto _ : state) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n), static_cast<int>(n),
                static_cast<int>(depth_d), 1.0, ad.data(), static_cast<int>(depth_d), bd.data(),
                static_cast<int>(n), 1.0, cd.data(), static_cast<int>(n));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(n),
                static_cast<int>(depth_f), 1.0f, af.data(), static_cast<int>(depth_f), bf.data(),
                static_cast<int>(n), 1.0f, cf.data(), static_cast<int>(n));
    benchmark::ClobberMemory();
  }
#else
  // singlequant's own tiles, 256 x 256 output blocks on a team (multiply_add wants A transposed:
  // the values are constant, so the layout does not matter for the timing).
  sq::detail::thread_team team(threads);
  auto product = [&](auto* a, auto* b, auto* c, std::size_t m, std::size_t depth) {
    const std::size_t blocks_r = (m + 255) / 256, blocks_c = (n + 255) / 256;
    team.run(blocks_r * blocks_c, [&](std::size_t task) {
      const std::size_t r0 = (task % blocks_r) * 256, c0 = (task / blocks_r) * 256;
      sq::detail::dispatch([&](auto arch) {
        using T = std::remove_pointer_t<decltype(a)>;
        sq::detail::dense_kernel<T, decltype(arch)>::multiply_add(a + r0, m, b + c0, n, depth, c + r0 * n + c0, n,
                                                                  std::min<std::size_t>(256, m - r0),
                                                                  std::min<std::size_t>(256, n - c0), false);
      });
    });
  };
  for (auto _ : state) {
    product(ad.data(), bd.data(), cd.data(), n, depth_d);
    product(af.data(), bf.data(), cf.data(), rows, depth_f);
    benchmark::ClobberMemory();
  }
#endif
}

void hessian_accumulate(benchmark::State& state) {
  const std::size_t n = width, tokens = calibration_tokens;
  const auto x = random_values(tokens * n, 3);
  for (auto _ : state) {
    sq::hessian_stats stats(n, {.threads = static_cast<std::size_t>(state.range(0))});
    stats.accumulate(sq::matrix_view<const float>(x.data(), tokens, n));
    benchmark::DoNotOptimize(stats.upper().data());
  }
}

}  // namespace

BENCHMARK(gptq_layer)->Args({4096, 2, 0})->Args({4096, 1, 0})->Args({11008, 2, 0})->Args({4096, 2, 1})->Args({4096, 2, 2})->Iterations(1)->Repetitions(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(reference_products)->Args({4096, 2})->Args({4096, 1})->Args({11008, 2})->Iterations(1)->Repetitions(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(hessian_accumulate)->Arg(2)->Iterations(1)->Repetitions(2)->UseRealTime()->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  sq_bench::initialize(argc, argv, "gptq_layer/4096/2/0|reference_products/4096/2");
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  hessian();  // outside the timings
  sq_bench::best_of_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  const auto& best = reporter.best_seconds;
  auto get = [&](const std::string& prefix) {  // best of the runs whose name starts with prefix
    double seconds = 0;
    for (const auto& [name, s] : best)
      if (name.rfind(prefix, 0) == 0 && (seconds == 0 || s < seconds)) seconds = s;
    return seconds;
  };
  std::printf("\n=== summary (best of the repetitions; isa %s; reference: %s) ===\n",
              sq::isa_name(sq::active_isa()).data(), SINGLEQUANT_BENCH_OPENBLAS ? "OpenBLAS dgemm + sgemm" : "own dense tiles");
  for (const char* args : {"4096/2", "4096/1", "11008/2"}) {
    const double g = get(std::string("gptq_layer/") + args + "/0/");
    const double r = get(std::string("reference_products/") + args + "/");
    if (g <= 0) continue;
    std::printf("gptq rows/threads %-8s %7.3f s = %.2fx the same multiply-adds as dense products (%.3f s)%s\n", args, g,
                r > 0 ? g / r : 0.0, r, std::string(args) == "4096/2" ? " (target <= 5 s)" : "");
  }
  const double g2 = get("gptq_layer/4096/2/0/"), g1 = get("gptq_layer/4096/1/0/");
  const double g11 = get("gptq_layer/11008/2/0/");
  for (const char* args : {"4096/2/1", "4096/2/2"}) {
    const double g = get(std::string("gptq_layer/") + args + "/");
    if (g > 0 && g2 > 0)
      std::printf("gptq 4096 x 4096, 2 threads, %s: %.3f s = %.2fx plain\n",
                  std::string(args) == "4096/2/1" ? "refine_passes 4" : "clip_search output (11 sweeps) + refine 4", g, g / g2);
  }
  if (g2 > 0 && g1 > 0) std::printf("2-thread speed-up at 4096 x 4096: %.2fx\n", g1 / g2);
  if (g2 > 0 && g11 > 0) std::printf("11008 x 4096 / 4096 x 4096 time: %.2fx (rows ratio 2.69)\n", g11 / g2);
  const double h = get("hessian_accumulate/2/");
  if (h > 0)
    std::printf("hessian_stats 2048 tokens x 4096, 2 threads: %.3f s = %.1f GFMA/s\n", h,
                static_cast<double>(calibration_tokens) * static_cast<double>(width) * static_cast<double>(width) / 2 / h / 1e9);
  return 0;
}
