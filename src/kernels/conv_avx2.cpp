// The causal conv's rows on AVX2 (conv1d_silu_avx2 in conv.cpp runs them with silu_mul_avx2;
// scalar twin: conv_taps_row_scalar). Qwen3-Next's 4 taps, 8 channels a step: the taps lie [C, K]
// (a channel's 4 side by side), so the 32 floats of 8 channels are transposed in registers to one
// vector per tap. The scalar twin's loop over taps reads them K floats apart (no lanes): with the
// AVX2 SiLU, 28 us a decoded token's DeltaNet layer on one thread while the other waits, against 14
// with these rows (BM_Conv, one Zen 5 core). Other K and the channel tail take the twin's rows. The
// sums are the twin's, rounding for rounding (no FMA: both files are built with -ffp-contract=off),
// so the conv's output does not move with this kernel.
#include <immintrin.h>

#include "kernels/conv.h"

namespace qnext {
namespace {

// Rows of 4 taps: channels [0, C8) in lanes (C8 a multiple of 8).
void conv_taps4_row(const float* const* in, int C8, const float* w, float* o) {
  // The transpose below leaves channels in lane order 0 2 4 6 1 3 5 7; this puts them back.
  const __m256i channel_order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int c = 0; c < C8; c += 8) {
    const float* wc = w + size_t(c) * 4;  // [8 channels, 4 taps]
    const __m256 r01 = _mm256_loadu_ps(wc), r23 = _mm256_loadu_ps(wc + 8);  // channels 0|1, 2|3
    const __m256 r45 = _mm256_loadu_ps(wc + 16), r67 = _mm256_loadu_ps(wc + 24);
    const __m256 a = _mm256_unpacklo_ps(r01, r23), b = _mm256_unpackhi_ps(r01, r23);  // taps 0,1 | 2,3 of 0 2 / 1 3
    const __m256 d = _mm256_unpacklo_ps(r45, r67), e = _mm256_unpackhi_ps(r45, r67);  // of 4 6 / 5 7
    __m256 tap[4] = {_mm256_shuffle_ps(a, d, _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(a, d, _MM_SHUFFLE(3, 2, 3, 2)),
                     _mm256_shuffle_ps(b, e, _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(b, e, _MM_SHUFFLE(3, 2, 3, 2))};
    for (auto& t : tap) t = _mm256_permutevar8x32_ps(t, channel_order);
    __m256 acc = _mm256_setzero_ps();  // the twin's order and roundings: 0 + p0 + p1 + p2 + p3
    for (int j = 0; j < 4; ++j) acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(in[j] + c), tap[j]));
    _mm256_storeu_ps(o + c, acc);
  }
}

}  // namespace

void conv_taps_row_avx2(const float* const* in, int K, int C, const float* w, float* o) {
  const int lanes = K == 4 ? C / 8 * 8 : 0;
  conv_taps4_row(in, lanes, w, o);
  conv_taps_row_scalar(in, K, C, w, o, lanes);
}

}  // namespace qnext
