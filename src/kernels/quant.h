// Block-quantized weights and the integer matrix products over them.
//
//   Q8_0: 32 weights = f16 scale d + 32 int8 q;           w = d * q          (8.5 bits/weight)
//   Q4_0: 32 weights = f16 scale d + 16 bytes of nibbles;  w = d * (q - 8)    (4.5 bits/weight)
//         byte i holds q[i] in its low nibble and q[i + 16] in its high nibble.
//
// Products quantize the activations per block of 32 to int8 with a float scale (BlockQ8x), so the
// inner loops are int8 x int8 dot products: for one token (decoding) kernels that stream each row
// start to end (stream_prefetch.h), for 2-3 tokens matrix-vector tiles (on AVX-512 VNNI row
// kernels that stream each row once for all of them), and on AVX-512 VNNI a packed int8 GEMM for
// many (prefill). Without VNNI, int8 is no faster than float
// FMA, so prefill dequantizes each weight row once and reuses it in float across the tokens
// (matmul_dq_rows). The ISA variants sit in quant_avx2.cpp and quant_avx512.cpp.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/matmul.h"
#include "kernels/weight_format.h"

namespace qnext {

constexpr int kQuantBlock = 32;

#pragma pack(push, 1)
struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t q[32];
};
struct BlockQ4_0 {
  uint16_t d;  // f16 scale
  uint8_t q[16];
};
#pragma pack(pop)
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18);

struct BlockQ8x {  // activations: float scale + 32 int8
  float d;
  int32_t sum;  // sum of q: lets Q4_0 kernels multiply unsigned nibbles and subtract 8 * sum once
  int8_t q[32];
};

// The activations of a run of 8 blocks laid out for the one-token Q4_0 kernels, which dot the
// low nibbles (k 0-15) and high nibbles (k 16-31) of several blocks side by side: lo holds the
// first 16 activations of each block in turn, hi the last 16. The nibble offset (q - 8) comes off
// in float, once per block: dw * offset, offset = -8 dx sum(q).
struct RunX {
  int8_t lo[128];    // [block, k 0-15]
  int8_t hi[128];    // [block, k 16-31]
  float d[8];        // [block] scale dx
  float offset[8];   // [block] -8 dx sum(q)
};
// xq [nb] (nb a multiple of 8) into out [nb / 8].
void pack_runs(const BlockQ8x* xq, int64_t nb, RunX* out);
// The kernels keep the runs of one row on their stack (20 KiB at most), so decoding allocates
// nothing; longer rows take the blockwise kernels.
constexpr int64_t kMaxRuns = 64;  // rows of up to 16384 weights

// n must be a multiple of 32.
void quantize_row_q8_0(const float* x, int64_t n, BlockQ8_0* out);
void quantize_row_q4_0(const float* x, int64_t n, BlockQ4_0* out);
void quantize_row(DType type, const float* x, int64_t n, void* out);
void dequantize_row(DType type, const void* row, int64_t n, float* out);
void quantize_activations(const float* x, int64_t n, BlockQ8x* out);  // the scalar twin
void quantize_activations_avx2(const float* x, int64_t n, BlockQ8x* out);
void quantize_activations_avx512(const float* x, int64_t n, BlockQ8x* out);
// T rows of x [T, cols] into xq [T, cols / 32], with the ISA's variant.
void quantize_activation_rows(Isa isa, const float* x, int T, int64_t cols, BlockQ8x* xq);

// Output rows [r0, r1) of y = x W^T for a quantized W [rows, cols]; xq: [T, cols / 32] blocks.
// matmul_q_rows runs the format's kernel for the ISA (weight_format's rows_int8: also the K-quants
// of kernels/ggml_blocks_q8.h).
void matmul_q_rows(Isa isa, const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
void matmul_q_rows_scalar(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
void matmul_q_rows_avx2(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
// The AVX-512 slot of Q8_0 / Q4_0 (weight_format's rows_int8): the VNNI kernels below where the CPU
// has VNNI, else the AVX2 ones.
void matmul_q_rows_avx512(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
// The same for many tokens with AVX-512 VNNI: the panel GEMM (gemm_panels.h), each format's rows
// unpacked in quant_avx512.cpp. It also takes formats whose rows convert to int8 blocks
// (weight_format's to_int8: FP8, int4), a chunk of rows at a time.
void gemm_q_rows_avx512(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
// The scalar twin of the VNNI GEMM over such rows: each row converted, then integer block dots.
void matmul_converted_rows_scalar(RowToInt8 convert, const Matrix& w, const BlockQ8x* xq, int T, float* y,
                                  int64_t ldy, int64_t r0, int64_t r1);
// From this many tokens up, matmul_q_rows(Avx512) runs the VNNI GEMM instead of matrix-vector tiles.
constexpr int kVnniGemmMinTokens = 4;
// Fewer tokens over Q4_0 with AVX-512 VNNI (quant_avx512.cpp) for rows of a multiple of 256 weights
// (8 blocks): one token streams the rows 4 blocks per register (with VBMI byte permutes), 2-3
// tokens run matrix-vector tiles; matvec_q4_avx512_fits says whether a product qualifies.
bool matvec_q4_avx512_fits(const Matrix& w, int T);
void matvec_q4_avx512(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);

// 2 .. kVnniRowsMaxTokens tokens over Q8_0 / Q4_0 rows of an even number of blocks with AVX-512 VNNI
// (quant_rows_avx512.cpp; rows_q_vnni_fits): each row streams once per pass of up to 3 tokens, two
// blocks per vpdpbusd. Any T works (passes of up to 3 tokens); matmul_q_rows picks it for
// 2-3 tokens, and for one token over Q8_0 (in cache 1.15-1.3x the AVX2 one-token kernel it replaced).
constexpr int kVnniRowsMaxTokens = 3;
bool rows_q_vnni_fits(const Matrix& w);
void rows_q_vnni_avx512(const Matrix& w, const BlockQ8x* xq, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);

// Whether the AVX-512 VNNI kernels (quant_avx512.cpp) run under this ISA on this CPU. Then
// quantized products with many tokens also keep the activations in int8 (int8 products are 4x
// float FMAs there) instead of dequantizing the weights to float (matmul_dq_rows).
bool vnni_kernels(Isa isa);

// Decoding streams each weight once from memory; the hardware prefetcher alone leaves the loads
// stalling, so the int8 tiles for 2-3 tokens (and the VNNI GEMM's first pass over the rows) prefetch the
// same block of the row this many rows below. A/B on a 131072 x 2048 matrix, 2 threads, AVX-512
// machine: 4 rows ahead 32.6 GB/s q8 / 29 q4, 8 rows 35 / 31, 12 rows 36 / 28.
constexpr int kQuantPrefetchRows = 8;

// Output rows [r0, r1) of y = x W^T for a quantized W with float activations x [T, cols]: each
// weight row is dequantized once and reused across all T tokens (SIMD: gemm_rows_avx2). For
// prefill, from kGemmMinTokens tokens up.
void matmul_dq_rows(Isa isa, const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
void matmul_dq_rows_scalar(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);

void dequantize_row_avx2(DType type, const uint8_t* row, int64_t cols, float* out);

// Float activations over Q8_0 / Q4_0 (exact mode: QNEXT_ACTIVATIONS=f32), for few tokens: elements
// [k0, k0 + n) of a row dequantized (k0, n multiples of 32), and the products over them
// (kernels/weight_format.h). Scalar twins first; the AVX2 ones in quant_f32_avx2.cpp.
void dequant_q_scalar(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out);
void dequant_q_avx2(const Matrix& w, int64_t r, int64_t k0, int64_t n, float* out);
void rows_q_f32_scalar(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);
void rows_q_f32_avx2(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1);

}  // namespace qnext
