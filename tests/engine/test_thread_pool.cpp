// ThreadPool: every index and task runs exactly once, what workers write is visible to the caller
// when parallel_for returns, and workers that went to sleep between jobs wake up. Written for the
// TSan run (scripts/test.sh --tsan) as much as for the normal one: the writes are plain, so a
// missing happens-before edge between a job and its caller is a reported race.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "core/thread_pool.h"

namespace qnext {
namespace {

TEST(ThreadPool, ParallelForCoversEachIndexOnceInGrainMultiples) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (size_t n : {0, 1, 2, 7, 64, 1001}) {
      for (size_t grain : {1, 3, 64}) {
        std::vector<int> hits(n, 0);  // plain ints: each index belongs to one range
        std::vector<int> ranges_of(threads, 0);
        pool.parallel_for(n, [&](size_t b, size_t e, int t) {
          ASSERT_LT(t, threads);
          ASSERT_LE(b, e);
          ASSERT_LE(e, n);
          EXPECT_EQ(b % grain, 0u) << "range start " << b << " grain " << grain;
          if (e != n) {
            EXPECT_EQ(e % grain, 0u) << "range end " << e << " grain " << grain;
          }
          ++ranges_of[t];
          for (size_t i = b; i < e; ++i) ++hits[i];
        }, grain);
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << "n " << n << " grain " << grain << " index " << i;
        for (int r : ranges_of) EXPECT_LE(r, 1);
      }
    }
  }
}

TEST(ThreadPool, ParallelTasksRunsEachTaskOnce) {
  ThreadPool pool(4);
  for (size_t n : {0, 1, 2, 3, 17, 500}) {
    std::vector<int> hits(n, 0);
    pool.parallel_tasks(n, [&](size_t task, int t) {
      ASSERT_LT(t, 4);
      ++hits[task];
    });
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << "task " << i << " of " << n;
  }
}

// Thousands of tiny jobs back to back (the decode loop's pattern): each job's plain writes must
// be complete and visible when parallel_for returns, and the next job must not start early.
TEST(ThreadPool, BackToBackJobsSeeEachOthersResults) {
  ThreadPool pool(3);
  std::vector<long> slot(3, 0);
  long expect = 0;
  for (int job = 0; job < 1000; ++job) {
    pool.parallel_for(3, [&](size_t b, size_t e, int) {
      for (size_t i = b; i < e; ++i) slot[i] += job;
    });
    expect += job;
    for (long s : slot) ASSERT_EQ(s, expect) << "after job " << job;
  }
}

// Long enough pauses between jobs that the workers stop spinning and wait on the condition variable.
TEST(ThreadPool, SleepingWorkersWakeForTheNextJob) {
  ThreadPool pool(3);
  for (int round = 0; round < 5; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::vector<int> hits(9, 0);
    pool.parallel_for(9, [&](size_t b, size_t e, int) {
      for (size_t i = b; i < e; ++i) ++hits[i];
    });
    for (int h : hits) ASSERT_EQ(h, 1);
  }
}

TEST(ThreadPool, PoolsComeAndGo) {
  for (int i = 0; i < 50; ++i) {
    ThreadPool pool(1 + i % 4);
    if (i % 2) {
      std::atomic<int> sum{0};
      pool.parallel_for(100, [&](size_t b, size_t e, int) { sum += int(e - b); });
      EXPECT_EQ(sum.load(), 100);
    }
  }  // destroyed right after a job, or idle with its workers possibly still spinning
}

TEST(ThreadPool, GlobalPoolCanBeResized) {
  set_num_threads(2);
  EXPECT_EQ(global_pool().size(), 2);
  std::vector<int> hits(10, 0);
  global_pool().parallel_for(10, [&](size_t b, size_t e, int) {
    for (size_t i = b; i < e; ++i) ++hits[i];
  });
  for (int h : hits) EXPECT_EQ(h, 1);
  set_num_threads(1);
  EXPECT_EQ(global_pool().size(), 1);
}

}  // namespace
}  // namespace qnext
