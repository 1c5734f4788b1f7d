// Hadamard transforms: FWHT in cache against FFHT's published figures, the memory-resident batch
// against an in-place read-modify-write pass, and the non-power-of-two transforms against the
// power-of-two FWHT of neighbouring sizes. All ratios come from the same run (noisy shared machine:
// every benchmark is repeated and the fastest repetition is used).
//
// Run: ./build/release/bench/bench_hadamard  (ratios are printed after the Google Benchmark table)
#include <singlequant/hadamard.hpp>

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bench_support.hpp"

namespace {
namespace sq = singlequant;

using aligned_floats = std::vector<float, xsimd::aligned_allocator<float, 64>>;

aligned_floats make_input(std::size_t n) {
  aligned_floats x(n);
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  for (auto& v : x) v = dist(rng);
  return x;
}

constexpr std::size_t batch_bytes = std::size_t{64} << 20;  // 64 MiB: far beyond the caches

void set_counters(benchmark::State& state, std::size_t elements) {
  sq_bench::set_bytes(state, elements * sizeof(float));
}

// One vector, resident in cache (orthonormal FWHT, float).
void fwht_in_cache(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto x = make_input(n);
  for (auto _ : state) {
    sq::fwht(sq::vector_view<float>(x.data(), n));
    benchmark::ClobberMemory();
  }
  set_counters(state, n);
}

// The portable scalar path, for the SIMD speed-up.
void fwht_scalar_path(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto x = make_input(n);
  const std::size_t log2_n = sq::detail::log2_exact(n);
  const float scale = 1.0f / std::sqrt(float(n));
  for (auto _ : state) {
    sq::detail::hadamard_kernel<sq::simd::scalar_arch>::fwht(x.data(), log2_n, scale, nullptr, nullptr);
    benchmark::ClobberMemory();
  }
  set_counters(state, n);
}

// hadamard_transform on one vector in cache (power of two or K * 2^k).
void transform_in_cache(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const sq::hadamard_transform<float> h(n);
  auto x = make_input(n);
  for (auto _ : state) {
    h.apply(sq::vector_view<float>(x.data(), n));
    benchmark::ClobberMemory();
  }
  set_counters(state, n);
}

// hadamard_transform on a memory-resident batch of rows (64 MiB).
void transform_batch(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::size_t rows = batch_bytes / (n * sizeof(float));
  const sq::hadamard_transform<float> h(n);
  auto x = make_input(rows * n);
  for (auto _ : state) {
    h.apply_rows(sq::matrix_view<float>(x.data(), rows, n));
    benchmark::ClobberMemory();
  }
  set_counters(state, rows * n);
}

// The reference: x *= 1.0001f in place over the same 64 MiB.
void read_modify_write_batch(benchmark::State& state) {
  const std::size_t n = batch_bytes / sizeof(float);
  auto x = make_input(n);
  for (auto _ : state) sq_bench::read_modify_write(x.data(), n);
  set_counters(state, n);
}

double min_of(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

/// Console output as usual, plus the fastest repetition of every benchmark for the ratio table.
class recording_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs)
      if (run.run_type == Run::RT_Aggregate && run.aggregate_name == "min")
        ns_[run.run_name.function_name + "/" + run.run_name.args] = run.GetAdjustedRealTime();
    ConsoleReporter::ReportRuns(runs);
  }
  [[nodiscard]] double ns(const std::string& name) const {
    const auto it = ns_.find(name);
    return it == ns_.end() ? 0.0 : it->second;
  }

 private:
  std::map<std::string, double> ns_;
};

double gb_per_s(double elements, double ns) { return ns > 0 ? elements * sizeof(float) / ns : 0.0; }

void print_summary(const recording_reporter& r) {
  std::printf("\n=== Hadamard summary (fastest of the repetitions, this run) ===\n");
  std::printf("FWHT float32, one vector in cache:\n");
  const struct {
    std::size_t n;
    double ffht_ns;
  } ffht[] = {{1024, 340}, {4096, 1420}, {16384, 6340}};
  for (std::size_t k = 6; k <= 16; ++k) {
    const std::size_t n = std::size_t{1} << k;
    const double ns = r.ns("fwht_in_cache/" + std::to_string(n));
    std::printf("  n = %6zu: %10.1f ns  %6.2f GB/s", n, ns, gb_per_s(double(n), ns));
    for (const auto& f : ffht)
      if (f.n == n) std::printf("  FFHT %6.0f ns -> %.2fx faster (target 1.5x)", f.ffht_ns, f.ffht_ns / ns);
    std::printf("\n");
  }
  const double scalar = r.ns("fwht_scalar_path/4096"), simd = r.ns("fwht_in_cache/4096");
  if (scalar > 0 && simd > 0) std::printf("  SIMD vs scalar path at n = 4096: %.1fx\n", scalar / simd);

  const double rmw_ns = r.ns("read_modify_write_batch/");
  const double rmw = gb_per_s(double(batch_bytes / sizeof(float)), rmw_ns);
  std::printf("Memory-resident batch (64 MiB), in-place read-modify-write reference: %.2f GB/s\n", rmw);
  for (std::size_t n : {4096u, 8192u, 16384u, 11008u, 13824u}) {
    const std::size_t rows = batch_bytes / (n * sizeof(float));
    const double gb = gb_per_s(double(rows * n), r.ns("transform_batch/" + std::to_string(n)));
    std::printf("  %zu rows x %5zu: %6.2f GB/s = %.2fx the RMW pass%s\n", rows, n, gb, gb / rmw,
                n == 4096 ? " (target 0.8x)" : "");
  }
  std::printf("Non-power-of-two (K x 2^k) against the power-of-two FWHT of neighbouring sizes:\n");
  auto transform_gb = [&](const char* kind, std::size_t n) {
    const std::size_t rows = std::string(kind) == "transform_batch" ? batch_bytes / (n * sizeof(float)) : 1;
    return gb_per_s(double(rows * n), r.ns(std::string(kind) + "/" + std::to_string(n)));
  };
  for (const char* kind : {"transform_in_cache", "transform_batch"}) {
    const double g8192 = transform_gb(kind, 8192), g16384 = transform_gb(kind, 16384);
    for (std::size_t n : {11008u, 13824u}) {
      const double g = transform_gb(kind, n);
      std::printf("  %-18s n = %5zu: %6.2f GB/s = %.2fx of 8192 (%.2f GB/s), %.2fx of 16384 (%.2f GB/s) "
                  "(target 0.5x)\n",
                  kind, n, g, g / g8192, g8192, g / g16384, g16384);
    }
  }
}

}  // namespace

BENCHMARK(fwht_in_cache)->RangeMultiplier(2)->Range(64, 65536)->Repetitions(5)->ReportAggregatesOnly(true)
    ->ComputeStatistics("min", min_of);
BENCHMARK(fwht_scalar_path)->Arg(4096)->Repetitions(3)->ReportAggregatesOnly(true)->ComputeStatistics("min", min_of);
BENCHMARK(transform_in_cache)->Arg(8192)->Arg(16384)->Arg(11008)->Arg(13824)->Repetitions(5)
    ->ReportAggregatesOnly(true)->ComputeStatistics("min", min_of);
BENCHMARK(read_modify_write_batch)->Repetitions(5)->ReportAggregatesOnly(true)->ComputeStatistics("min", min_of);
BENCHMARK(transform_batch)->Arg(4096)->Arg(8192)->Arg(16384)->Arg(11008)->Arg(13824)->Repetitions(5)
    ->ReportAggregatesOnly(true)->ComputeStatistics("min", min_of);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  recording_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  print_summary(reporter);
  return 0;
}
