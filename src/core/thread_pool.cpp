#include "core/thread_pool.h"

#include <algorithm>
#include <memory>

namespace qnext {

namespace {

constexpr int kSpins = 20000;  // ~0.5 ms of polling before a thread goes to sleep

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker(int index) {
  size_t seen = 0;
  for (;;) {
    for (int spin = 0; spin < kSpins && generation_.load(std::memory_order_acquire) == seen; ++spin) cpu_relax();
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    (*job_)(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);
      done_.notify_one();
    }
  }
}

void ThreadPool::run_on_all(FunctionRef<void(int)> job) {
  if (n_threads_ == 1) {
    job(0);
    return;
  }
  job_ = &job;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);  // a worker about to sleep sees the new generation
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  job(0);
  for (int spin = 0; spin < kSpins && pending_.load(std::memory_order_acquire) != 0; ++spin) cpu_relax();
  if (pending_.load(std::memory_order_acquire) != 0) {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
  }
}

void ThreadPool::parallel_for(size_t n, FunctionRef<void(size_t, size_t, int)> fn, size_t grain) {
  if (n == 0) return;
  grain = std::max<size_t>(1, grain);
  size_t blocks = (n + grain - 1) / grain;
  size_t parts = std::min<size_t>(size_t(n_threads_), blocks);
  if (parts <= 1) {
    fn(0, n, 0);
    return;
  }
  run_on_all([&](int t) {
    if (size_t(t) >= parts) return;
    size_t b0 = blocks * size_t(t) / parts, b1 = blocks * size_t(t + 1) / parts;
    size_t begin = b0 * grain, end = std::min(n, b1 * grain);
    if (begin < end) fn(begin, end, t);
  });
}

void ThreadPool::parallel_tasks(size_t n_tasks, FunctionRef<void(size_t, int)> fn) {
  if (n_tasks == 0) return;
  if (n_tasks == 1 || n_threads_ == 1) {
    for (size_t i = 0; i < n_tasks; ++i) fn(i, 0);
    return;
  }
  std::atomic<size_t> next{0};
  run_on_all([&](int t) {
    for (size_t i = next.fetch_add(1); i < n_tasks; i = next.fetch_add(1)) fn(i, t);
  });
}

static std::unique_ptr<ThreadPool>& pool_slot() {
  static std::unique_ptr<ThreadPool> pool;
  return pool;
}

ThreadPool& global_pool() {
  auto& p = pool_slot();
  if (!p) p = std::make_unique<ThreadPool>(int(std::max(1u, std::thread::hardware_concurrency())));
  return *p;
}

void set_num_threads(int n) { pool_slot() = std::make_unique<ThreadPool>(n); }

}  // namespace qnext
