// llama.cpp's block formats as GGUF files store them (ggml-common.h's block_* structs), run as
// stored with float activations. A row of n weights is n / kElems consecutive blocks.
//
//   Q4_1    32 = d, m (f16), 16 bytes of nibbles           w = d q + m
//   Q5_0    32 = d, qh (bit j: 5th bit of q_j), nibbles    w = d (q - 16)
//   Q5_1    32 = d, m, qh, nibbles                         w = d q + m
//   IQ4_NL  32 = d, nibbles indexing kIq4nlValues          w = d v[q]
//   Q2_K   256 = 16 x (4-bit scale, 4-bit min), 2-bit q    w = (d sc) q - (dmin m)
//   Q3_K   256 = high bits, 2-bit q, 16 x 6-bit scales     w = (d (sc - 32)) (q - 4 [high bit clear])
//   Q4_K   256 = d, dmin, 8 x 6-bit (scale, min), nibbles  w = (d sc) q - (dmin m)
//   Q5_K   256 = as Q4_K plus a 5th bit per weight         w = (d sc) q - (dmin m)
//   Q6_K   256 = 4 + 2 bits per weight, 16 int8 scales     w = (d sc) (q - 32)
//   IQ4_XS 256 = d, 8 x 6-bit scales, nibbles into v       w = (d (ls - 32)) v[q]
//
// Nibble layouts: in the 32-blocks byte j holds element j (low) and j + 16 (high); in Q4_K / Q5_K
// each 64 weights share 32 bytes, low nibbles the first 32, high the next 32. The dequantizers
// here are bit-exact with ggml-quants.c's dequantize_row_* (same float32 operations in the same
// order). Every product in them is exact (an f16 scale times small integers: at most 23
// significant bits), so only the final add or subtract rounds; the files are still built with
// -ffp-contract=off so that `d1 * q - m1` stays two operations as in ggml.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/weight_format.h"

namespace qnext {

inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

#pragma pack(push, 1)
struct BlockQ4_1 {
  static constexpr int kElems = 32;
  uint16_t d, m;    // f16
  uint8_t qs[16];
};
struct BlockQ5_0 {
  static constexpr int kElems = 32;
  uint16_t d;
  uint8_t qh[4];    // little-endian uint32: bit j = 5th bit of element j
  uint8_t qs[16];
};
struct BlockQ5_1 {
  static constexpr int kElems = 32;
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[16];
};
struct BlockIq4Nl {
  static constexpr int kElems = 32;
  uint16_t d;
  uint8_t qs[16];
};
struct BlockQ2K {
  static constexpr int kElems = 256;
  uint8_t scales[16];  // per 16 weights: low nibble scale, high nibble min
  uint8_t qs[64];      // byte l of each 32: 4 weights (l, l+32, l+64, l+96 of the 128) 2 bits each
  uint16_t d, dmin;
};
struct BlockQ3K {
  static constexpr int kElems = 256;
  uint8_t hmask[32];   // bit i of byte l: high bit of weight 32 i + l (set: q as is; clear: q - 4)
  uint8_t qs[64];      // low 2 bits, as Q2_K
  uint8_t scales[12];  // 16 x 6 bits: low 4 bits in nibbles of [0, 8), high 2 bits in [8, 12)
  uint16_t d;
};
struct BlockQ4K {
  static constexpr int kElems = 256;
  uint16_t d, dmin;
  uint8_t scales[12];  // 8 x (6-bit scale, 6-bit min): see k4_scale_min
  uint8_t qs[128];
};
struct BlockQ5K {
  static constexpr int kElems = 256;
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[32];      // bit i of byte l: 5th bit of weight 32 i + l
  uint8_t qs[128];
};
struct BlockQ6K {
  static constexpr int kElems = 256;
  uint8_t ql[128];     // low 4 bits
  uint8_t qh[64];      // high 2 bits
  int8_t scales[16];   // per 16 weights
  uint16_t d;
};
struct BlockIq4Xs {
  static constexpr int kElems = 256;
  uint16_t d;
  uint16_t scales_h;   // 2 high bits of each 32-block's 6-bit scale
  uint8_t scales_l[4]; // 4 low bits, two per byte
  uint8_t qs[128];
};
#pragma pack(pop)
static_assert(sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24 && sizeof(BlockIq4Nl) == 18);
static_assert(sizeof(BlockQ2K) == 84 && sizeof(BlockQ3K) == 110 && sizeof(BlockQ4K) == 144 && sizeof(BlockQ5K) == 176 &&
              sizeof(BlockQ6K) == 210 && sizeof(BlockIq4Xs) == 136);

// Q4_K / Q5_K: the 6-bit scale and min of 32-weight sub-block j (0..7). Static: the files built
// with wider ISA flags must not share an out-of-line copy with the baseline ones.
static inline void k4_scale_min(const uint8_t* s, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Elements [k0, k0 + n) of row r through a whole-block dequantizer `F(block, out[kElems])`: whole
// blocks straight into out, a block cut by k0 or k0 + n through a buffer on the stack.
template <class Block, void (*F)(const Block&, float*)>
void dequant_blocks(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out) {
  constexpr int64_t QK = Block::kElems;
  const Block* blocks = reinterpret_cast<const Block*>(w.row_ptr(r));
  const int64_t end = k0 + n;
  int64_t k = k0;
  while (k < end) {
    const int64_t b = k / QK, off = k - b * QK, take = std::min(QK - off, end - k);
    if (take == QK) {
      F(blocks[b], out + (k - k0));
    } else {
      float tmp[QK];
      F(blocks[b], tmp);
      std::memcpy(out + (k - k0), tmp + off, size_t(take) * sizeof(float));
    }
    k += take;
  }
}

// Scalar whole-block dequantizers: the definition (ggml's dequantize_row_* for one block).
void dequant_block_scalar(const BlockQ4_1& b, float* out);
void dequant_block_scalar(const BlockQ5_0& b, float* out);
void dequant_block_scalar(const BlockQ5_1& b, float* out);
void dequant_block_scalar(const BlockIq4Nl& b, float* out);
void dequant_block_scalar(const BlockQ2K& b, float* out);
void dequant_block_scalar(const BlockQ3K& b, float* out);
void dequant_block_scalar(const BlockQ4K& b, float* out);
void dequant_block_scalar(const BlockQ5K& b, float* out);
void dequant_block_scalar(const BlockQ6K& b, float* out);
void dequant_block_scalar(const BlockIq4Xs& b, float* out);

// The kernels of weight_format.cpp's table, per type: the scalar dequantizer and its row product
// (rows_f32_dequant_scalar over it), the AVX2 dequantizer (bit-exact, for the GEMM panels) and the
// AVX2 and AVX-512 row products (each row streamed once, dequantized in registers).
#define QNEXT_GGML_KERNELS(name)                                                                   \
  void dequant_##name##_scalar(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out);     \
  void dequant_##name##_avx2(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out);       \
  void rows_##name##_scalar(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1); \
  void rows_##name##_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);   \
  void rows_##name##_avx512(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
QNEXT_GGML_KERNELS(q4_1)
QNEXT_GGML_KERNELS(q5_0)
QNEXT_GGML_KERNELS(q5_1)
QNEXT_GGML_KERNELS(iq4_nl)
QNEXT_GGML_KERNELS(q2_k)
QNEXT_GGML_KERNELS(q3_k)
QNEXT_GGML_KERNELS(q4_k)
QNEXT_GGML_KERNELS(q5_k)
QNEXT_GGML_KERNELS(q6_k)
QNEXT_GGML_KERNELS(iq4_xs)
#undef QNEXT_GGML_KERNELS

}  // namespace qnext
