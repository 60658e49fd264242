// Decoding reads every weight once, row after row, so one thread's share of a product is one run
// of memory. The matrix-vector kernels for a single token read each row from start to end before
// the next (a stream the hardware prefetcher follows) and prefetch kStreamAhead bytes ahead of
// their loads: some as they go, others (the bf16 GEMM's conversions, the int4 decode rows) once at
// each row's start, up to kStreamAhead past its end, so their loops carry no cursor. Measured on
// Zen 4 (2 threads, a 1 GiB matrix): rows read this way stream ~25-30% faster than tiles of 4-8
// rows read side by side, 64 bytes of each in turn. On Zen 4 even two rows side by side (the Q4_0
// one-token kernel had them, to share its activation loads) streamed at 0.5-0.6x one row on one
// core: kernels that read rows side by side (8-row tiles: FP8 and int4 decoding) prefetch each
// row's next tile into L2 (_MM_HINT_T1), which took them from 0.4-0.5x to 0.7-0.9x of the
// one-thread probe there.
#pragma once
#include <xmmintrin.h>

#include <cstdint>

namespace qnext {

constexpr int64_t kStreamAhead = 4096;

// Prefetches each cache line once, kStreamAhead bytes ahead of the reads, never past `end`.
class StreamPrefetch {
 public:
  StreamPrefetch(const void* begin, const void* end)
      : next_(static_cast<const char*>(begin) + kStreamAhead), end_(static_cast<const char*>(end)) {}
  // Called as the reads reach `read_upto` (monotonically).
  void advance(const void* read_upto) {
    const char* want = static_cast<const char*>(read_upto) + kStreamAhead;
    for (; next_ < want && next_ < end_; next_ += 64) _mm_prefetch(next_, _MM_HINT_T0);
  }

 private:
  const char* next_;
  const char* end_;
};

}  // namespace qnext
