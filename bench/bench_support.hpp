// Shared helpers of the benchmarks: reference memory passes measured in the same run.
#ifndef SINGLEQUANT_BENCH_SUPPORT_HPP
#define SINGLEQUANT_BENCH_SUPPORT_HPP

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace sq_bench {

/// True in quick mode: `--quick` on the command line or SINGLEQUANT_BENCH_QUICK set (not "0").
inline bool quick_requested(int argc, char** argv) {
  const char* env = std::getenv("SINGLEQUANT_BENCH_QUICK");
  bool quick = env != nullptr && env[0] != '\0' && std::strcmp(env, "0") != 0;
  for (int i = 1; i < argc; ++i) quick = quick || std::strcmp(argv[i], "--quick") == 0;
  return quick;
}

/// benchmark::Initialize with the quick mode of the bench preset (`cmake --workflow --preset
/// bench-quick`, the whole set in under 2 minutes): `--quick` is removed and, when quick, the
/// benchmark's cheap cases (`quick_filter`, a Google Benchmark regex; "" keeps all) run with a short
/// minimum time. Flags given on the command line come after and win.
inline void initialize(int& argc, char**& argv, const char* quick_filter = "") {
  static std::vector<std::string> added;
  static std::vector<char*> args;
  const bool quick = quick_requested(argc, argv);
  args.assign(argv, argv + 1);
  if (quick) {
    added = {"--benchmark_min_time=0.02"};
    if (quick_filter[0] != '\0') added.push_back(std::string("--benchmark_filter=") + quick_filter);
    for (std::string& a : added) args.push_back(a.data());
  }
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--quick") != 0) args.push_back(argv[i]);
  argc = static_cast<int>(args.size());
  args.push_back(nullptr);
  argv = args.data();
  benchmark::Initialize(&argc, argv);
}

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
