// Hadamard transforms: FWHT in cache against FFHT's published figures, the memory-resident batch
// against an in-place read-modify-write pass, and the non-power-of-two transforms against the
// power-of-two FWHT of neighbouring sizes. All ratios come from the same run (noisy shared machine:
// every benchmark is repeated and the fastest repetition is used).
//
// Run: ./build/release/bench/bench_hadamard  (ratios are printed after the Google Benchmark table)
#include <singlequant/hadamard.hpp>
#include <singlequant/kronecker.hpp>

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

// ---- No ISA slower than a narrower one: the K x 2^k transform and the Kronecker product on one
// row in cache through the kernel of a given architecture, called directly (as the arch tests do),
// so the AVX-512 and AVX2 paths run on the same data in the same process.
template <class Arch>
void k_pow2_kernel(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto f = sq::detail::factor_base_pow2(n);
  const std::size_t k = f->first, m = f->second, log2_m = sq::detail::log2_exact(m);
  const auto h = sq::detail::cached_hadamard(k);
  const sq::detail::mix_schedule schedule(*h, k, false, sizeof(float), 0, 0, m);  // as hadamard.hpp
  const auto plan = schedule.plan(k);
  aligned_floats scratch(sq::detail::mix_scratch_elements<float>(k, schedule.group_size, schedule.chunk_groups,
                                                                 schedule.entry_elements));
  const float scale = 1.0f / std::sqrt(float(n));
  auto x = make_input(n);
  using kernel = sq::detail::hadamard_kernel<Arch>;
  for (auto _ : state) {
    kernel::fwht_rows(x.data(), k, m, log2_m, 1.0f, nullptr, nullptr, m);
    kernel::mix(x.data(), m, plan, scale, nullptr, scratch.data(), nullptr, 0);
    benchmark::ClobberMemory();
  }
  set_counters(state, n);
}

template <class Arch>
void kronecker_kernel_row(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto split = sq::hadamard_kronecker_split(n);
  const std::size_t a = split->a, b = split->b;
  const auto r1 = make_input(a * a), r2 = make_input(b * b);
  aligned_floats scratch(n);
  auto x = make_input(n);
  for (auto _ : state) {
    sq::detail::kronecker_kernel<Arch>::apply_rows(x.data(), 1, n, r1.data(), a, a, r2.data(), b, b,
                                                   scratch.data());
    // Keep the row bounded (random dense factors grow it by about sqrt(a b) per call).
    x[0] = 1.0f;
    for (std::size_t i = 0; i < n; i += 16) x[i] *= 1e-3f;
    benchmark::ClobberMemory();
  }
  set_counters(state, n);
}

constexpr std::size_t llm_widths[] = {688, 1376, 2752, 5504, 11008, 13824};

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
  std::printf("No ISA slower than a narrower one (one row in cache, kernels called directly; "
              "ns per element and AVX-512 / AVX2 time):\n");
  const auto per = [&](const std::string& name, std::size_t n) { return r.ns(name + "/" + std::to_string(n)) / double(n); };
  const double k11008 = per("k_pow2_kernel<avx512bw>", 11008), kr11008 = per("kronecker_kernel_row<avx512bw>", 11008);
  for (std::size_t n : llm_widths) {
    const auto f = sq::detail::factor_base_pow2(n);
    const auto split = sq::hadamard_kronecker_split(n);
    std::size_t pow2 = 1;
    while (pow2 < n) pow2 *= 2;
    const double k512 = per("k_pow2_kernel<avx512bw>", n), k2 = per("k_pow2_kernel<avx2>", n);
    const double kr512 = per("kronecker_kernel_row<avx512bw>", n), kr2 = per("kronecker_kernel_row<avx2>", n);
    const double pub = per("transform_in_cache", n), fwht = per("fwht_in_cache", pow2);
    std::printf("  n = %5zu = %3zu x %4zu: H_K x 2^k %6.3f ns/el AVX-512, %6.3f AVX2 -> %.2fx time; "
                "%.2fx the ns/el at 11008; %.1fx FWHT(%zu) per element; hadamard_transform %6.3f ns/el\n",
                n, f->first, f->second, k512, k2, k2 > 0 ? k512 / k2 : 0.0, k11008 > 0 ? k512 / k11008 : 0.0,
                fwht > 0 ? k512 / fwht : 0.0, pow2, pub);
    std::printf("  %27s Kronecker %3zu (x) %3zu: %6.3f ns/el AVX-512, %6.3f AVX2 -> %.2fx time; %.2fx the ns/el at "
                "11008\n", "", split->a, split->b, kr512, kr2, kr2 > 0 ? kr512 / kr2 : 0.0,
                kr11008 > 0 ? kr512 / kr11008 : 0.0);
  }
}

}  // namespace

#if XSIMD_WITH_AVX512BW && XSIMD_WITH_FMA3_AVX2
BENCHMARK_TEMPLATE(k_pow2_kernel, xsimd::avx512bw)->Name("k_pow2_kernel<avx512bw>")->Arg(688)->Arg(1376)->Arg(2752)
    ->Arg(5504)->Arg(11008)->Arg(13824)->Repetitions(5)->ReportAggregatesOnly(true)->ComputeStatistics("min", min_of);
BENCHMARK_TEMPLATE(k_pow2_kernel, xsimd::fma3<xsimd::avx2>)->Name("k_pow2_kernel<avx2>")->Arg(688)->Arg(1376)
    ->Arg(2752)->Arg(5504)->Arg(11008)->Arg(13824)->Repetitions(5)->ReportAggregatesOnly(true)
    ->ComputeStatistics("min", min_of);
BENCHMARK_TEMPLATE(kronecker_kernel_row, xsimd::avx512bw)->Name("kronecker_kernel_row<avx512bw>")->Arg(688)
    ->Arg(1376)->Arg(2752)->Arg(5504)->Arg(11008)->Arg(13824)->Repetitions(5)->ReportAggregatesOnly(true)
    ->ComputeStatistics("min", min_of);
BENCHMARK_TEMPLATE(kronecker_kernel_row, xsimd::fma3<xsimd::avx2>)->Name("kronecker_kernel_row<avx2>")->Arg(688)
    ->Arg(1376)->Arg(2752)->Arg(5504)->Arg(11008)->Arg(13824)->Repetitions(5)->ReportAggregatesOnly(true)
    ->ComputeStatistics("min", min_of);
#endif
BENCHMARK(fwht_in_cache)->RangeMultiplier(2)->Range(64, 65536)->Repetitions(5)->ReportAggregatesOnly(true)
    ->ComputeStatistics("min", min_of);
BENCHMARK(fwht_scalar_path)->Arg(4096)->Repetitions(3)->ReportAggregatesOnly(true)->ComputeStatistics("min", min_of);
BENCHMARK(transform_in_cache)->Arg(8192)->Arg(16384)->Arg(688)->Arg(1376)->Arg(2752)->Arg(5504)->Arg(11008)
    ->Arg(13824)->Repetitions(5)
    ->ReportAggregatesOnly(true)->ComputeStatistics("min", min_of);
BENCHMARK(read_modify_write_batch)->Repetitions(5)->ReportAggregatesOnly(true)->ComputeStatistics("min", min_of);
BENCHMARK(transform_batch)->Arg(4096)->Arg(8192)->Arg(16384)->Arg(11008)->Arg(13824)->Repetitions(5)
    ->ReportAggregatesOnly(true)->ComputeStatistics("min", min_of);

int main(int argc, char** argv) {
  sq_bench::initialize(argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  recording_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  print_summary(reporter);
  return 0;
}
