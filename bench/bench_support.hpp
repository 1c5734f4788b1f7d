// Shared helpers of the benchmarks: reference memory passes measured in the same run.
#ifndef SINGLEQUANT_BENCH_SUPPORT_HPP
#define SINGLEQUANT_BENCH_SUPPORT_HPP

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <map>
#include <string>
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

/// Console output plus the best (fastest) repetition of every benchmark, for a same-run summary.
/// Runs are keyed by their full name ("f/4096/2/...") or, with `key::function`, by the registered
/// name alone (all arguments of one benchmark share a key).
class best_of_reporter : public benchmark::ConsoleReporter {
 public:
  enum class key { full_name, function };
  explicit best_of_reporter(key k = key::full_name) : key_(k) {}
  std::map<std::string, double> best_seconds;  // per iteration
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration || run.iterations == 0) continue;
      const double seconds = run.real_accumulated_time / static_cast<double>(run.iterations);
      const std::string name =
          key_ == key::function ? run.run_name.function_name : run.benchmark_name();
      auto [it, inserted] = best_seconds.emplace(name, seconds);
      if (!inserted) it->second = std::min(it->second, seconds);
    }
    ConsoleReporter::ReportRuns(runs);
  }

 private:
  key key_;
};

}  // namespace sq_bench

#endif
