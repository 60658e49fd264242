// A quick measurement of this machine's memory read bandwidth, the limit of decoding speed.
#pragma once
#include <cstddef>

namespace qnext {

// Reads a buffer of `bytes` (much larger than the caches) `repeats` times with `threads` threads;
// returns the best GB/s (1e9 bytes per second).
double measure_read_bandwidth(int threads, size_t bytes = size_t(1) << 30, int repeats = 3);

}  // namespace qnext
