// singlequant/detail/parallel.hpp - a small team of std::threads for the dense kernels.
//
// Determinism rule of every caller: a task owns its outputs and computes them with the same
// operations whichever thread runs it, and task boundaries depend on the problem only (never on the
// thread count), so results are bit-identical for any number of threads.
#ifndef SINGLEQUANT_DETAIL_PARALLEL_HPP
#define SINGLEQUANT_DETAIL_PARALLEL_HPP

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "../config.hpp"

SINGLEQUANT_BEGIN_NAMESPACE
namespace detail {

/// The thread count an option asks for: 0 means every hardware thread (at least 1).
inline std::size_t resolve_threads(std::size_t requested) noexcept {
  if (requested != 0) return requested;
  const unsigned hardware = std::thread::hardware_concurrency();
  return hardware == 0 ? 1 : hardware;
}

/// threads - 1 workers plus the calling thread. run(tasks, f) calls f(t) once for every t in
/// [0, tasks), tasks claimed in increasing order from a shared counter, and returns when all are
/// done. f must not throw (the kernels it runs are noexcept).
class thread_team {
 public:
  explicit thread_team(std::size_t threads) {
    for (std::size_t t = 1; t < threads; ++t) workers_.emplace_back([this] { work(); });
  }
  thread_team(const thread_team&) = delete;
  thread_team& operator=(const thread_team&) = delete;
  ~thread_team() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& worker : workers_) worker.join();
  }

  /// Threads taking part, the caller included.
  [[nodiscard]] std::size_t size() const noexcept { return workers_.size() + 1; }

  template <class F>
  void run(std::size_t tasks, F&& f) {
    if (tasks == 0) return;
    if (workers_.empty() || tasks == 1) {
      for (std::size_t t = 0; t < tasks; ++t) f(t);
      return;
    }
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      job_ = const_cast<void*>(static_cast<const void*>(&f));
      call_ = [](void* job, std::size_t t) { (*static_cast<std::remove_reference_t<F>*>(job))(t); };
      tasks_ = tasks;
      next_.store(0, std::memory_order_relaxed);
      busy_ = workers_.size();
      ++generation_;
    }
    wake_.notify_all();
    drain();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return busy_ == 0; });
  }

 private:
  void drain() noexcept {
    for (;;) {
      const std::size_t t = next_.fetch_add(1, std::memory_order_relaxed);
      if (t >= tasks_) return;
      call_(job_, t);
    }
  }
  void work() {
    std::size_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      drain();
      {
        const std::lock_guard<std::mutex> lock(mutex_);
        if (--busy_ == 0) done_.notify_one();
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  void* job_ = nullptr;
  void (*call_)(void*, std::size_t) = nullptr;
  std::size_t tasks_ = 0, busy_ = 0, generation_ = 0;
  std::atomic<std::size_t> next_{0};
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace detail
SINGLEQUANT_END_NAMESPACE

#endif  // SINGLEQUANT_DETAIL_PARALLEL_HPP
