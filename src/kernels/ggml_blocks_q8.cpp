// Scalar twins of the int8-activation K-quant products (kernels/ggml_blocks_q8.h): the definition
// the SIMD kernels are tested against, written straight from the block layouts of ggml_blocks.h
// (integer dots per group of weights, then one float term per group). Also the activation
// packing the SIMD kernels share and the AVX-512 slot's choice between VNNI and AVX2 kernels.
#include "kernels/ggml_blocks_q8.h"

#include <cstring>

#include "kernels/ggml_blocks.h"

namespace qnext {

namespace {

// Q4_K / Q5_K level of weight l (0..31) of sub-block j (0..7).
inline int k_level(const BlockQ4K& b, int j, int l) {
  const uint8_t byte = b.qs[32 * (j / 2) + l];
  return j % 2 ? byte >> 4 : byte & 15;
}
inline int k_level(const BlockQ5K& b, int j, int l) {
  const uint8_t byte = b.qs[32 * (j / 2) + l];
  return (j % 2 ? byte >> 4 : byte & 15) | (((b.qh[l] >> j) & 1) << 4);
}

template <class Block>
void rows_k4_scalar(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t nsb = w.cols / Block::kElems, nb = w.cols / kQuantBlock;
  for (int64_t r = r0; r < r1; ++r) {
    const Block* blocks = reinterpret_cast<const Block*>(w.row_ptr(r));
    for (int t = 0; t < T; ++t) {
      const BlockQ8x* xt = xq + size_t(t) * size_t(nb);
      float acc = 0;
      for (int64_t ib = 0; ib < nsb; ++ib) {
        const Block& b = blocks[ib];
        const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
        for (int j = 0; j < 8; ++j) {
          const BlockQ8x& x = xt[8 * ib + j];
          int sc, m;
          k4_scale_min(b.scales, j, &sc, &m);
          int32_t dot = 0;
          for (int l = 0; l < 32; ++l) dot += k_level(b, j, l) * x.q[l];
          acc += x.d * (d * float(sc) * float(dot) - dmin * float(m) * float(x.sum));
        }
      }
      y[size_t(t) * size_t(ldy) + size_t(r)] = acc;
    }
  }
}

}  // namespace

void rows_int8_q4_k_scalar(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  rows_k4_scalar<BlockQ4K>(w, xq, T, y, ldy, r0, r1);
}
void rows_int8_q5_k_scalar(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  rows_k4_scalar<BlockQ5K>(w, xq, T, y, ldy, r0, r1);
}

// Sub-block j = 4 h + p (half h, plane p) holds groups 8 h + 2 p + i (i = 0, 1), scales[g] each;
// level of weight l: low 4 bits from ql[64 h + 32 (p & 1) + l] (nibble p / 2), high 2 from
// bits 2 p of qh[32 h + l]. The sub-block's integers, sum_g sc_g (dot_g - 32 sum_g), fit int32.
void rows_int8_q6_k_scalar(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t nsb = w.cols / BlockQ6K::kElems, nb = w.cols / kQuantBlock;
  for (int64_t r = r0; r < r1; ++r) {
    const BlockQ6K* blocks = reinterpret_cast<const BlockQ6K*>(w.row_ptr(r));
    for (int t = 0; t < T; ++t) {
      const BlockQ8x* xt = xq + size_t(t) * size_t(nb);
      float acc = 0;
      for (int64_t ib = 0; ib < nsb; ++ib) {
        const BlockQ6K& b = blocks[ib];
        const float d = f16_to_f32(b.d);
        for (int h = 0; h < 2; ++h)
          for (int p = 0; p < 4; ++p) {
            const BlockQ8x& x = xt[8 * ib + 4 * h + p];
            const uint8_t* ql = b.ql + 64 * h + 32 * (p & 1);
            const uint8_t* qh = b.qh + 32 * h;
            int32_t v = 0;
            for (int i = 0; i < 2; ++i) {
              int32_t dot = 0, sum = 0;
              for (int l = 16 * i; l < 16 * i + 16; ++l) {
                const int q = ((ql[l] >> (4 * (p >> 1))) & 15) | (((qh[l] >> (2 * p)) & 3) << 4);
                dot += q * x.q[l];
                sum += x.q[l];
              }
              v += int32_t(b.scales[8 * h + 2 * p + i]) * (dot - 32 * sum);
            }
            acc += d * x.d * float(v);
          }
      }
      y[size_t(t) * size_t(ldy) + size_t(r)] = acc;
    }
  }
}

void pack_kacts(const BlockQ8x* xq, int64_t nsb, int group, KActs* out) {
  for (int64_t s = 0; s < nsb; ++s) {
    KActs& o = out[s];
    for (int g = 0; g < 16; ++g) o.gd[g] = o.gs[g] = 0.0f;
    for (int j = 0; j < 8; ++j) {
      const BlockQ8x& x = xq[8 * s + j];
      std::memcpy(o.q + 32 * j, x.q, 32);
      if (group == 32) {
        o.gd[j] = x.d;
        o.gs[8 + j] = x.d * float(x.sum);
        continue;
      }
      int32_t first = 0;  // the second 16's sum is the block's sum less the first's
      for (int l = 0; l < 16; ++l) first += x.q[l];
      o.gd[2 * j] = o.gd[2 * j + 1] = x.d;
      o.gs[2 * j] = x.d * float(first);
      o.gs[2 * j + 1] = x.d * float(x.sum - first);
    }
  }
}

// The AVX-512 slot: the VNNI kernels where the CPU has VNNI (the GEMM from kKQuantGemmMinTokens
// tokens), else the AVX2 ones.
#define QNEXT_GGML_INT8_AVX512(name)                                                                         \
  void rows_int8_##name##_avx512(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1) { \
    if (!cpu_has_avx512_vnni()) rows_int8_##name##_avx2(w, xq, T, y, ldy, r0, r1);                          \
    else if (T >= kKQuantGemmMinTokens) gemm_int8_##name##_vnni(w, xq, T, y, ldy, r0, r1);                     \
    else rows_int8_##name##_vnni(w, xq, T, y, ldy, r0, r1);                                                  \
  }
QNEXT_GGML_INT8_AVX512(q4_k)
QNEXT_GGML_INT8_AVX512(q5_k)
QNEXT_GGML_INT8_AVX512(q6_k)
#undef QNEXT_GGML_INT8_AVX512

}  // namespace qnext
