// AVX-512 VNNI products over block-quantized weights (scalar twins in quant.cpp:
// matmul_q_rows_scalar and quantize_activations). Built with -mavx512vnni; called only when the
// CPU has it (vnni_kernels).
//
// Many tokens (prefill) run as a packed int8 GEMM with the tokens in the 16 lanes of a register.
// The activations of 16 tokens are packed once per call into a slab whose 64-byte rows each hold
// 4 consecutive k of all 16 tokens, as unsigned bytes (q + 128). vpdpbusd multiplies such a row
// by 4 signed weight bytes broadcast straight from the weight row, so Q8_0 weights are read in
// place, in file order, with no transposition (Q4_0 rows are unpacked to bytes first, FP8 and
// int4 rows converted to int8 blocks by their format's to_int8: weight_format.h). Per block
// of 32 k, 8 vpdpbusd per weight row give the 16 tokens' integer dots, which then take off the
// offset (128 * sum of the block's weights), turn to float and scale by dw * dx: the same
// integers and the same per-block sum order as the scalar twin.
//
// A prompt of 512 tokens gives each of 512 experts about 10 tokens, so most calls fit one slab
// with a lane to spare. That lane then holds all-ones bytes, its dot is the block's weight sum,
// and the offset comes from there: Q8_0 rows are then used with no preparation pass at all.
//
// Up to 8 tokens (a batch of decoding sequences) would leave half the lanes idle, and the GEMM
// would be bound by vpdpbusd rather than memory. A paired slab gives each token two lanes: lane
// 2t takes k 0-3 of every 8 consecutive k, lane 2t + 1 takes k 4-7, so one vpdpbusd against 8
// weight bytes broadcast as a qword does 64 useful products. Both lanes of a token share its
// scales, so their float sums are simply added at the end. With every lane in use there is no
// spare lane for the weight sums, so the roles swap: the activations stay signed and the weights
// become the unsigned operand (w + 128, one xor per broadcast); the offset, 128 * the sum of the
// activation bytes a lane sees, is known when the slab is packed.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/quant.h"
#include "kernels/stream_prefetch.h"

namespace qnext {
namespace {

constexpr int kLanes = 16;                      // tokens per slab
constexpr int kSlabBlockBytes = 8 * 64 + 64;    // per block of 32 k: 8 rows of 16 x 4 bytes, 16 scales
constexpr int kPairedTokens = kLanes / 2;       // tokens of a paired slab (two lanes each)
constexpr int kPairedBlockBytes = 4 * 64 + 128;  // per block: 4 rows of 8 tokens x 2 x 4 bytes, 16 scales, 16 offsets
constexpr int kMR = 12;                         // weight rows per micro-tile
constexpr size_t kChunkBytes = 192 * 1024;      // unpacked weight rows per pass (in L2 while slabs go by)

// xq [T, nb] -> slabs [ceil(T / 16), nb, 576 bytes]; tokens past T are zeros (q = 0, dx = 0),
// but for the sum lane (lane 15 of a single slab of up to 15 tokens): bytes 1, dx 0.
void pack_slabs(const BlockQ8x* xq, int T, int64_t nb, bool sum_lane, uint8_t* slabs) {
  const int n_slabs = (T + kLanes - 1) / kLanes;
  for (int s = 0; s < n_slabs; ++s) {
    uint8_t* slab = slabs + size_t(s) * size_t(nb) * kSlabBlockBytes;
    for (int j = 0; j < kLanes; ++j) {
      const int t = s * kLanes + j;
      for (int64_t b = 0; b < nb; ++b) {
        uint8_t* dst = slab + size_t(b) * kSlabBlockBytes;
        uint32_t* rows = reinterpret_cast<uint32_t*>(dst);
        float* dx = reinterpret_cast<float*>(dst + 512);
        if (t >= T) {
          const uint32_t pad = sum_lane && j == kLanes - 1 ? 0x01010101u : 0x80808080u;
          for (int k4 = 0; k4 < 8; ++k4) rows[k4 * kLanes + j] = pad;
          dx[j] = 0.0f;
          continue;
        }
        const BlockQ8x& blk = xq[size_t(t) * size_t(nb) + size_t(b)];
        for (int k4 = 0; k4 < 8; ++k4) {
          uint32_t v;
          std::memcpy(&v, blk.q + 4 * k4, 4);
          rows[k4 * kLanes + j] = v ^ 0x80808080u;  // signed -> unsigned: q + 128
        }
        dx[j] = blk.d;
      }
    }
  }
}

// xq [T, nb] (T <= 8) -> one paired slab [nb, 384 bytes]: per 8 k, token t's first 4 signed bytes
// in lane 2t and its last 4 in lane 2t + 1; both lanes carry its scale; each lane's offset is
// -128 * the sum of its bytes. Unused lanes are zeros.
void pack_paired_slab(const BlockQ8x* xq, int T, int64_t nb, uint8_t* slab) {
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* dst = slab + size_t(b) * kPairedBlockBytes;
    uint32_t* rows = reinterpret_cast<uint32_t*>(dst);
    float* dx = reinterpret_cast<float*>(dst + 256);
    int32_t* corr = reinterpret_cast<int32_t*>(dst + 320);
    for (int j = 0; j < kLanes; ++j) {
      const int t = j / 2, half = j % 2;
      if (t >= T) {
        for (int k8 = 0; k8 < 4; ++k8) rows[k8 * kLanes + j] = 0;
        dx[j] = 0.0f;
        corr[j] = 0;
        continue;
      }
      const BlockQ8x& blk = xq[size_t(t) * size_t(nb) + size_t(b)];
      int32_t sum = 0;
      for (int k8 = 0; k8 < 4; ++k8) {
        const int8_t* q = blk.q + 8 * k8 + 4 * half;
        std::memcpy(&rows[k8 * kLanes + j], q, 4);
        sum += q[0] + q[1] + q[2] + q[3];
      }
      dx[j] = blk.d;
      corr[j] = -128 * sum;
    }
  }
}

// One weight row as the kernel reads it: signed bytes with `stride` bytes between blocks
// (Q8_0 in place: 34, its f16 scale 2 bytes before each block's bytes; unpacked Q4_0, FP8, int4: 32), and
// when prepared, a float scale and the offset term per block.
struct RowView {
  const int8_t* q;
  const float* d;       // [nb] or null (in-place Q8_0: the f16 scales in the blocks)
  const int32_t* corr;  // [nb]: -128 * (sum of the block's 32 weights), or null (the sum lane)
};

// How a micro-tile finds each block's scale and offset.
enum class Mode {
  Prepared,    // d and corr arrays (several slabs: the preparation pays off)
  InPlaceQ8,   // one slab, Q8_0 as stored: f16 scales from the blocks, sums from the spare lane
  Unpacked,    // one slab, Q4_0 / FP8 / int4 unpacked to bytes with float scales, sums from the spare lane
};

// The sum of a block's 32 signed bytes.
inline int32_t block_sum(__m256i q) {
  const __m256i sad = _mm256_sad_epu8(_mm256_xor_si256(q, _mm256_set1_epi8(char(0x80))), _mm256_setzero_si256());
  const __m128i s = _mm_add_epi64(_mm256_castsi256_si128(sad), _mm256_extracti128_si256(sad, 1));
  return int32_t(_mm_cvtsi128_si64(_mm_add_epi64(s, _mm_unpackhi_epi64(s, s)))) - 32 * 128;
}

// Prepares rows [r, r + n) of w for `mode`: views for all; Prepared: scales and offsets;
// Q4_0, FP8, int4: unpacked bytes (and, but for the sum lane, offsets).
void prepare_rows(const Matrix& w, Mode mode, int64_t r, int64_t n, int8_t* unpacked, float* d, int32_t* corr,
                  RowView* views) {
  const int64_t nb = w.cols / kQuantBlock;
  const RowToInt8 to_int8 = weight_format(w.dtype).to_int8[int(Isa::Avx512)];  // FP8, int4
  const size_t code_bytes = row_bytes(w.dtype, w.cols);
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* row = w.row_ptr(r + i);
    const uint8_t* ahead = w.row_ptr(std::min(w.rows - 1, r + i + kQuantPrefetchRows));
    float* di = d + size_t(i * nb);
    int32_t* ci = corr + size_t(i * nb);
    if (mode == Mode::InPlaceQ8) {
      views[i] = {reinterpret_cast<const int8_t*>(reinterpret_cast<const BlockQ8_0*>(row)->q), nullptr, nullptr};
    } else if (w.dtype == DType::Q8_0) {
      const auto* blocks = reinterpret_cast<const BlockQ8_0*>(row);
      for (int64_t b = 0; b < nb; ++b) {
        _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<const BlockQ8_0*>(ahead) + b), _MM_HINT_T0);
        di[b] = _cvtsh_ss(blocks[b].d);
        ci[b] = -128 * block_sum(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks[b].q)));
      }
      views[i] = {reinterpret_cast<const int8_t*>(blocks[0].q), di, ci};
    } else if (to_int8) {
      for (size_t k = 0; k < code_bytes; k += 64) _mm_prefetch(reinterpret_cast<const char*>(ahead + k), _MM_HINT_T0);
      int8_t* qi = unpacked + size_t(i * w.cols);
      to_int8(w, r + i, qi, di);
      if (mode == Mode::Prepared)
        for (int64_t b = 0; b < nb; ++b)
          ci[b] = -128 * block_sum(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qi + 32 * b)));
      views[i] = {qi, di, mode == Mode::Prepared ? ci : nullptr};
    } else {
      const auto* blocks = reinterpret_cast<const BlockQ4_0*>(row);
      int8_t* qi = unpacked + size_t(i * w.cols);
      for (int64_t b = 0; b < nb; ++b) {
        _mm_prefetch(reinterpret_cast<const char*>(reinterpret_cast<const BlockQ4_0*>(ahead) + b), _MM_HINT_T0);
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks[b].q));
        const __m128i mask = _mm_set1_epi8(15), eight = _mm_set1_epi8(8);
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(bytes, mask), eight);
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), mask), eight);
        const __m256i q = _mm256_set_m128i(hi, lo);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(qi + 32 * b), q);
        di[b] = _cvtsh_ss(blocks[b].d);
        if (mode == Mode::Prepared) ci[b] = -128 * block_sum(q);
      }
      views[i] = {qi, di, mode == Mode::Prepared ? ci : nullptr};
    }
  }
}

// out[i][0..16) = the 16 slab lanes' products with row i, for MR rows (paired: lanes 2t and
// 2t + 1 add up to token t's). In place, the rows are still in memory: prefetch the next tile's
// (ahead_bytes further on).
template <int MR, int kStride, Mode kMode, bool kPaired>
inline void micro_tile(const RowView* rows, int64_t nb, const uint8_t* slab, int64_t ahead_bytes, float* out) {
  constexpr int kSteps = kPaired ? 4 : 8;  // vpdpbusd per row and block
  constexpr int kBlockBytes = kPaired ? kPairedBlockBytes : kSlabBlockBytes;
  const __m512i sum_index = _mm512_set1_epi32(kLanes - 1);  // the spare lane: the block's weight sum
  const __m512i flip = _mm512_set1_epi8(char(0x80));         // paired: signed weights -> w + 128
  __m512 acc[MR];
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* xb = slab + size_t(b) * kBlockBytes;
    if (kMode == Mode::InPlaceQ8)
      for (int i = 0; i < MR; ++i)
        _mm_prefetch(reinterpret_cast<const char*>(rows[i].q + b * kStride + ahead_bytes), _MM_HINT_T0);
    __m512i dot[MR];
    for (int i = 0; i < MR; ++i) dot[i] = _mm512_setzero_si512();
    // Unrolled: as a loop, g++ rotated the MR accumulators through spare registers every step
    // (two vector moves per vpdpbusd).
#pragma GCC unroll 8
    for (int k = 0; k < kSteps; ++k) {
      const __m512i xv = _mm512_loadu_si512(xb + 64 * k);
      for (int i = 0; i < MR; ++i) {
        __m512i wv;
        if constexpr (kPaired) {  // 8 weight bytes: the even lanes take the first 4, the odd lanes the last 4
          int64_t w8;
          std::memcpy(&w8, rows[i].q + b * kStride + 8 * k, 8);
          wv = _mm512_xor_si512(_mm512_set1_epi64(w8), flip);
          dot[i] = _mm512_dpbusd_epi32(dot[i], wv, xv);  // unsigned weights x signed activations
        } else {
          int32_t w4;
          std::memcpy(&w4, rows[i].q + b * kStride + 4 * k, 4);
          wv = _mm512_set1_epi32(w4);
          dot[i] = _mm512_dpbusd_epi32(dot[i], xv, wv);
        }
      }
    }
    const __m512 dx = _mm512_loadu_ps(reinterpret_cast<const float*>(xb + kSteps * 64));
    for (int i = 0; i < MR; ++i) {
      __m512i v;
      if constexpr (kPaired) {  // each lane's offset came with the slab
        v = _mm512_add_epi32(dot[i], _mm512_loadu_si512(xb + kSteps * 64 + 64));
      } else if (kMode == Mode::Prepared) {
        v = _mm512_add_epi32(dot[i], _mm512_set1_epi32(rows[i].corr[b]));
      } else {  // the spare lane holds the block's weight sum
        const __m512i sum = _mm512_permutexvar_epi32(sum_index, dot[i]);
        v = _mm512_sub_epi32(dot[i], _mm512_slli_epi32(sum, 7));
      }
      float dw;
      if (kMode == Mode::InPlaceQ8) {
        uint16_t h;
        std::memcpy(&h, rows[i].q + b * kStride - 2, 2);
        dw = _cvtsh_ss(h);
      } else {
        dw = rows[i].d[b];
      }
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), _mm512_mul_ps(_mm512_set1_ps(dw), dx), acc[i]);
    }
  }
  for (int i = 0; i < MR; ++i) _mm512_storeu_ps(out + i * kLanes, acc[i]);
}

template <int kStride, Mode kMode, bool kPaired>
void chunk_times_slab(const RowView* rows, int64_t n, int64_t nb, int64_t row_bytes, const uint8_t* slab, float* out) {
  int64_t i = 0;
  for (; i + kMR <= n; i += kMR)
    micro_tile<kMR, kStride, kMode, kPaired>(rows + i, nb, slab, kMR * row_bytes, out + i * kLanes);
  for (; i + 4 <= n; i += 4) micro_tile<4, kStride, kMode, kPaired>(rows + i, nb, slab, 4 * row_bytes, out + i * kLanes);
  for (; i < n; ++i) micro_tile<1, kStride, kMode, kPaired>(rows + i, nb, slab, row_bytes, out + i * kLanes);
}

template <bool kPaired>
void chunk_times_slab(DType type, Mode mode, const RowView* rows, int64_t n, int64_t nb, int64_t row_bytes,
                      const uint8_t* slab, float* out) {
  constexpr int kQ8 = int(sizeof(BlockQ8_0));
  switch (mode) {
    case Mode::InPlaceQ8: chunk_times_slab<kQ8, Mode::InPlaceQ8, kPaired>(rows, n, nb, row_bytes, slab, out); return;
    case Mode::Unpacked:
      chunk_times_slab<kQuantBlock, Mode::Unpacked, kPaired>(rows, n, nb, row_bytes, slab, out);
      return;
    case Mode::Prepared:
      if (type == DType::Q8_0) chunk_times_slab<kQ8, Mode::Prepared, kPaired>(rows, n, nb, row_bytes, slab, out);
      else chunk_times_slab<kQuantBlock, Mode::Prepared, kPaired>(rows, n, nb, row_bytes, slab, out);
      return;
  }
}

}  // namespace

void gemm_q_rows_avx512(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t nb = w.cols / kQuantBlock;
  const bool paired = T <= kPairedTokens;
  const int n_slabs = paired ? 1 : (T + kLanes - 1) / kLanes;
  thread_local std::vector<uint8_t> slabs;   // [n_slabs, nb, 576], or paired [nb, 320]
  thread_local std::vector<int8_t> unpacked;  // [chunk_rows, cols] (Q4_0, FP8, int4)
  thread_local std::vector<float> d;          // [chunk_rows, nb]
  thread_local std::vector<int32_t> corr;     // [chunk_rows, nb]
  thread_local std::vector<RowView> views;    // [chunk_rows]
  thread_local std::vector<float> out;        // [chunk_rows, 16]
  const size_t slab_bytes = size_t(n_slabs) * size_t(nb) * kSlabBlockBytes;
  if (slabs.size() < slab_bytes) slabs.resize(slab_bytes);
  // A paired slab brings its own offsets, like a sum lane: rows need no preparation either way.
  const bool sum_lane = paired || T < kLanes;
  const Mode mode = !sum_lane ? Mode::Prepared : w.dtype == DType::Q8_0 ? Mode::InPlaceQ8 : Mode::Unpacked;
  if (paired) pack_paired_slab(xq, T, nb, slabs.data());
  else pack_slabs(xq, T, nb, sum_lane, slabs.data());

  const int64_t chunk_rows = std::max<int64_t>(kMR, int64_t(kChunkBytes / size_t(w.cols)) / kMR * kMR);
  const size_t cr = size_t(chunk_rows);
  if (w.dtype != DType::Q8_0 && unpacked.size() < cr * size_t(w.cols)) unpacked.resize(cr * size_t(w.cols));
  if (d.size() < cr * size_t(nb)) d.resize(cr * size_t(nb)), corr.resize(cr * size_t(nb));
  if (views.size() < cr) views.resize(cr), out.resize(cr * kLanes);

  for (int64_t rc = r0; rc < r1; rc += chunk_rows) {
    const int64_t n = std::min(chunk_rows, r1 - rc);
    prepare_rows(w, mode, rc, n, unpacked.data(), d.data(), corr.data(), views.data());
    const int64_t rb = int64_t(row_bytes(w.dtype, w.cols));
    if (paired) {
      chunk_times_slab<true>(w.dtype, mode, views.data(), n, nb, rb, slabs.data(), out.data());
      for (int t = 0; t < T; ++t) {
        float* yt = y + size_t(t) * size_t(ldy) + size_t(rc);
        for (int64_t m = 0; m < n; ++m) yt[m] = out[size_t(m) * kLanes + size_t(2 * t)] + out[size_t(m) * kLanes + size_t(2 * t + 1)];
      }
      continue;
    }
    for (int s = 0; s < n_slabs; ++s) {
      const uint8_t* slab = slabs.data() + size_t(s) * size_t(nb) * kSlabBlockBytes;
      chunk_times_slab<false>(w.dtype, mode, views.data(), n, nb, rb, slab, out.data());
      const int tokens = std::min(kLanes, T - s * kLanes);
      for (int j = 0; j < tokens; ++j) {
        float* yt = y + size_t(s * kLanes + j) * size_t(ldy) + size_t(rc);
        for (int64_t m = 0; m < n; ++m) yt[m] = out[size_t(m) * kLanes + size_t(j)];
      }
    }
  }
}

// ---- Few tokens (decoding): Q4_0 matrix-vector tiles ----------------------------------------
// A Q4_0 row streams from memory at 18 bytes per block, and the AVX2 tile's ~14 instructions per
// block fall behind the memory. Here two blocks share a register (their nibbles unpacked side by
// side, dotted with vpdpbusd) and one word permute gathers the f16 scales of 8 blocks: about 7
// instructions per block.
namespace {

// One token's activations for a pair of blocks (2p, 2p + 1), laid out as the tile unpacks the
// weights: the int32 lanes 0-3 / 4-7 / 8-11 / 12-15 hold k 0-15 of block 2p / of 2p + 1 /
// k 16-31 of 2p / of 2p + 1.
struct PairX {
  int8_t q[64];
  float d[16];       // each lane's block scale
  int32_t corr[16];  // -sum(q) of each lane's block: 8 lanes take off 8 * sum for the nibble offset
};

void pack_pairs(const BlockQ8x* xq, int64_t nb, PairX* out) {
  for (int64_t p = 0; p < nb / 2; ++p) {
    const BlockQ8x* blk[2] = {&xq[2 * p], &xq[2 * p + 1]};
    PairX& o = out[p];
    for (int half = 0; half < 2; ++half)
      for (int which = 0; which < 2; ++which) std::memcpy(o.q + 32 * half + 16 * which, blk[which]->q + 16 * half, 16);
    for (int lane = 0; lane < 16; ++lane) {
      const BlockQ8x& b = *blk[(lane / 4) % 2];
      o.d[lane] = b.d;
      o.corr[lane] = -b.sum;
    }
  }
}

template <int R, int TT>
inline void q4_tile(const Matrix& w, const PairX* const* xs, float* y, int64_t ldy, int64_t r, int t) {
  const int64_t nb = w.cols / kQuantBlock;
  const BlockQ4_0* rows[R];
  const uint8_t* ahead[R];
  for (int i = 0; i < R; ++i) {
    rows[i] = reinterpret_cast<const BlockQ4_0*>(w.row_ptr(r + i));
    ahead[i] = w.row_ptr(std::min(w.rows - 1, r + i + kQuantPrefetchRows));
  }
  // Word k * 9 is the scale of block k in a run of 8 blocks (18 bytes = 9 words each).
  const __m512i scale_words = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                               63, 54, 45, 36, 27, 18, 9, 0);
  __m512i pair_lanes[4];  // scales of blocks (2p, 2p + 1) spread to their lanes
  for (int p = 0; p < 4; ++p) {
    const int a = 2 * p, b = 2 * p + 1;
    pair_lanes[p] = _mm512_set_epi32(b, b, b, b, a, a, a, a, b, b, b, b, a, a, a, a);
  }
  const __m256i nibble = _mm256_set1_epi8(15);
  __m512 acc[R][TT];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < TT; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t g = 0; g < nb; g += 8) {
    for (int i = 0; i < R; ++i) {
      const uint8_t* run = reinterpret_cast<const uint8_t*>(rows[i] + g);  // 8 blocks, 144 bytes
      const uint8_t* pf = ahead[i] + g * int64_t(sizeof(BlockQ4_0));
      for (int line = 0; line < 3; ++line) _mm_prefetch(reinterpret_cast<const char*>(pf + 64 * line), _MM_HINT_T0);
      const __m512i words = _mm512_permutex2var_epi16(_mm512_loadu_si512(run), scale_words, _mm512_loadu_si512(run + 64));
      const __m512 dw8 = _mm512_castps256_ps512(_mm256_cvtph_ps(_mm512_castsi512_si128(words)));
      for (int p = 0; p < 4; ++p) {
        const BlockQ4_0* b0 = rows[i] + g + 2 * p;
        const __m256i both = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b0[0].q))),
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(b0[1].q)), 1);
        const __m256i lo = _mm256_and_si256(both, nibble), hi = _mm256_and_si256(_mm256_srli_epi16(both, 4), nibble);
        const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        const __m512 dw = _mm512_permutexvar_ps(pair_lanes[p], dw8);
        for (int j = 0; j < TT; ++j) {
          const PairX& x = xs[j][g / 2 + p];
          const __m512i dot = _mm512_dpbusd_epi32(_mm512_loadu_si512(x.corr), q, _mm512_loadu_si512(x.q));
          acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, _mm512_loadu_ps(x.d)), acc[i][j]);
        }
      }
    }
  }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < TT; ++j) y[size_t(t + j) * size_t(ldy) + size_t(r + i)] = _mm512_reduce_add_ps(acc[i][j]);
}

// One token: R rows side by side (two streams one row apart, under one prefetch cursor; from
// memory as fast as one row at a time, see stream_prefetch.h), 4 blocks per register. One byte
// permute (VBMI) gathers the nibble bytes of 4 blocks from two registers of the row (bytes 0-127
// of a run for blocks 0-3, 64-143 for blocks 4-7): low nibbles are k 0-15 and high
// nibbles k 16-31 of each block, so the activations are laid out the same way (RunX) and int32
// lanes 4j..4j+3 hold block j's dot. The nibble offset (q - 8) comes off in float, once per
// block: dw * (-8 dx sum x), from 8 precomputed terms per run of 8 blocks. The loads, not the
// arithmetic, bound this loop: each run of 144 weight bytes is read in three loads (64 + 64 +
// 16 bytes), and the R rows share each load of the activations.
// Built for VBMI on its own (the rest of the file must run on VNNI CPUs without it); called only
// where the CPU has it.
template <int R>
__attribute__((target("avx512vbmi"))) inline void q4_stream_rows(const uint8_t* const* rows, int64_t nb, const RunX* x,
                                                                 const __m512i* nibble_windows, const __m512i& scale_words,
                                                                 const __m512i* quad_lanes, StreamPrefetch& prefetch, float* y) {
  const __m512i nibble = _mm512_set1_epi8(15);
  __m512 acc[R][2];
  __m256 offsets[R];
  for (int i = 0; i < R; ++i) {
    acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    offsets[i] = _mm256_setzero_ps();
  }
  for (int64_t g = 0; g < nb; g += 8) {
    const RunX& xr = x[g / 8];
    const __m512i x_lo[2] = {_mm512_loadu_si512(xr.lo), _mm512_loadu_si512(xr.lo + 64)};
    const __m512i x_hi[2] = {_mm512_loadu_si512(xr.hi), _mm512_loadu_si512(xr.hi + 64)};
    const __m256 x_d = _mm256_loadu_ps(xr.d), x_offset = _mm256_loadu_ps(xr.offset);
    prefetch.advance(rows[R - 1] + (g + 8) * int64_t(sizeof(BlockQ4_0)));
    for (int i = 0; i < R; ++i) {
      const uint8_t* run = rows[i] + g * int64_t(sizeof(BlockQ4_0));  // 8 blocks, 144 bytes
      const __m512i a = _mm512_loadu_si512(run), b = _mm512_loadu_si512(run + 64);
      const __m512i c = _mm512_zextsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(run + 128)));
      const __m256 dw8 = _mm256_cvtph_ps(_mm512_castsi512_si128(_mm512_permutex2var_epi16(a, scale_words, b)));
      offsets[i] = _mm256_fmadd_ps(dw8, x_offset, offsets[i]);
      const __m512 scale8 = _mm512_castps256_ps512(_mm256_mul_ps(dw8, x_d));
      // Blocks 0-3 from bytes 0-127 (a, b), blocks 4-7 from bytes 64-143 (b, c).
      const __m512i packed[2] = {_mm512_permutex2var_epi8(a, nibble_windows[0], b), _mm512_permutex2var_epi8(b, nibble_windows[1], c)};
      for (int h = 0; h < 2; ++h) {
        const __m512i lo = _mm512_and_si512(packed[h], nibble);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(packed[h], 4), nibble);
        __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, x_lo[h]);
        dot = _mm512_dpbusd_epi32(dot, hi, x_hi[h]);
        acc[i][h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(quad_lanes[h], scale8), acc[i][h]);
      }
    }
  }
  // Each block's 4 lanes summed its dot; its offset term is counted once.
  for (int i = 0; i < R; ++i)
    y[i] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]), _mm512_zextps256_ps512(offsets[i])));
}

__attribute__((target("avx512vbmi"))) void q4_stream(const Matrix& w, const RunX* x, float* y, int64_t r0, int64_t r1) {
  const int64_t nb = w.cols / kQuantBlock;
  // A run of 8 blocks is 144 bytes. Blocks 0-3 sit in bytes 0-71 (window at 0: block j's nibbles
  // are 16 bytes from 2 + 18 j), blocks 4-7 in bytes 72-143 (window at 64: from 10 + 18 j).
  alignas(64) uint8_t first[64], second[64];
  for (int j = 0; j < 4; ++j)
    for (int m = 0; m < 16; ++m) {
      first[16 * j + m] = uint8_t(2 + 18 * j + m);
      second[16 * j + m] = uint8_t(72 - 64 + 2 + 18 * j + m);
    }
  const __m512i nibble_windows[2] = {_mm512_load_si512(first), _mm512_load_si512(second)};
  // Word k * 9 is the scale of block k in the run (18 bytes = 9 words each).
  const __m512i scale_words = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                               63, 54, 45, 36, 27, 18, 9, 0);
  const __m512i quad_lanes[2] = {_mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0),
                                 _mm512_set_epi32(7, 7, 7, 7, 6, 6, 6, 6, 5, 5, 5, 5, 4, 4, 4, 4)};
  StreamPrefetch prefetch(w.row_ptr(r0), w.row_ptr(w.rows));
  int64_t r = r0;
  for (; r + 2 <= r1; r += 2) {
    const uint8_t* rows[2] = {w.row_ptr(r), w.row_ptr(r + 1)};
    q4_stream_rows<2>(rows, nb, x, nibble_windows, scale_words, quad_lanes, prefetch, y + r);
  }
  if (r < r1) {
    const uint8_t* rows[1] = {w.row_ptr(r)};
    q4_stream_rows<1>(rows, nb, x, nibble_windows, scale_words, quad_lanes, prefetch, y + r);
  }
}

}  // namespace

bool matvec_q4_avx512_fits(const Matrix& w, int T) {
  return w.dtype == DType::Q4_0 && T < kVnniGemmMinTokens && (w.cols / kQuantBlock) % 8 == 0;
}

void matvec_q4_avx512(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t nb = w.cols / kQuantBlock;
  if (T == 1 && cpu_has_avx512_vbmi() && nb / 8 <= kMaxRuns) {
    RunX runs[kMaxRuns];  // [nb / 8]
    pack_runs(xq, nb, runs);
    q4_stream(w, runs, y, r0, r1);
    return;
  }
  thread_local std::vector<PairX> pairs;  // [T, nb / 2]
  if (pairs.size() < size_t(T) * size_t(nb / 2)) pairs.resize(size_t(T) * size_t(nb / 2));
  const PairX* xs[kVnniGemmMinTokens];
  for (int t = 0; t < T; ++t) {
    PairX* px = pairs.data() + size_t(t) * size_t(nb / 2);
    pack_pairs(xq + size_t(t) * size_t(nb), nb, px);
    xs[t] = px;
  }
  auto rows = [&](int64_t r, auto R) {
    int t = 0;
    for (; t + 2 <= T; t += 2) q4_tile<decltype(R)::value, 2>(w, xs + t, y, ldy, r, t);
    if (t < T) q4_tile<decltype(R)::value, 1>(w, xs + t, y, ldy, r, t);
  };
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) rows(r, std::integral_constant<int, 4>{});
  for (; r < r1; ++r) rows(r, std::integral_constant<int, 1>{});
}

// Bit-identical to quantize_activations: the same amax, scale, reciprocal, products and
// round-to-nearest-even.
void quantize_activations_avx512(const float* x, int64_t n, BlockQ8x* out) {
  for (int64_t b = 0; b < n / kQuantBlock; ++b, x += kQuantBlock) {
    const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float d = amax / 127.0f;
    const float inv = d > 0 ? 1.0f / d : 0.0f;
    const __m512 iv = _mm512_set1_ps(inv);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, iv)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, iv));
    out[b].d = d;
    out[b].sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out[b].q), _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out[b].q + 16), _mm512_cvtsepi32_epi8(q1));
  }
}

}  // namespace qnext
