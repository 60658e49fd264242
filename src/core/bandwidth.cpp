#include "core/bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>

#include "core/thread_pool.h"

namespace qnext {

double measure_read_bandwidth(int threads, size_t bytes, int repeats) {
  const size_t n = bytes / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buf(new uint64_t[n]);
  ThreadPool pool(threads);
  // First touch from the pool's threads, so pages are spread as a real run spreads them.
  pool.parallel_for(n, [&](size_t b, size_t e, int) { std::memset(buf.get() + b, 1, (e - b) * sizeof(uint64_t)); });
  double best = 0;
  volatile uint64_t sink = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(n, [&](size_t b, size_t e, int) {
      uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;  // four chains keep many loads in flight
      for (size_t i = b; i + 4 <= e; i += 4) {
        a0 += buf[i];
        a1 += buf[i + 1];
        a2 += buf[i + 2];
        a3 += buf[i + 3];
      }
      sink = sink + (a0 ^ a1 ^ a2 ^ a3);
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(n * sizeof(uint64_t)) / s / 1e9);
  }
  return best;
}

}  // namespace qnext
