// One full Givens stage (n/2 disjoint rotations) on 4096 tokens x n channels against an in-place
// read-modify-write pass over the same bytes, measured in the same run (target: >= 0.6 of it);
// a 4-stage sequence (applied tile by tile); the scalar row-by-row path; and a sparse sequence of
// 64 rotations on one token (ns per rotation).
#include <singlequant/givens.hpp>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench_support.hpp"

namespace {
namespace sq = singlequant;

constexpr std::size_t tokens = 4096;

/// One tokens x n activation buffer per n, shared by the stage and the reference pass.
std::vector<float>& activations(std::size_t n) {
  static std::map<std::size_t, std::unique_ptr<std::vector<float>>> buffers;
  auto& buffer = buffers[n];
  if (!buffer) {
    buffer = std::make_unique<std::vector<float>>(tokens * n);
    std::uint32_t state = 12345;
    for (auto& v : *buffer) {  // cheap pseudo-random values in [-1, 1)
      state = state * 1664525u + 1013904223u;
      v = static_cast<float>(state >> 8) * (2.0f / 16777216.0f) - 1.0f;
    }
  }
  return *buffer;
}

/// `stages` stages, each pairing all n channels at random (n/2 disjoint rotations).
sq::givens_sequence<float> dense_stages(std::size_t n, std::size_t stages, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> angle(-3.1, 3.1);
  sq::givens_sequence<float> seq(n);
  for (std::size_t s = 0; s < stages; ++s) {
    std::vector<std::size_t> channels(n);
    std::iota(channels.begin(), channels.end(), std::size_t{0});
    std::shuffle(channels.begin(), channels.end(), rng);
    std::vector<sq::givens<float>> stage;
    for (std::size_t k = 0; k + 1 < n; k += 2)
      stage.push_back(sq::givens<float>::from_angle(channels[k], channels[k + 1], angle(rng)));
    seq.push_back_stage(sq::givens_stage<float>(std::move(stage)));
  }
  return seq;
}

void rmw_pass(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto& x = activations(n);
  for (auto _ : state) sq_bench::read_modify_write(x.data(), x.size());
  sq_bench::set_bytes(state, x.size() * sizeof(float));
}

void stage(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto& x = activations(n);
  const auto seq = dense_stages(n, 1, n);
  const sq::matrix_view<float> view(x.data(), tokens, n);
  for (auto _ : state) {
    seq.apply_rows(view);
    benchmark::ClobberMemory();
  }
  sq_bench::set_bytes(state, x.size() * sizeof(float));
}

void four_stages(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto& x = activations(n);
  const auto seq = dense_stages(n, 4, n + 1);
  const sq::matrix_view<float> view(x.data(), tokens, n);
  for (auto _ : state) {
    seq.apply_rows(view);
    benchmark::ClobberMemory();
  }
  sq_bench::set_bytes(state, x.size() * sizeof(float));
}

void stage_scalar_rows(benchmark::State& state) {  // the row-by-row scalar path, for comparison
  const auto n = static_cast<std::size_t>(state.range(0));
  auto& x = activations(n);
  const auto seq = dense_stages(n, 1, n);
  const sq::detail::rotation_span<float> span{seq.stages()[0].rotations().data(), seq.stages()[0].size()};
  for (auto _ : state) {
    sq::detail::givens_kernel<float, sq::simd::scalar_arch>::apply_rows_direct(&span, 1, false, x.data(), tokens, n);
    benchmark::ClobberMemory();
  }
  sq_bench::set_bytes(state, x.size() * sizeof(float));
}

void sparse_token(benchmark::State& state) {
  const std::size_t n = 4096, count = 64;
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::size_t> channel(0, n - 1);
  sq::givens_sequence<float> seq(n);
  for (std::size_t k = 0; k < count; ++k) {
    const std::size_t i = channel(rng);
    std::size_t j = channel(rng);
    while (j == i) j = channel(rng);
    seq.push_back(sq::givens<float>::from_angle(i, j, 0.1 * double(k + 1)));
  }
  std::vector<float> x(activations(n).begin(), activations(n).begin() + static_cast<std::ptrdiff_t>(n));
  for (auto _ : state) {
    seq.apply(x);
    benchmark::ClobberMemory();
  }
  state.counters["ns_per_rotation"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * static_cast<double>(count),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["stages"] = static_cast<double>(seq.stage_count());
}

/// Console output plus a record of every run's CPU and real time (the median when repeated).
class recording_reporter : public benchmark::ConsoleReporter {
 public:
  struct times {
    double cpu = 0, real = 0;
  };
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) {
      const bool single = run.run_type == Run::RT_Iteration && run.repetitions <= 1;
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      if (single || median) measured[run.run_name.str()] = {run.GetAdjustedCPUTime(), run.GetAdjustedRealTime()};
    }
    ConsoleReporter::ReportRuns(runs);
  }
  std::map<std::string, times> measured;
};

}  // namespace

int main(int argc, char** argv) {
  sq_bench::initialize(argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // Each stage right after its reference pass, so both see the same machine load.
  for (long n : {4096L, 5120L, 11008L}) {
    benchmark::RegisterBenchmark("rmw_pass", rmw_pass)->Arg(n)->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("stage", stage)->Arg(n)->Unit(benchmark::kMillisecond);
  }
  benchmark::RegisterBenchmark("four_stages", four_stages)->Arg(4096)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("stage_scalar_rows", stage_scalar_rows)->Arg(4096)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("sparse_token", sparse_token)->Unit(benchmark::kNanosecond);
  recording_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  auto& t = reporter.measured;
  const auto ratio = [&](const std::string& reference, const std::string& measured, double& cpu, double& real) {
    if (!t.count(reference) || !t.count(measured)) return false;
    cpu = t[reference].cpu / t[measured].cpu;
    real = t[reference].real / t[measured].real;
    return true;
  };
  std::printf("\nisa %s; time of the in-place read-modify-write pass over the same bytes / time of the"
              " stage, same run (target >= 0.6), from CPU time [real time]:\n",
              sq::isa_name(sq::active_isa()).data());
  double cpu = 0, real = 0;
  for (const char* n : {"4096", "5120", "11008"})
    if (ratio(std::string("rmw_pass/") + n, std::string("stage/") + n, cpu, real))
      std::printf("  n = %5s: one stage %.2f [%.2f]\n", n, cpu, real);
  if (ratio("rmw_pass/4096", "four_stages/4096", cpu, real))
    std::printf("  n =  4096: four stages, tile by tile: %.2f [%.2f] of one pass, i.e. %.2f per stage\n", cpu, real,
                4 * cpu);
  if (ratio("stage_scalar_rows/4096", "stage/4096", cpu, real))
    std::printf("  n =  4096: the tiled SIMD stage is %.1fx [%.1fx] faster than the scalar row-by-row path\n", cpu,
                real);
  return 0;
}
