// absmax / dot against the scalar path and a read-only pass over the same bytes (same run).
#include <singlequant/reduce.hpp>

#include <random>

#include "bench_support.hpp"

namespace {
namespace sq = singlequant;

std::vector<float> make_input(std::size_t n) {
  std::vector<float> x(n);
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  for (auto& v : x) v = dist(rng);
  return x;
}

void read_pass(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto x = make_input(n);
  for (auto _ : state) benchmark::DoNotOptimize(sq_bench::read_only(x.data(), n));
  sq_bench::set_bytes(state, n * sizeof(float));
}

template <class Arch>
void absmax(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto x = make_input(n);
  for (auto _ : state) benchmark::DoNotOptimize(sq::detail::reduce_kernel<Arch>::absmax(x.data(), n));
  sq_bench::set_bytes(state, n * sizeof(float));
}
}  // namespace

BENCHMARK(read_pass)->Arg(1 << 12)->Arg(1 << 24);
BENCHMARK(absmax<sq::simd::default_arch>)->Arg(1 << 12)->Arg(1 << 24);
BENCHMARK(absmax<sq::simd::scalar_arch>)->Arg(1 << 12)->Arg(1 << 24);
int main(int argc, char** argv) {
  sq_bench::initialize(argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
