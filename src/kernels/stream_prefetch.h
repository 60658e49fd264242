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
// one-thread probe there. One row at a time gains from L2 too: the BF16 / float one-token rows
// (matmul_avx512.cpp, matmul_avx2.cpp) prefetch each step's lines into L2 at integer addresses,
// where StreamPrefetch's cursor put them in L1; on Zen 4 that decoded the BF16 slice 1.1-1.25x
// faster, and rows aligned to 64 bytes (a GGUF's) had streamed slowest of all under the cursor.
#pragma once
#include <xmmintrin.h>

#include <cstdint>

namespace qnext {

constexpr int64_t kStreamAhead = 4096;

// Prefetches `lines` cache lines from `distance` bytes past p. The address is formed as an
// integer: past the matrix's end it is only an address (a prefetch never faults), so a loop that
// prefetches this way needs no cursor and no bounds test. kHint: _MM_HINT_T1 (into L2) where
// several rows stream side by side, and in the BF16 / float rows (see above). The hint is an int, not GCC's enum _mm_hint
// (clang has no such type): _MM_HINT_T0 is 3 and _MM_HINT_T1 2 in both, __builtin_prefetch's
// locality.
template <int kHint = _MM_HINT_T0>
inline void prefetch_lines(const void* p, uintptr_t distance, int lines = 1) {
  static_assert(kHint >= 0 && kHint <= 3, "a read hint: _MM_HINT_T0, T1, T2 or NTA");
  const uintptr_t at = reinterpret_cast<uintptr_t>(p) + distance;
  for (int line = 0; line < lines; ++line) __builtin_prefetch(reinterpret_cast<const char*>(at + uintptr_t(64 * line)), 0, kHint & 3);
}

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
