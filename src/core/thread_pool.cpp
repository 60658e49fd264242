#include "core/thread_pool.h"

#include <algorithm>
#include <memory>

namespace qnext {

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker(int index) {
  size_t seen = 0;
  for (;;) {
    const std::function<void(int)>* job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    (*job)(index);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_.notify_one();
    }
  }
}

void ThreadPool::run_on_all(const std::function<void(int)>& job) {
  if (n_threads_ == 1) {
    job(0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &job;
    pending_ = n_threads_ - 1;
    ++generation_;
  }
  wake_.notify_all();
  job(0);
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [&] { return pending_ == 0; });
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t, size_t, int)>& fn, size_t grain) {
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

void ThreadPool::parallel_tasks(size_t n_tasks, const std::function<void(size_t, int)>& fn) {
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
