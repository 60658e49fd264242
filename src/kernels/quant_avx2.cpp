// AVX2 variant of matmul_q_rows (scalar twin in quant.cpp): int8 x int8 block dot products via
// the sign trick (|w| as unsigned bytes times sign(w)*x) and maddubs. One token streams the rows
// one after another; more tokens run 4-row x 2-token tiles that reuse every unpacked weight block.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "kernels/simd_avx2.h"
#include "kernels/quant.h"
#include "kernels/stream_prefetch.h"

namespace qnext {
namespace {

// Each format unpacks a block to 32 bytes in registers and dots it with 32 int8 activations,
// leaving 8 int32 partial sums.
struct Q8 {
  using Block = BlockQ8_0;
  static __m256i load(const Block& b) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.q)); }
  static __m256i load_signed(const Block& b) { return load(b); }
  // maddubs takes unsigned x signed bytes: multiply |w| by x carrying w's sign.
  static __m256i dot(__m256i w, const BlockQ8x& x) {
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q));
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xv, w));
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
  }
};
struct Q4 {
  using Block = BlockQ4_0;
  static __m256i load(const Block& b) {  // the nibbles as unsigned bytes 0..15
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.q));
    const __m128i mask = _mm_set1_epi8(15);
    const __m128i lo = _mm_and_si128(bytes, mask);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), mask);
    return _mm256_set_m128i(hi, lo);
  }
  static __m256i load_signed(const Block& b) { return _mm256_sub_epi8(load(b), _mm256_set1_epi8(8)); }
  // sum (q - 8) x = sum q x - 8 sum x; the 8 lanes each take sum x off.
  static __m256i dot(__m256i q, const BlockQ8x& x) {
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q));
    const __m256i p32 = _mm256_madd_epi16(_mm256_maddubs_epi16(q, xv), _mm256_set1_epi16(1));
    return _mm256_sub_epi32(p32, _mm256_set1_epi32(x.sum));
  }
};

template <typename F, int R, int TT>
inline void tile(const Matrix& w, const BlockQ8x* xq, float* y, int64_t ldy, int64_t r, int t) {
  using Block = typename F::Block;
  const int64_t nb = w.cols / kQuantBlock;
  const Block* rows[R];
  const Block* ahead[R];
  for (int i = 0; i < R; ++i) {
    rows[i] = reinterpret_cast<const Block*>(w.row_ptr(r + i));
    ahead[i] = reinterpret_cast<const Block*>(w.row_ptr(std::min(w.rows - 1, r + i + kQuantPrefetchRows)));
  }
  const BlockQ8x* xs[TT];
  for (int j = 0; j < TT; ++j) xs[j] = xq + size_t(t + j) * size_t(nb);
  __m256 acc[R][TT];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < TT; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    for (int i = 0; i < R; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(ahead[i] + b), _MM_HINT_T0);
      const __m256i wq = F::load(rows[i][b]);
      const float dw = _cvtsh_ss(rows[i][b].d);  // F16C; the portable f16_to_f32 is far slower
      for (int j = 0; j < TT; ++j)
        acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(F::dot(wq, xs[j][b])), _mm256_set1_ps(dw * xs[j][b].d), acc[i][j]);
    }
  }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < TT; ++j) y[size_t(t + j) * size_t(ldy) + size_t(r + i)] = hsum_avx2(acc[i][j]);
}

// One token: rows one after another, four accumulators over consecutive blocks (see
// stream_prefetch.h).
template <typename F>
void run_stream(const Matrix& w, const BlockQ8x* x, float* y, int64_t r0, int64_t r1) {
  using Block = typename F::Block;
  const int64_t nb = w.cols / kQuantBlock;
  StreamPrefetch prefetch(w.row_ptr(r0), w.row_ptr(w.rows));
  for (int64_t r = r0; r < r1; ++r) {
    const Block* row = reinterpret_cast<const Block*>(w.row_ptr(r));
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
      prefetch.advance(row + b + 4);
      for (int u = 0; u < 4; ++u) {
        const Block& blk = row[b + u];
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(blk.d) * x[b + u].d);
        acc[u] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(F::dot(F::load(blk), x[b + u])), d, acc[u]);
      }
    }
    for (; b < nb; ++b) {
      const __m256 d = _mm256_set1_ps(_cvtsh_ss(row[b].d) * x[b].d);
      acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(F::dot(F::load(row[b]), x[b])), d, acc[0]);
    }
    y[r] = hsum_avx2(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  }
}

// The 8 f16 scales of a run of Q4_0 blocks (18 bytes apart), packed into 8 words in the order
// of the block sums' lanes: blocks 0, 2, 4, 6, 1, 3, 5, 7. Put together in general registers: a
// vpgatherdd does it in one instruction, but on Zen 3 the loop then waits on the gather (the loop
// before this one ran 20% slower with it).
inline __m128i run_scales(const uint8_t* run) {
  auto d = [&](int k) {
    uint16_t v;
    std::memcpy(&v, run + 18 * k, 2);
    return uint64_t(v);
  };
  const uint64_t even = d(0) | d(2) << 16 | d(4) << 32 | d(6) << 48;
  const uint64_t odd = d(1) | d(3) << 16 | d(5) << 32 | d(7) << 48;
  return _mm_set_epi64x(int64_t(odd), int64_t(even));
}

// Lane sums of two pair dots: a's and b's lanes 0 + 2 and 1 + 3 of each 128-bit half, interleaved
// (a, b, a, b). Applied to pairs 0 and 1, to pairs 2 and 3, then (as 64-bit lanes) to those two
// results, it leaves each block's whole dot in one lane: blocks 0, 2, 4, 6, 1, 3, 5, 7 (each at most
// 32 * 15 * 127 in magnitude, converted exactly), so a run takes one conversion and one multiply-add
// instead of one per pair.
inline __m256i add_halves32(__m256i a, __m256i b) {
  return _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
}
inline __m256i add_halves64(__m256i a, __m256i b) {
  return _mm256_add_epi32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
}

// One pair of blocks' dot against a run's activations: 16 nibble bytes of block 2p at a, of block
// 2p + 1 at a + 18; the low nibbles are k 0-15 and the high nibbles k 16-31 of both, matched by the
// RunX layout. |dot16| <= 2 * (2 * 15 * 127) fits int16.
inline __m256i pair_dot(const uint8_t* a, __m256i xlo, __m256i xhi) {
  const __m256i nibble = _mm256_set1_epi8(15);
  const __m256i q = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(a + 18), reinterpret_cast<const __m128i*>(a));
  const __m256i lo = _mm256_and_si256(q, nibble);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), nibble);
  const __m256i dot16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo), _mm256_maddubs_epi16(hi, xhi));
  return _mm256_madd_epi16(dot16, _mm256_set1_epi16(1));
}

// One token over a Q4_0 row of a multiple of 8 blocks. Each run of 8 blocks: four pair dots,
// their block sums in one register, one multiply-add by the 8 blocks' scales dw dx, and one by dw
// and the activations' offsets (-8 dx sum(q), the nibbles' bias). On Zen 3 the loop before these
// run sums, one row with a permute, a conversion and a multiply-add per pair of blocks, computed
// in cache no faster than the memory delivers; the run sums (then over two rows side by side) were
// ahead of it in 7 of 8 alternated rounds in cache (69-107 against 80-119 us). Each run's 144 bytes
// are prefetched kStreamAhead bytes ahead, three lines at integer addresses (past the matrix on the
// last rows, where a prefetch does nothing). Two rows side by side, sharing the activations' loads,
// streamed from memory at 0.75-0.85x of one row on Zen 4 (BM_Matvec Q4_0, QNEXT_ISA=avx2, one
// thread; no faster from cache), as the AVX-512 kernel's two rows did there (0.5-0.6x).
inline float q4_run_row(const uint8_t* row, int64_t nb, const RunX* x) {
  const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t g = 0; g < nb; g += 8) {
    const RunX& xr = x[g / 8];
    const uint8_t* run = row + g * int64_t(sizeof(BlockQ4_0));  // 8 blocks, 144 bytes
    prefetch_lines(run, kStreamAhead, 3);
    __m256i sums = _mm256_setzero_si256();  // the run's block sums
    for (int half = 0; half < 2; ++half) {  // pairs 0, 1 then 2, 3
      __m256i d[2];
      for (int h = 0; h < 2; ++h) {
        const int p = 2 * half + h;
        const __m256i xlo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr.lo + 32 * p));
        const __m256i xhi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr.hi + 32 * p));
        d[h] = pair_dot(run + 36 * p + 2, xlo, xhi);
      }
      const __m256i t = add_halves32(d[0], d[1]);
      sums = half == 0 ? t : add_halves64(sums, t);
    }
    const __m256 dx = _mm256_permutevar8x32_ps(_mm256_loadu_ps(xr.d), order);
    const __m256 offset = _mm256_permutevar8x32_ps(_mm256_loadu_ps(xr.offset), order);
    const __m256 dw = _mm256_cvtph_ps(run_scales(run));
    acc = _mm256_fmadd_ps(dw, offset, acc);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_mul_ps(dw, dx), acc);
  }
  return hsum_avx2(acc);
}

// One token over Q4_0 rows of a multiple of 8 blocks, a row at a time.
void q4_run_stream(const Matrix& w, const RunX* x, float* y, int64_t r0, int64_t r1) {
  const int64_t nb = w.cols / kQuantBlock;
  for (int64_t r = r0; r < r1; ++r) y[r] = q4_run_row(w.row_ptr(r), nb, x);
}

template <typename F>
void run(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t nb = w.cols / kQuantBlock;
  if (T == 1 && std::is_same_v<F, Q4> && nb % 8 == 0 && nb / 8 <= kMaxRuns) {
    RunX runs[kMaxRuns];  // [nb / 8]
    pack_runs(xq, nb, runs);
    q4_run_stream(w, runs, y, r0, r1);
    return;
  }
  if (T == 1) {
    run_stream<F>(w, xq, y, r0, r1);
    return;
  }
  constexpr int kTokenBlock = 16;
  for (int t0 = 0; t0 < T; t0 += kTokenBlock) {
    const int t1 = std::min(T, t0 + kTokenBlock);
    int64_t r = r0;
    auto rows = [&](auto R) {
      int t = t0;
      for (; t + 2 <= t1; t += 2) tile<F, decltype(R)::value, 2>(w, xq, y, ldy, r, t);
      if (t < t1) tile<F, decltype(R)::value, 1>(w, xq, y, ldy, r, t);
    };
    for (; r + 4 <= r1; r += 4) rows(std::integral_constant<int, 4>{});
    for (; r < r1; ++r) rows(std::integral_constant<int, 1>{});
  }
}

// One quantized row to floats, 32 at a time.
template <typename F>
inline void dequantize_row_avx2(const uint8_t* row, int64_t cols, float* out) {
  const auto* blocks = reinterpret_cast<const typename F::Block*>(row);
  for (int64_t b = 0; b < cols / kQuantBlock; ++b) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(blocks[b].d));
    const __m256i q = F::load_signed(blocks[b]);  // 32 int8
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    float* o = out + b * kQuantBlock;
    _mm256_storeu_ps(o, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
    _mm256_storeu_ps(o + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
    _mm256_storeu_ps(o + 16, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
    _mm256_storeu_ps(o + 24, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
  }
}

}  // namespace

// Bit-identical to quantize_activations: the same amax, scale, reciprocal, products and
// round-to-nearest-even (the default rounding mode, as std::nearbyint uses).
void quantize_activations_avx2(const float* x, int64_t n, BlockQ8x* out) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);  // undoes the packs' lane interleave
  for (int64_t b = 0; b < n / kQuantBlock; ++b, x += kQuantBlock) {
    __m256 v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(x + 8 * i);
    const __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                                   _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    const float amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
    const float d = amax / 127.0f;
    const float inv = d > 0 ? 1.0f / d : 0.0f;
    const __m256 iv = _mm256_set1_ps(inv);
    __m256i q[4];
    for (int i = 0; i < 4; ++i) q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], iv));
    const __m256i s32 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    out[b].d = d;
    out[b].sum = _mm_cvtsi128_si32(s4);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].q), _mm256_permutevar8x32_epi32(bytes, order));
  }
}

void dequantize_row_avx2(DType type, const uint8_t* row, int64_t cols, float* out) {
  if (type == DType::Q8_0) dequantize_row_avx2<Q8>(row, cols, out);
  else dequantize_row_avx2<Q4>(row, cols, out);
}

void matmul_q_rows_avx2(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (w.dtype == DType::Q8_0) run<Q8>(w, xq, T, y, ldy, r0, r1);
  else run<Q4>(w, xq, T, y, ldy, r0, r1);
}

}  // namespace qnext
