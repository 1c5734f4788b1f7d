// INT4 x INT4 GEMM and GEMV (int4_gemm.hpp) against same-run references:
//  * GEMM (M = 512): counter vs_sgemm = time of OpenBLAS cblas_sgemm (one thread) on the same shape
//    divided by int4_gemm's time (> 1: int4_gemm is faster), and int8_peak = achieved multiply-adds per
//    second over a one-core vpdpbusd peak measured in the same process (a loop of 12 independent
//    vpdpbusd zmm chains on registers: 64 multiply-adds per instruction; int4_gemm runs one thread),
//    with peak_GMAC/s, the clock it ran at (GHz, from dependent vpaddd) and vnni/cycle = peak /
//    64 / clock, the vpdpbusd throughput per cycle, so the peak can be checked against the CPU's
//    documented port count.
//  * online: transform_and_quantize (randomised Hadamard of the site, then per-token INT4 packing) of
//    `tokens` rows of 11008, with share = its time over the time of the int4_gemm that consumes
//    them (the down projection, N = 4096, K = 11008, M = tokens) in the same call.
//  * GEMV (M <= 8): counter vs_read_pass = time of a read-only pass over the weights' kernel-layout
//    bytes divided by int4_gemm's time (1: as fast as reading the weights), the caches warm (the
//    previous repetition's bytes left in L2 / L3), and vs_read_pass_cold the same with the caches
//    evicted before every timed call (each layer's weights come from DRAM in a decoder). The read
//    pass reads the same bytes with the same thread count; its time is the faster of a sequential
//    pass and one with 4 concurrent streams (a single stream does not reach the DRAM bandwidth
//    here). Read passes and int4_gemm alternate in one loop, best of 9 each.
// Needs -march=native (SINGLEQUANT_NATIVE) for the AVX-512 paths; without OpenBLAS vs_sgemm is absent.
#include <singlequant/detail/parallel.hpp>
#include <singlequant/int4_gemm.hpp>
#include <singlequant/model/quantize.hpp>
#include <singlequant/online_quant.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <vector>

#if SINGLEQUANT_BENCH_OPENBLAS
#  include <cblas.h>
extern "C" void openblas_set_num_threads(int);
#endif
#if defined(__AVX512VNNI__)
#  include <immintrin.h>
#endif

#include "bench_support.hpp"

namespace sq = singlequant;

namespace {

sq::packed_int4 random_int4(std::size_t rows, std::size_t cols, sq::granularity gran, std::size_t group,
                            std::uint64_t seed) {
  sq::packed_int4 q(rows, cols, gran, group, sq::int4_grid::symmetric7, false);
  std::mt19937_64 rng(seed);
  for (auto& b : q.codes()) {
    const auto lo = static_cast<unsigned>(rng() % 15), hi = static_cast<unsigned>(rng() % 15);
    b = static_cast<std::uint8_t>(sq::to_nibble(static_cast<int>(lo) - 7) | sq::to_nibble(static_cast<int>(hi) - 7) << 4);
  }
  for (auto& s : q.scales()) s = 0.01f + static_cast<float>(rng() % 100) * 1e-4f;
  return q;
}

template <class F>
double best_seconds(F&& f, int repeats) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

template <class F>
double seconds_of(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Writes one byte per line of 96 MiB (3x this host's L3): the next pass reads from DRAM.
void evict_caches() {
  static std::vector<std::uint8_t> junk(std::size_t{96} << 20);
  for (std::size_t i = 0; i < junk.size(); i += 64) junk[i] = static_cast<std::uint8_t>(junk[i] + 1);
  benchmark::ClobberMemory();
}

/// Read-only pass over lines [l0, l1) of bytes as Streams concurrent sub-ranges of 64-byte lines
/// (the compiler vectorises the 8-word sums).
template <std::size_t Streams>
void read_lines(const std::uint8_t* bytes, std::size_t l0, std::size_t l1) {
  const std::size_t per = (l1 - l0) / Streams;
  std::uint64_t words[Streams][8] = {};
  for (std::size_t i = 0; i < per; ++i)
    for (std::size_t s = 0; s < Streams; ++s) {
      std::uint64_t block[8];
      std::memcpy(block, bytes + 64 * (l0 + s * per + i), 64);
      for (int l = 0; l < 8; ++l) words[s][l] += block[l];
    }
  for (std::size_t i = l0 + Streams * per; i < l1; ++i) {  // the remainder
    std::uint64_t block[8];
    std::memcpy(block, bytes + 64 * i, 64);
    for (int l = 0; l < 8; ++l) words[0][l] += block[l];
  }
  benchmark::DoNotOptimize(words);
}

/// Read-only pass over bytes split into `threads` contiguous slices, each read with 1 or 4 streams;
/// a thread team per call, as int4_gemm makes.
void read_pass(std::span<const std::uint8_t> bytes, std::size_t threads, std::size_t streams) {
  const std::size_t lines = bytes.size() / 64;
  auto slice = [&](std::size_t t) {
    const std::size_t l0 = lines * t / threads, l1 = lines * (t + 1) / threads;
    if (streams == 4) read_lines<4>(bytes.data(), l0, l1);
    else read_lines<1>(bytes.data(), l0, l1);
  };
  if (threads <= 1) {
    slice(0);
    return;
  }
  sq::detail::thread_team team(threads);
  team.run(threads, slice);
}

/// The one-core vpdpbusd peak (zeros without AVX512_VNNI in this build): macs = multiply-adds per
/// second of 12 independent zmm vpdpbusd chains (64 multiply-adds per instruction); hz = the core
/// clock over the same time, from a chain of dependent vpaddd (1 cycle latency each, kept
/// dependent by an empty asm), so per_cycle = macs / 64 / hz is the vpdpbusd throughput per cycle
/// this core achieves (1 where one port runs 512-bit VNNI, 2 where two do). Alternated, best of 5.
struct vnni_peak {
  double macs = 0, hz = 0, per_cycle = 0;
};
const vnni_peak& vnni_peak_of_this_core() {
  static const vnni_peak peak = [] {
    vnni_peak p;
#if defined(__AVX512VNNI__)
    constexpr long iterations = 4'000'000;
    double dp = 1e30, clock = 1e30;
    for (int r = 0; r < 5; ++r) {
      dp = std::min(dp, seconds_of([] {
        __m512i acc[12];
        for (auto& a : acc) a = _mm512_set1_epi32(1);
        const __m512i u = _mm512_set1_epi8(3), v = _mm512_set1_epi8(-2);
        for (long i = 0; i < iterations; ++i)
          for (auto& a : acc) a = _mm512_dpbusd_epi32(a, u, v);
        __m512i sum = acc[0];
        for (int k = 1; k < 12; ++k) sum = _mm512_add_epi32(sum, acc[k]);
        benchmark::DoNotOptimize(sum);
      }));
      clock = std::min(clock, seconds_of([] {
        __m512i a = _mm512_set1_epi32(1);
        const __m512i b = _mm512_set1_epi32(3);
        for (long i = 0; i < iterations; ++i)
          for (int k = 0; k < 12; ++k) {
            a = _mm512_add_epi32(a, b);
            asm volatile("" : "+v"(a));  // one dependent vpaddd per cycle
          }
        benchmark::DoNotOptimize(a);
      }));
    }
    p.macs = static_cast<double>(iterations) * 12 * 64 / dp;
    p.hz = static_cast<double>(iterations) * 12 / clock;
    p.per_cycle = p.macs / 64 / p.hz;
#endif
    return p;
  }();
  return peak;
}
double vnni_peak_macs() { return vnni_peak_of_this_core().macs; }

void bm_int4_gemm(benchmark::State& state) {
  const auto m = static_cast<std::size_t>(state.range(0)), n = static_cast<std::size_t>(state.range(1)),
             k = static_cast<std::size_t>(state.range(2)), group = static_cast<std::size_t>(state.range(3));
  const auto threads = static_cast<std::size_t>(state.range(4));
  const auto a = random_int4(m, k, sq::granularity::per_row, 0, 1);
  const auto wq = random_int4(n, k, group == 0 ? sq::granularity::per_row : sq::granularity::per_group, group, 2);
  const sq::int4_gemm_weights w(wq);
  std::vector<float> y(m * n);
  const sq::int4_gemm_options options{.threads = threads};
  for (auto _ : state) {
    sq::int4_gemm(a, w, sq::matrix_view<float>(y.data(), m, n), options);
    benchmark::DoNotOptimize(y.data());
  }
  const double seconds = [&] {
    return best_seconds([&] { sq::int4_gemm(a, w, sq::matrix_view<float>(y.data(), m, n), options); }, 3);
  }();
  const double macs = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  state.counters["GMAC/s"] = macs / seconds * 1e-9;
  if (m > 8) {
#if SINGLEQUANT_BENCH_OPENBLAS
    openblas_set_num_threads(1);
    std::vector<float> af(m * k, 0.5f), wf(n * k, 0.25f), yf(m * n);
    const double sgemm = best_seconds([&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
                  static_cast<int>(k), 1.0f, af.data(), static_cast<int>(k), wf.data(), static_cast<int>(k), 0.0f,
                  yf.data(), static_cast<int>(n));
    }, 3);
    state.counters["vs_sgemm"] = sgemm / seconds;
#endif
    if (vnni_peak_macs() > 0) {
      state.counters["int8_peak"] = macs / seconds / (vnni_peak_macs() * static_cast<double>(threads));
      state.counters["peak_GMAC/s"] = vnni_peak_macs() * 1e-9;
      state.counters["vnni/cycle"] = vnni_peak_of_this_core().per_cycle;
      state.counters["GHz"] = vnni_peak_of_this_core().hz * 1e-9;
    }
  } else {
    const auto bytes = w.codes();
    const double gb = static_cast<double>(bytes.size()) * 1e-9;
    for (const bool cold : {false, true}) {
      double read = 1e30, gemv = 1e30;
      for (int r = 0; r < 9; ++r)
        for (const std::size_t streams : {std::size_t{1}, std::size_t{4}, std::size_t{0}}) {
          if (cold) evict_caches();
          if (streams == 0)
            gemv = std::min(gemv, seconds_of([&] { sq::int4_gemm(a, w, sq::matrix_view<float>(y.data(), m, n), options); }));
          else
            read = std::min(read, seconds_of([&] { read_pass(bytes, threads, streams); }));
        }
      state.counters[cold ? "vs_read_pass_cold" : "vs_read_pass"] = read / gemv;
      state.counters[cold ? "GB/s_cold" : "GB/s"] = gb / gemv;
    }
  }
  state.SetLabel(std::string(sq::isa_name(sq::active_isa())) + (sq::int4_gemm_uses_vnni() ? "+vnni" : ""));
}

void bm_online(benchmark::State& state) {
  const auto tokens = static_cast<std::size_t>(state.range(0));
  constexpr std::size_t n = 11008, outs = 4096;
  // The down input's online transform as quantize_model builds it for the hadamard preset (data-free:
  // a randomised Hadamard of 11008 = 172 x 64; the singlequant preset adds calibrated Givens stages).
  const sq::site_transform r = sq::detail::data_free_transform(
      n, sq::quantize_preset(sq::quant_method::hadamard).online_rules, "bm_online");
  std::mt19937_64 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x0(tokens * n);
  for (auto& v : x0) v = normal(rng);
  std::vector<float> x = x0;
  sq::packed_int4 a(tokens, n, sq::granularity::per_row, 0, sq::int4_grid::symmetric7, false);
  for (auto _ : state) {
    state.PauseTiming();
    x = x0;
    state.ResumeTiming();
    sq::transform_and_quantize(r, sq::matrix_view<float>(x.data(), tokens, n), 0.9, sq::int4_grid::symmetric7, a);
    benchmark::DoNotOptimize(a.codes().data());
  }
  const sq::int4_gemm_weights w(random_int4(outs, n, sq::granularity::per_row, 0, 4));
  std::vector<float> y(tokens * outs);
  double best_online = 1e30, gemm = 1e30;
  for (int rep = 0; rep < 5; ++rep) {  // alternating, best of 5 each
    x = x0;
    best_online = std::min(best_online, seconds_of([&] {
      sq::transform_and_quantize(r, sq::matrix_view<float>(x.data(), tokens, n), 0.9, sq::int4_grid::symmetric7, a);
    }));
    gemm = std::min(gemm, seconds_of([&] { sq::int4_gemm(a, w, sq::matrix_view<float>(y.data(), tokens, outs)); }));
  }
  state.counters["share"] = best_online / gemm;
  state.counters["us/token"] = best_online / static_cast<double>(tokens) * 1e6;
}

}  // namespace

BENCHMARK(bm_online)->ArgNames({"tokens"})->Arg(1)->Arg(512)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Args: M, N, K, group (0: per-row weight scales), threads.
BENCHMARK(bm_int4_gemm)
    ->ArgNames({"M", "N", "K", "group", "threads"})
    ->Args({512, 4096, 4096, 0, 1})
    ->Args({512, 11008, 4096, 0, 1})
    ->Args({512, 4096, 4096, 128, 1})
    ->Args({512, 4096, 11008, 0, 1})
    ->Args({1, 4096, 4096, 0, 1})
    ->Args({1, 11008, 4096, 0, 1})
    ->Args({1, 4096, 11008, 0, 1})
    ->Args({1, 4096, 4096, 128, 1})
    ->Args({4, 4096, 4096, 0, 1})
    ->Args({8, 4096, 4096, 0, 1})
    ->Args({1, 11008, 4096, 0, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

int main(int argc, char** argv) {
  sq_bench::initialize(argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
