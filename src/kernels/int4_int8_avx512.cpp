// int4 rows into int8 blocks for Q8_0's VNNI GEMM (prefill; scalar twin int4_row_to_int8_scalar
// in int4.cpp). 64 weights a step: their 32 code bytes widened to 16-bit lanes, each lane's high
// nibble shifted into its upper byte (one shift, one vpternlogd: (v | v << 4) & 0x0f0f), so the
// bytes come out in weight order, then the zero point (z + 8) subtracted: 5 instructions per 64
// weights. The scales are the groups', one per block of 32.
#include <immintrin.h>

#include <algorithm>

#include "kernels/int4.h"

namespace qnext {

namespace {

// The nibbles of 32 code bytes as 64 bytes u_k, in weight order.
inline __m512i unpack64(const uint8_t* codes) {
  const __m512i v = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes)));
  return _mm512_ternarylogic_epi32(v, _mm512_slli_epi16(v, 4), _mm512_set1_epi16(0x0f0f), 0xA8);  // (a | b) & c
}

// The same for 16 code bytes (32 weights).
inline __m256i unpack32(const uint8_t* codes) {
  const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes)));
  return _mm256_ternarylogic_epi32(v, _mm256_slli_epi16(v, 4), _mm256_set1_epi16(0x0f0f), 0xA8);
}

}  // namespace

void int4_row_to_int8_avx512(const Matrix& w, int64_t r, int8_t* q, float* d) {
  const Int4Rows m(w);
  const Int4RowGroups groups(m, r);
  const uint8_t* codes = m.row(r);  // [cols / 2]
  for (int64_t k0 = 0, g = 0; k0 < w.cols; k0 += w.group, ++g) {
    const int64_t end = std::min(w.cols, k0 + w.group);
    const int zero = groups.zero_u(g);
    const float scale = groups.scale(g);
    int64_t k = k0;
    for (const __m512i z = _mm512_set1_epi8(char(zero)); k + 64 <= end; k += 64)
      _mm512_storeu_si512(q + k, _mm512_sub_epi8(unpack64(codes + k / 2), z));
    if (k < end)  // the group's last 32 (groups are whole blocks of 32)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k), _mm256_sub_epi8(unpack32(codes + k / 2), _mm256_set1_epi8(char(zero))));
    for (int64_t b = k0 / kQuantBlock; b < end / kQuantBlock; ++b) d[b] = scale;
  }
}

}  // namespace qnext
