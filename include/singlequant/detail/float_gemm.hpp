// detail/float_gemm.hpp - the float32 products of the model layer's reference forward pass, and a
// deterministic thread pool loop.
//
// y = x W^T with one fixed summation order for every element, whatever the blocking or the thread:
// dot(x, w) over n elements keeps 8 partial sums, lane l adding x[8j + l] w[8j + l] for j = 0, 1, ...
// in order, then the tail x[8J + l] w[8J + l] (l < n mod 8) into lane l, then
// ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)). Plain C++ over fixed-size lane arrays, which
// compilers turn into SIMD code without reassociating anything (no xsimd needed).
#ifndef SINGLEQUANT_DETAIL_FLOAT_GEMM_HPP
#define SINGLEQUANT_DETAIL_FLOAT_GEMM_HPP

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "../config.hpp"
#include "parallel.hpp"  // resolve_threads

SINGLEQUANT_BEGIN_NAMESPACE

namespace detail {

inline constexpr std::size_t gemm_lanes = 8;

SINGLEQUANT_INLINE float reduce_lanes(const float* s) noexcept {
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/// TB tokens x OB outputs of y = x W^T (the micro-kernel; every element in the fixed order).
template <std::size_t TB, std::size_t OB>
SINGLEQUANT_INLINE void gemm_block(const float* const* xs, const float* const* ws, std::size_t n,
                                   float* const* ys, bool accumulate) noexcept {
  float acc[TB][OB][gemm_lanes] = {};
  const std::size_t full = n - n % gemm_lanes;
  for (std::size_t k = 0; k < full; k += gemm_lanes) {
    for (std::size_t t = 0; t < TB; ++t)
      for (std::size_t o = 0; o < OB; ++o)
        for (std::size_t l = 0; l < gemm_lanes; ++l) acc[t][o][l] += xs[t][k + l] * ws[o][k + l];
  }
  for (std::size_t l = 0; full + l < n; ++l)
    for (std::size_t t = 0; t < TB; ++t)
      for (std::size_t o = 0; o < OB; ++o) acc[t][o][l] += xs[t][full + l] * ws[o][full + l];
  for (std::size_t t = 0; t < TB; ++t)
    for (std::size_t o = 0; o < OB; ++o) {
      const float v = reduce_lanes(acc[t][o]);
      ys[t][o] = accumulate ? ys[t][o] + v : v;
    }
}

/// y(t, o) (+)= sum_k x(t, k) w(o, k) for tokens x outs, n inputs; leading dimensions in elements.
inline void gemm_xwt(const float* x, std::size_t ldx, std::size_t tokens, const float* w, std::size_t ldw,
                     std::size_t outs, std::size_t n, float* y, std::size_t ldy, bool accumulate) noexcept {
  constexpr std::size_t tb = 4, ob = 4;
  // Output columns in panels that stay in L2 while every token block passes over them.
  const std::size_t panel = std::max<std::size_t>(ob, (std::size_t{1} << 18) / (std::max<std::size_t>(n, 1) * sizeof(float)) / ob * ob);
  for (std::size_t o0 = 0; o0 < outs; o0 += panel) {
    const std::size_t o_end = std::min(outs, o0 + panel);
    for (std::size_t t0 = 0; t0 < tokens; t0 += tb) {
      const std::size_t tcount = std::min(tb, tokens - t0);
      const float* xs[tb];
      for (std::size_t t = 0; t < tb; ++t) xs[t] = x + (t0 + std::min(t, tcount - 1)) * ldx;
      for (std::size_t o = o0; o < o_end; o += ob) {
        const std::size_t ocount = std::min(ob, o_end - o);
        if (tcount == tb && ocount == ob) {
          const float* ws[ob] = {w + o * ldw, w + (o + 1) * ldw, w + (o + 2) * ldw, w + (o + 3) * ldw};
          float* rows[tb];
          for (std::size_t t = 0; t < tb; ++t) rows[t] = y + (t0 + t) * ldy + o;
          gemm_block<tb, ob>(xs, ws, n, rows, accumulate);
        } else {
          for (std::size_t t = 0; t < tcount; ++t)
            for (std::size_t j = 0; j < ocount; ++j) {
              const float* xr[1] = {xs[t]};
              const float* wr[1] = {w + (o + j) * ldw};
              float* yr[1] = {y + (t0 + t) * ldy + o + j};
              gemm_block<1, 1>(xr, wr, n, yr, accumulate);
            }
        }
      }
    }
  }
}

/// Runs task(i) for i in [0, count) on up to `threads` threads (the calling one included). Tasks
/// must write disjoint results, so the outcome does not depend on the thread count or schedule. The
/// first exception a task throws is rethrown here after every thread has stopped.
template <class Task>
void parallel_for(std::size_t count, std::size_t threads, Task&& task) {
  threads = std::min(resolve_threads(threads), count);
  if (threads <= 1) {
    for (std::size_t i = 0; i < count; ++i) task(i);
    return;
  }
  std::atomic<std::size_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto worker = [&] {
    for (;;) {
      const std::size_t i = next.fetch_add(1);
      if (i >= count) return;
#if SINGLEQUANT_USE_EXCEPTIONS
      try {
        task(i);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(failure_mutex);
        if (!failure) failure = std::current_exception();
        next.store(count);
      }
#else
      task(i);
#endif
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& thread : pool) thread.join();
#if SINGLEQUANT_USE_EXCEPTIONS
  if (failure) std::rethrow_exception(failure);
#endif
}

}  // namespace detail

SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_FLOAT_GEMM_HPP
