// Scalar dequantizers of llama.cpp's block formats (the definition every SIMD kernel is tested
// against) and their scalar row products. Each block function performs ggml-quants.c's float32
// operations in its order: integers converted to float where ggml's C converts them, the product
// taken before the add or subtract (never fused: -ffp-contract=off).
#include "kernels/ggml_blocks.h"

namespace qnext {

void dequant_block_scalar(const BlockQ4_1& b, float* out) {
  const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
  for (int j = 0; j < 16; ++j) {
    out[j] = float(b.qs[j] & 15) * d + m;
    out[j + 16] = float(b.qs[j] >> 4) * d + m;
  }
}

void dequant_block_scalar(const BlockQ5_0& b, float* out) {
  const float d = f16_to_f32(b.d);
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  for (int j = 0; j < 16; ++j) {
    const int hi0 = int((qh >> j) & 1) << 4, hi1 = int((qh >> (j + 16)) & 1) << 4;
    out[j] = float(((b.qs[j] & 15) | hi0) - 16) * d;
    out[j + 16] = float(((b.qs[j] >> 4) | hi1) - 16) * d;
  }
}

void dequant_block_scalar(const BlockQ5_1& b, float* out) {
  const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  for (int j = 0; j < 16; ++j) {
    const int hi0 = int((qh >> j) & 1) << 4, hi1 = int((qh >> (j + 16)) & 1) << 4;
    out[j] = float((b.qs[j] & 15) | hi0) * d + m;
    out[j + 16] = float((b.qs[j] >> 4) | hi1) * d + m;
  }
}

void dequant_block_scalar(const BlockIq4Nl& b, float* out) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < 16; ++j) {
    out[j] = d * float(kIq4nlValues[b.qs[j] & 15]);
    out[j + 16] = d * float(kIq4nlValues[b.qs[j] >> 4]);
  }
}

// Weight 128 h + 32 j + 16 i + l (h half, j 2-bit plane, i 16-group, l < 16) sits in bits 2 j of
// qs[32 h + 16 i + l]; its scale is scales[8 h + 2 j + i].
void dequant_block_scalar(const BlockQ2K& b, float* out) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 2; ++i) {
        const uint8_t sc = b.scales[8 * h + 2 * j + i];
        const float dl = d * float(sc & 15), ml = dmin * float(sc >> 4);
        const uint8_t* q = b.qs + 32 * h + 16 * i;
        float* o = out + 128 * h + 32 * j + 16 * i;
        for (int l = 0; l < 16; ++l) o[l] = dl * float((q[l] >> (2 * j)) & 3) - ml;
      }
}

// The 6-bit scale of Q3_K's 16-group g (0..15), offset 32 not yet taken off.
static int q3k_scale(const uint8_t* s, int g) {
  const int lo = g < 8 ? s[g] & 15 : s[g - 8] >> 4;
  return lo | (((s[8 + g % 4] >> (2 * (g / 4))) & 3) << 4);
}

// As Q2_K, plus the high bit: bit (4 h + j) of hmask[16 i + l].
void dequant_block_scalar(const BlockQ3K& b, float* out) {
  const float d = f16_to_f32(b.d);
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 2; ++i) {
        const float dl = d * float(q3k_scale(b.scales, 8 * h + 2 * j + i) - 32);
        const uint8_t* q = b.qs + 32 * h + 16 * i;
        const uint8_t* hm = b.hmask + 16 * i;
        const int bit = 4 * h + j;
        float* o = out + 128 * h + 32 * j + 16 * i;
        for (int l = 0; l < 16; ++l) o[l] = dl * float(int((q[l] >> (2 * j)) & 3) - (((hm[l] >> bit) & 1) ? 0 : 4));
      }
}

void dequant_block_scalar(const BlockQ4K& b, float* out) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int c = 0; c < 4; ++c) {  // 64 weights: low nibbles of qs[32 c ..] then high nibbles
    int sc, m;
    k4_scale_min(b.scales, 2 * c, &sc, &m);
    const float d1 = d * float(sc), m1 = dmin * float(m);
    k4_scale_min(b.scales, 2 * c + 1, &sc, &m);
    const float d2 = d * float(sc), m2 = dmin * float(m);
    const uint8_t* q = b.qs + 32 * c;
    for (int l = 0; l < 32; ++l) out[64 * c + l] = d1 * float(q[l] & 15) - m1;
    for (int l = 0; l < 32; ++l) out[64 * c + 32 + l] = d2 * float(q[l] >> 4) - m2;
  }
}

void dequant_block_scalar(const BlockQ5K& b, float* out) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int c = 0; c < 4; ++c) {
    int sc, m;
    k4_scale_min(b.scales, 2 * c, &sc, &m);
    const float d1 = d * float(sc), m1 = dmin * float(m);
    k4_scale_min(b.scales, 2 * c + 1, &sc, &m);
    const float d2 = d * float(sc), m2 = dmin * float(m);
    const uint8_t* q = b.qs + 32 * c;
    for (int l = 0; l < 32; ++l) out[64 * c + l] = d1 * float((q[l] & 15) + (((b.qh[l] >> (2 * c)) & 1) << 4)) - m1;
    for (int l = 0; l < 32; ++l) out[64 * c + 32 + l] = d2 * float((q[l] >> 4) + (((b.qh[l] >> (2 * c + 1)) & 1) << 4)) - m2;
  }
}

// Weight 128 h + 32 p + l (p the plane 0..3, l < 32): low 4 bits in ql[64 h + 32 (p & 1) + l]
// (low nibble for p < 2, high for p >= 2), high 2 bits at bits 2 p of qh[32 h + l]; scale
// scales[8 h + 2 p + l / 16].
void dequant_block_scalar(const BlockQ6K& b, float* out) {
  const float d = f16_to_f32(b.d);
  for (int h = 0; h < 2; ++h)
    for (int p = 0; p < 4; ++p) {
      const uint8_t* ql = b.ql + 64 * h + 32 * (p & 1);
      const uint8_t* qh = b.qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        const int q = (((ql[l] >> (4 * (p >> 1))) & 15) | (((qh[l] >> (2 * p)) & 3) << 4)) - 32;
        out[128 * h + 32 * p + l] = d * float(b.scales[8 * h + 2 * p + l / 16]) * float(q);
      }
    }
}

void dequant_block_scalar(const BlockIq4Xs& b, float* out) {
  const float d = f16_to_f32(b.d);
  for (int ib = 0; ib < 8; ++ib) {
    const int ls = ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 15) | (((b.scales_h >> (2 * ib)) & 3) << 4);
    const float dl = d * float(ls - 32);
    const uint8_t* qs = b.qs + 16 * ib;
    for (int j = 0; j < 16; ++j) {
      out[32 * ib + j] = dl * float(kIq4nlValues[qs[j] & 15]);
      out[32 * ib + 16 + j] = dl * float(kIq4nlValues[qs[j] >> 4]);
    }
  }
}

#define QNEXT_GGML_SCALAR(name, Block)                                                                        \
  void dequant_##name##_scalar(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out) {              \
    dequant_blocks<Block, dequant_block_scalar>(w, r, k0, n, out);                                           \
  }                                                                                                          \
  void rows_##name##_scalar(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) { \
    rows_f32_dequant_scalar(dequant_##name##_scalar, w, x, T, y, ldy, r0, r1);                               \
  }
QNEXT_GGML_SCALAR(q4_1, BlockQ4_1)
QNEXT_GGML_SCALAR(q5_0, BlockQ5_0)
QNEXT_GGML_SCALAR(q5_1, BlockQ5_1)
QNEXT_GGML_SCALAR(iq4_nl, BlockIq4Nl)
QNEXT_GGML_SCALAR(q2_k, BlockQ2K)
QNEXT_GGML_SCALAR(q3_k, BlockQ3K)
QNEXT_GGML_SCALAR(q4_k, BlockQ4K)
QNEXT_GGML_SCALAR(q5_k, BlockQ5K)
QNEXT_GGML_SCALAR(q6_k, BlockQ6K)
QNEXT_GGML_SCALAR(iq4_xs, BlockIq4Xs)
#undef QNEXT_GGML_SCALAR

}  // namespace qnext
