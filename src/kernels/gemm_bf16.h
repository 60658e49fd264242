// Products on bf16 dot products (AVX512-BF16's vdpbf16ps: 32 multiply-adds an instruction, twice
// the float FMA's) for several tokens: prefill, and the experts' shares of a prompt; for FP8 also
// decoding, its codes converted in registers as they stream (kFp8StreamMaxTokens).
//
// The weights become bf16: BF16 weights as stored (exact; only with QNEXT_ACTIVATIONS=bf16, from
// kGemmMinTokens tokens: prefill's dense projections, the busier experts); int4 weights
// dequantized with their scales, then rounded to bf16 (relative error <= 2^-9). int4 and FP8 come
// here only where Q8_0's int8 GEMM (int4.h, fp8.h) does not take them first: rows or groups not in
// whole blocks of 32, or a CPU without AVX-512 VNNI (none known with AVX512-BF16), and for FP8 also
// one without GFNI (Cooper Lake). FP8 weights for up to
// kFp8ScaledActivationsMaxTokens tokens (and no more than a block's rows): the codes alone, exact
// in bf16 (as e4m3 x 2^-8, bit permutations: no float work per weight; the activations x 256), and each 128 x 128 block's scale goes onto
// the activations instead (x * scale, rounded to bf16, once per row block a call covers); for more
// tokens that pass over the activations would cost more than scaling the weights, so they are
// dequantized and rounded as int4's. So in this kernel an FP8 token's result differs in its
// roundings between batches of up to 128 tokens and larger ones; within either range it does not
// (decoding's stream included: the same products, summed in the same order per lane). Through
// matmul, on CPUs with VNNI (all known with AVX512-BF16), 4+ FP8 tokens take the int8 GEMM instead,
// so a token decoded alone and one in a batch of 4+ still differ in their roundings.
// The activations become one bf16 term (x rounded to 2^-9: the fast default of FP8 and int4, and
// BF16's with QNEXT_ACTIVATIONS=bf16, as llama.cpp; bounded by `qnext kld` against exact mode) or
// two (hi = bf16(x), lo = bf16(x - hi): x to ~2^-16, within the golden tolerances; not dispatched:
// use_bf16_gemm says why). Exact mode (QNEXT_ACTIVATIONS=f32) never comes here.
#pragma once
#include <cstdint>

#include "kernels/matmul.h"

namespace qnext {

enum class Bf16Terms { One, HiLo };

// From this many tokens int4 products, and FP8 ones the int8 GEMM does not take, run on the bf16
// kernel (fewer: the float row tiles, which stream the weights once and need no conversion pass;
// FP8 decoding streams here instead where fp8_streams says so).
constexpr int kBf16MinTokens = 4;

// Up to this many tokens an FP8 product puts the block scales on the activations (above).
constexpr int kFp8ScaledActivationsMaxTokens = 128;
// Up to this many tokens (decoding) the FP8 codes are converted in registers as they stream, not
// into a bf16 copy of the rows first: the same products and sums, bit for bit.
constexpr int kFp8StreamMaxTokens = 3;
inline bool fp8_scales_activations(const Matrix& w, int T) {
  return w.dtype == DType::F8_E4M3 && T <= kFp8ScaledActivationsMaxTokens && T <= w.group_rows;
}

// Whether an FP8 product of T tokens streams its codes (fp8_stream_rows in gemm_bf16_avx512.cpp):
// 1 to kFp8StreamMaxTokens tokens, the scales on the activations, rows of whole 64-column steps,
// a CPU with GFNI.
bool fp8_streams(const Matrix& w, int T);

// Whether a product of T tokens over weights of type t runs on bf16 dot products now (isa AVX-512
// on a CPU with AVX512-BF16, not exact mode, a format and token count where it is faster), and with
// how many activation terms, for shapes the kernels take whole. FP8 also needs GFNI (its code
// conversion). The Matrix form (what matmul asks) also checks FP8 decoding's
// shape: rows the stream cannot take stay on the float row kernel.
bool use_bf16_gemm(Isa isa, DType t, int T, Bf16Terms* terms);
bool use_bf16_gemm(Isa isa, const Matrix& w, int T, Bf16Terms* terms);

// Output rows [r0, r1) of y = x W^T: x [T, cols], y [T, ldy]; the same contract as matmul_rows.
// The scalar twin defines the rounding; the AVX-512 kernel differs only in summation order.
void gemm_bf16_rows_scalar(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1,
                           Bf16Terms terms);
void gemm_bf16_rows_avx512(const Matrix& w, const float* x, int T, float* y, int64_t ldy, int64_t r0, int64_t r1,
                           Bf16Terms terms);

}  // namespace qnext
