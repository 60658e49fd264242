// The activations of the int8 int4 kernels (int4_q8_avx2.cpp, int4_q8_avx512.cpp), laid out once
// per call in the order of the weights' nibbles. A run of 128 weights is 16 int32 words = 64
// bytes: the low nibble of each byte is an even weight of its word, the high nibble the odd one.
// Also what both kernels share on the weights' side: a row's scales and zero points as floats
// (Int4RowFloats, from int4.h's Int4Rows) and the walk over rows. AVX2 instructions only, so both
// kernels' files include it.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <type_traits>

#include "kernels/int4.h"
#include "kernels/stream_prefetch.h"

namespace qnext {
// Internal linkage: each kernel file compiles these with its own ISA flags, and one shared
// out-of-line copy could carry AVX-512 code into the AVX2 kernel.
namespace {

// One run of 128 activations. Lane i: word i of the run, block i / 4 of the activations.
struct RunX4 {
  int8_t even[64];  // bytes 4i..4i+3: q[8i], q[8i+2], q[8i+4], q[8i+6] (partners of the low nibbles)
  int8_t odd[64];   // bytes 4i..4i+3: q[8i+1], q[8i+3], q[8i+5], q[8i+7]
  float dx[16];     // the block's scale
  float zc[16];     // dx * the word's sum of q: the zero point comes off as zero_u * zc
  int32_t nsum[16]; // minus the word's sum of q: the one-token kernels start lane i at zero_u * nsum
};
constexpr int64_t kMaxRuns4 = kInt4Int8MaxCols / 128;

// Row r's group scales and zero points (z + 8) as floats, read once per row: converting them per
// run of 128 weights (a bf16 widening, a nibble of a zero-point word) cost as much as the run's
// dot products. A row of 512 weights (an expert's down projection: 4 groups) spent about as long
// here as on its products, so the row finds its scales through Int4Rows (no division per row) and
// converts them after one switch on their type, in plain loops (F16 inline, not a call per scale).
// Padded so that a 4-float load at any group stays inside.
struct Int4RowFloats {
  float scale[kInt4Int8MaxCols / 32 + 4];
  float zero[kInt4Int8MaxCols / 32 + 4];
  void fill(const Int4Rows& m, int64_t r) {
    const int64_t n = m.groups;
    const Int4RowGroups row(m, r);
    const char* p = row.scales.first();
    const uint16_t* half = reinterpret_cast<const uint16_t*>(p);
    switch (m.scale_dtype) {
      case DType::BF16:
        for (int64_t g = 0; g < n; ++g) scale[g] = bf16_to_f32(half[g]);
        break;
      case DType::F16:
        for (int64_t g = 0; g < n; ++g) scale[g] = _cvtsh_ss(half[g]);
        break;
      default: std::copy_n(reinterpret_cast<const float*>(p), n, scale);
    }
    if (!row.zeros) {
      std::fill_n(zero, n, 8.0f);  // symmetric (the W4A16 release): no nibble per group
    } else {
      for (int64_t g = 0; g < n; ++g) zero[g] = float(row.zero_u(g));
    }
    for (int64_t g = n; g < n + 4; ++g) scale[g] = zero[g] = 0;
  }
  // Groups of k runs (128k weights) as one entry per run [runs], so a kernel indexes by run without
  // a division; in place, from the back (entry c comes from group c / k <= c).
  void per_run(int64_t k, int64_t runs) {
    for (int64_t g = (runs + k - 1) / k - 1; g >= 0; --g)
      for (int64_t c = std::min(runs, (g + 1) * k) - 1; c >= g * k; --c) scale[c] = scale[g], zero[c] = zero[g];
  }
};

// Blocks [4 * runs) of one token's activations into runs.
inline void lay_out_runs4(const BlockQ8x* xq, int64_t runs, RunX4* out) {
  // Within each 16-byte half: the 8 even bytes, then the 8 odd ones.
  const __m256i split = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,  //
                                         0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  const __m256i bias = _mm256_set1_epi8(char(0x80));
  for (int64_t c = 0; c < runs; ++c) {
    RunX4& o = out[c];
    for (int b = 0; b < 4; ++b) {
      const BlockQ8x& blk = xq[4 * c + b];
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.q));
      // [evens 0-15 | odds 0-15] of the block's 32 activations.
      const __m256i eo = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(q, split), 0xD8);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o.even + 16 * b), _mm256_castsi256_si128(eo));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o.odd + 16 * b), _mm256_extracti128_si256(eo, 1));
      // Sums of each word's 8 activations: sad of q + 128 against zero, less 8 * 128.
      alignas(32) int64_t sums[4];
      _mm256_store_si256(reinterpret_cast<__m256i*>(sums), _mm256_sad_epu8(_mm256_xor_si256(q, bias), _mm256_setzero_si256()));
      for (int i = 0; i < 4; ++i) {
        o.dx[4 * b + i] = blk.d;
        o.zc[4 * b + i] = blk.d * float(sums[i] - 1024);
        o.nsum[4 * b + i] = int32_t(1024 - sums[i]);
      }
    }
  }
}

// Rows [ra, rb) one after another for tt (2-3) tokens, as both kernels walk them (one token has
// their rows_one_token): row(std::integral_constant<int, TT>, m, r, prefetch) computes row r.
template <class Row>
inline void int4_rows_in_turn(const Matrix& w, int tt, int64_t ra, int64_t rb, Row row) {
  const Int4Rows m(w);
  StreamPrefetch prefetch(m.row(ra), m.row(w.rows));
  for (int64_t r = ra; r < rb; ++r) {
    switch (tt) {
      case 1: row(std::integral_constant<int, 1>{}, m, r, prefetch); break;
      case 2: row(std::integral_constant<int, 2>{}, m, r, prefetch); break;
      default: row(std::integral_constant<int, 3>{}, m, r, prefetch); break;
    }
  }
}

// Output rows [r0, r1) for T tokens in passes of up to 3: each pass lays out its tokens'
// activations (on the stack, 60 KiB; the one-token kernels add their rows' scales, 8-17 KiB),
// then calls rows(xs, tt, y of the pass's first token, r0, r1) with xs[0..tt) its tokens' runs.
template <class Rows>
inline void int4_q8_passes(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1,
                           Rows rows) {
  const int64_t runs = w.cols / 128, nb = w.cols / 32;
  RunX4 laid[3][kMaxRuns4];
  for (int t0 = 0; t0 < T; t0 += 3) {
    const int tt = std::min(3, T - t0);
    const RunX4* xs[3];
    for (int t = 0; t < tt; ++t) {
      lay_out_runs4(xq + size_t(t0 + t) * size_t(nb), runs, laid[t]);
      xs[t] = laid[t];
    }
    rows(xs, tt, y + size_t(t0) * size_t(ldy), r0, r1);
  }
}

}  // namespace
}  // namespace qnext
