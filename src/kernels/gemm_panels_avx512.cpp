// The int8 GEMM with the weight rows in the lanes (gemm_panels.h). Built with -mavx512vnni; called
// only where the CPU has it.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/gemm_panels.h"
#include "kernels/transpose_avx512.h"

namespace qnext {
namespace {

constexpr size_t kChunkBytes = 192 * 1024;  // levels per chunk of panels (in L2 while the token tiles go by)
constexpr int kTokenTile = 12;              // tokens whose dots and sums stay in registers
// The unpacked rows before their transpose sit cols + kRowPad bytes apart: 2048 apart, the 16
// rows' loads of one step would fall in 2 of L1's 64 sets.
constexpr int64_t kRowPad = 64;

// A tile's activations per 32 k, its tokens side by side, so every operand of the tile's loop is
// one pointer plus a constant.
struct alignas(64) TileBlock {
  int8_t q[kTokenTile][32];     // each token's 32 activations
  float dx[kTokenTile];         // their scale
  float dx_sum[kTokenTile];     // mins: dx * sum (their term)
  int32_t corr[2][kTokenTile];  // -offset * the sum over each group (one of 32, or two of 16)
};

// The tile of tokens [t0, t0 + tt) of xq [T, nb] -> tile [nb].
void pack_tile(const PanelFormat& f, const BlockQ8x* xq, int64_t nb, int t0, int tt, TileBlock* tile) {
  for (int64_t b = 0; b < nb; ++b) {
    TileBlock& o = tile[b];
    for (int t = 0; t < tt; ++t) {
      const BlockQ8x& x = xq[size_t(t0 + t) * size_t(nb) + size_t(b)];
      std::memcpy(o.q[t], x.q, 32);
      o.dx[t] = x.d;
      o.dx_sum[t] = x.d * float(x.sum);
      if (f.group == 32) {
        o.corr[0][t] = -f.offset * x.sum;
      } else {
        int32_t first = 0;  // the second 16's sum is the block's less the first's
        for (int k = 0; k < 16; ++k) first += x.q[k];
        o.corr[0][t] = -f.offset * first;
        o.corr[1][t] = -f.offset * (x.sum - first);
      }
    }
  }
}

// src [16][n] 32-bit elements (row stride `stride` elements) -> dst [n][16].
inline void to_lanes(const void* src, int64_t stride, int64_t n, void* dst) {
  const auto* s = static_cast<const int32_t*>(src);
  auto* d = static_cast<__m512i*>(dst);
  for (int64_t c = 0; c < n; c += 16) {
    const int m = int(std::min<int64_t>(16, n - c));
    const __mmask16 valid = __mmask16((1u << m) - 1);
    __m512i r[16], out[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) r[i] = _mm512_maskz_loadu_epi32(valid, s + i * stride + c);
    transpose16(r, out);
    if (m == 16) {
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j) _mm512_storeu_si512(d + c + j, out[j]);
    } else {
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j)
        if (j < m) _mm512_storeu_si512(d + c + j, out[j]);
    }
  }
}

// Rows [r, r + n), n <= 16, as a panel: levels [cols / 4][16][4], scales [groups][16],
// mins [cols / 32][16]; rows past n zero. tmp_*: unpack_rows' row-major buffers for 16 rows.
void prepare_panel(const Matrix& w, const PanelFormat& f, int64_t r, int64_t n, uint8_t* tmp_levels, float* tmp_scales,
                   float* tmp_mins, uint8_t* levels, float* scales, float* mins) {
  const int64_t cols = w.cols, groups = cols / f.group, nb = cols / 32, stride = cols + kRowPad;
  f.unpack_rows(w, r, n, tmp_levels, stride, tmp_scales, tmp_mins);
  if (n < kPanelRows) {
    std::memset(tmp_levels + size_t(n) * size_t(stride), 0, size_t(kPanelRows - n) * size_t(stride));
    std::memset(tmp_scales + size_t(n) * size_t(groups), 0, size_t(kPanelRows - n) * size_t(groups) * sizeof(float));
    if (f.mins) std::memset(tmp_mins + size_t(n) * size_t(nb), 0, size_t(kPanelRows - n) * size_t(nb) * sizeof(float));
  }
  to_lanes(tmp_levels, stride / 4, cols / 4, levels);
  to_lanes(tmp_scales, groups, groups, scales);
  if (f.mins) to_lanes(tmp_mins, nb, nb, mins);
}

// y[t0 + t][r .. r + rows) for the tile's TT tokens, from one panel. kGroup: 16 or 32 levels per
// scale; kCorr: the levels carry an offset; kMins: a min per 32.
// Per block it also prefetches `ahead_lines` lines from address `ahead` on (the next chunk's rows;
// an integer: the last lines may lie past the matrix, where a prefetch does nothing).
template <int kGroup, bool kCorr, bool kMins, int TT>
inline void panel_tile(const uint8_t* levels, const float* scales, const float* mins, int64_t cols, const TileBlock* tile,
                       float* y, int64_t ldy, int64_t r, int t0, int rows, uintptr_t ahead, int ahead_lines) {
  const int64_t nb = cols / 32;
  constexpr int kHalves = 32 / kGroup, kSteps = 8 / kHalves;
  __m512 acc[TT];
#pragma GCC unroll 12
  for (int t = 0; t < TT; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const TileBlock& x = tile[b];
    const uint8_t* lb = levels + size_t(b) * 8 * 64;
    for (int l = 0; l < ahead_lines; ++l)
      _mm_prefetch(reinterpret_cast<const char*>(ahead + uintptr_t(64 * (b * ahead_lines + l))), _MM_HINT_T1);
#pragma GCC unroll 2
    for (int h = 0; h < kHalves; ++h) {
      // Unrolled throughout: as loops, g++ rotated the dots through spare registers every step.
      __m512i dot[TT];
#pragma GCC unroll 12
      for (int t = 0; t < TT; ++t) dot[t] = kCorr ? _mm512_set1_epi32(x.corr[h][t]) : _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int s = 0; s < kSteps; ++s) {
        const __m512i wv = _mm512_loadu_si512(lb + 64 * (kSteps * h + s));
#pragma GCC unroll 12
        for (int t = 0; t < TT; ++t) {
          int32_t a;
          std::memcpy(&a, x.q[t] + 4 * (kSteps * h + s), 4);
          dot[t] = _mm512_dpbusd_epi32(dot[t], wv, _mm512_set1_epi32(a));
        }
      }
      const __m512 sc = _mm512_loadu_ps(scales + size_t(kHalves * b + h) * kPanelRows);
#pragma GCC unroll 12
      for (int t = 0; t < TT; ++t)
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[t]), _mm512_mul_ps(sc, _mm512_set1_ps(x.dx[t])), acc[t]);
    }
    if constexpr (kMins) {
      const __m512 m = _mm512_loadu_ps(mins + size_t(b) * kPanelRows);
#pragma GCC unroll 12
      for (int t = 0; t < TT; ++t) acc[t] = _mm512_fmadd_ps(m, _mm512_set1_ps(x.dx_sum[t]), acc[t]);
    }
  }
  const __mmask16 valid = __mmask16((1u << rows) - 1);
#pragma GCC unroll 12
  for (int t = 0; t < TT; ++t) _mm512_mask_storeu_ps(y + size_t(t0 + t) * size_t(ldy) + size_t(r), valid, acc[t]);
}

// The tile's tokens against `panels` panels (rows [r, r + n)), prefetching [ahead, ahead +
// ahead_bytes) into L2 as they go (in whole lines per block, so up to panels x nb lines more).
template <int kGroup, bool kCorr, bool kMins, int TT>
void tile_over_panels(const uint8_t* levels, const float* scales, const float* mins, int64_t cols, int64_t panels,
                      const TileBlock* tile, float* y, int64_t ldy, int64_t r, int64_t n, int t0, uintptr_t ahead,
                      int64_t ahead_bytes) {
  const int64_t groups = cols / kGroup, nb = cols / 32;
  const int64_t panel_lines = (ahead_bytes / 64 + panels - 1) / panels;  // lines to prefetch per panel
  const int block_lines = int((panel_lines + nb - 1) / nb);
  for (int64_t p = 0; p < panels; ++p)
    panel_tile<kGroup, kCorr, kMins, TT>(levels + size_t(p) * kPanelRows * size_t(cols),
                                         scales + size_t(p) * kPanelRows * size_t(groups),
                                         mins + size_t(p) * kPanelRows * size_t(nb), cols, tile, y, ldy,
                                         r + kPanelRows * p, t0, int(std::min<int64_t>(kPanelRows, n - kPanelRows * p)),
                                         ahead + uintptr_t(64 * p * nb * block_lines), block_lines);
}

template <int kGroup, bool kCorr, bool kMins>
void tile_over_panels(int tt, const uint8_t* levels, const float* scales, const float* mins, int64_t cols, int64_t panels,
                      const TileBlock* tile, float* y, int64_t ldy, int64_t r, int64_t n, int t0, uintptr_t ahead,
                      int64_t ahead_bytes) {
  const auto run = [&](auto TT) {
    tile_over_panels<kGroup, kCorr, kMins, decltype(TT)::value>(levels, scales, mins, cols, panels, tile, y, ldy, r, n, t0,
                                                                ahead, ahead_bytes);
  };
  switch (tt) {
    case 1: run(std::integral_constant<int, 1>{}); break;
    case 2: run(std::integral_constant<int, 2>{}); break;
    case 3: run(std::integral_constant<int, 3>{}); break;
    case 4: run(std::integral_constant<int, 4>{}); break;
    case 5: run(std::integral_constant<int, 5>{}); break;
    case 6: run(std::integral_constant<int, 6>{}); break;
    case 7: run(std::integral_constant<int, 7>{}); break;
    case 8: run(std::integral_constant<int, 8>{}); break;
    case 9: run(std::integral_constant<int, 9>{}); break;
    case 10: run(std::integral_constant<int, 10>{}); break;
    case 11: run(std::integral_constant<int, 11>{}); break;
    default: run(std::integral_constant<int, kTokenTile>{}); break;
  }
}

}  // namespace

void gemm_panels_avx512(const Matrix& w, const PanelFormat& f, const BlockQ8x* xq, int T, float* y, int64_t ldy,
                        int64_t r0, int64_t r1) {
  const int64_t cols = w.cols, nb = cols / kQuantBlock, groups = cols / f.group;
  const int tiles = (T + kTokenTile - 1) / kTokenTile;
  const size_t row_stride = row_bytes(w.dtype, cols);  // the next chunk's rows: one run of memory
  const int64_t chunk_panels = std::max<int64_t>(1, int64_t(kChunkBytes / size_t(cols)) / kPanelRows);
  const size_t cp = size_t(chunk_panels) * kPanelRows;
  thread_local std::vector<TileBlock> acts;             // [tiles][nb]
  thread_local std::vector<uint8_t> levels;             // [chunk panels][cols / 4][16][4]
  thread_local std::vector<float> scales, mins;         // [chunk panels][groups or nb][16]
  thread_local std::vector<uint8_t> tmp_levels;         // [16][cols + kRowPad]
  thread_local std::vector<float> tmp_scales, tmp_mins;  // [16][groups], [16][nb] (+ a vector's store)
  if (acts.size() < size_t(tiles) * size_t(nb)) acts.resize(size_t(tiles) * size_t(nb));
  if (levels.size() < cp * size_t(cols)) levels.resize(cp * size_t(cols));
  if (scales.size() < cp * size_t(groups)) scales.resize(cp * size_t(groups));
  if (mins.size() < cp * size_t(nb)) mins.resize(cp * size_t(nb));
  if (tmp_levels.size() < kPanelRows * size_t(cols + kRowPad)) tmp_levels.resize(kPanelRows * size_t(cols + kRowPad));
  if (tmp_scales.size() < kPanelRows * size_t(groups) + 16) tmp_scales.resize(kPanelRows * size_t(groups) + 16);
  if (tmp_mins.size() < kPanelRows * size_t(nb) + 16) tmp_mins.resize(kPanelRows * size_t(nb) + 16);
  // Token tiles as even as they go (13 tokens: 6 + 7).
  const auto tile_size = [&](int i, int t0) { return (T - t0) / (tiles - i); };
  for (int i = 0, t0 = 0; i < tiles; t0 += tile_size(i, t0), ++i)
    pack_tile(f, xq, nb, t0, tile_size(i, t0), acts.data() + size_t(i) * size_t(nb));
  for (int64_t rc = r0; rc < r1; rc += int64_t(cp)) {
    const int64_t n = std::min(int64_t(cp), r1 - rc), panels = (n + kPanelRows - 1) / kPanelRows;
    for (int64_t p = 0; p < panels; ++p)
      prepare_panel(w, f, rc + kPanelRows * p, std::min<int64_t>(kPanelRows, n - kPanelRows * p), tmp_levels.data(),
                    tmp_scales.data(), tmp_mins.data(), levels.data() + size_t(p) * kPanelRows * size_t(cols),
                    scales.data() + size_t(p) * kPanelRows * size_t(groups), mins.data() + size_t(p) * kPanelRows * size_t(nb));
    // The first tile brings the next chunk's rows into L2 as it goes, so that unpacking them, a
    // stream from memory with little arithmetic, does not wait on the memory alone.
    const int64_t next = std::min(int64_t(cp), r1 - rc - n);
    const uintptr_t ahead = next > 0 ? reinterpret_cast<uintptr_t>(w.row_ptr(rc + n)) : 0;
    for (int i = 0, t0 = 0; i < tiles; t0 += tile_size(i, t0), ++i) {
      const TileBlock* tile = acts.data() + size_t(i) * size_t(nb);
      const int tt = tile_size(i, t0);
      const int64_t ahead_bytes = i == 0 && next > 0 ? next * int64_t(row_stride) : 0;
      if (f.mins)
        tile_over_panels<32, false, true>(tt, levels.data(), scales.data(), mins.data(), cols, panels, tile, y, ldy, rc, n, t0,
                                          ahead, ahead_bytes);
      else if (f.group == 16)
        tile_over_panels<16, true, false>(tt, levels.data(), scales.data(), mins.data(), cols, panels, tile, y, ldy, rc, n, t0,
                                          ahead, ahead_bytes);
      else
        tile_over_panels<32, true, false>(tt, levels.data(), scales.data(), mins.data(), cols, panels, tile, y, ldy, rc, n, t0,
                                          ahead, ahead_bytes);
    }
  }
}

}  // namespace qnext
