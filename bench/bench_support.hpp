// Shared helpers of the benchmarks: reference memory passes measured in the same run.
#ifndef SINGLEQUANT_BENCH_SUPPORT_HPP
#define SINGLEQUANT_BENCH_SUPPORT_HPP

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstring>
#include <vector>

namespace sq_bench {

/// In-place read-modify-write pass (x *= 1.0001f) over n floats: the bandwidth reference for
/// in-place transforms (the compiler vectorises it with the benchmark's flags).
inline void read_modify_write(float* data, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) data[i] *= 1.0001f;
  benchmark::ClobberMemory();
}

/// Sum of n floats: the read-only bandwidth reference.
inline float read_only(const float* data, std::size_t n) {
  float sums[16] = {};
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (std::size_t k = 0; k < 16; ++k) sums[k] += data[i + k];
  float total = 0;
  for (float s : sums) total += s;
  for (; i < n; ++i) total += data[i];
  return total;
}

/// Bytes per second counter for a benchmark that touches `bytes` per iteration.
inline void set_bytes(benchmark::State& state, std::size_t bytes) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(bytes));
}

}  // namespace sq_bench

#endif
