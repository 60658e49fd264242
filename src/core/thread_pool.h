// A small fixed thread pool. parallel_for splits [0, n) into one contiguous range per thread;
// the calling thread takes a share too, so a pool of N threads uses N-1 workers. Between jobs the
// threads spin briefly before they sleep: decoding hands out a job every few tens of microseconds,
// and waking a sleeping thread costs about 20.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

#include "core/function_ref.h"

namespace qnext {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // fn(begin, end, thread_index) over a partition of [0, n) into at most size() ranges,
  // each a multiple of `grain` long (but the last). Returns when all are done.
  void parallel_for(size_t n, FunctionRef<void(size_t, size_t, int)> fn, size_t grain = 1);

  // fn(task, thread_index) for task in [0, n_tasks), handed out dynamically: for uneven work.
  void parallel_tasks(size_t n_tasks, FunctionRef<void(size_t, int)> fn);

 private:
  void worker(int index);
  void run_on_all(FunctionRef<void(int)> job);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const FunctionRef<void(int)>* job_ = nullptr;  // written before generation_ moves on
  std::atomic<size_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

// The process-wide pool the model uses; sized by set_num_threads (default: hardware threads).
ThreadPool& global_pool();
void set_num_threads(int n);

}  // namespace qnext
