// Element types of checkpoint tensors and their scalar conversions to float.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace qnext {

// Q8_0 and Q4_0 are qnext's block-quantized weight formats (see kernels/quant.h): blocks of 32
// weights with one f16 scale. In safetensors files they are stored as U8 bytes, with their
// format named in the header's __metadata__.
// F8_E4M3 is both the safetensors element type (1 byte: e4m3fn) and, as a matrix, the block-scaled
// FP8 of the official Qwen FP8 releases (codes [rows, cols], f32 scales per 128x128 block apart).
// I4 is the compressed-tensors pack-quantized int4 matrix: eight 4-bit codes per int32 word along
// each row ([rows, ceil(cols / 8)] words), scales (and zero points) per group apart (io/compressed_tensors.h).
// Q4_1 .. IQ4_XS are llama.cpp's block formats as GGUF files store them (kernels/ggml_blocks.h):
// blocks of 32 (Q4_1, Q5_0, Q5_1, IQ4_NL) or super-blocks of 256 (the K-quants, IQ4_XS).
enum class DType { F32, BF16, F16, I64, I32, U8, Q8_0, Q4_0, F8_E4M3, I4,
                   Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS };

// Bytes per element; 0 for the block formats (see row_bytes).
constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::I64: return 8;
    case DType::I32: return 4;
    case DType::U8: return 1;
    case DType::F8_E4M3: return 1;
    default: return 0;  // block formats
  }
}

// Elements (a power of two: 2^shift) and bytes per block; ggml-common.h's block structs for the
// GGUF formats, an int32 word of 8 nibbles for I4, one element for the others.
struct BlockShape {
  int shift;
  size_t bytes;
};
constexpr BlockShape block_shape(DType t) {
  switch (t) {
    case DType::Q8_0: return {5, 34};
    case DType::Q4_0: return {5, 18};
    case DType::I4: return {3, 4};
    case DType::Q4_1: return {5, 20};
    case DType::Q5_0: return {5, 22};
    case DType::Q5_1: return {5, 24};
    case DType::Q2_K: return {8, 84};
    case DType::Q3_K: return {8, 110};
    case DType::Q4_K: return {8, 144};
    case DType::Q5_K: return {8, 176};
    case DType::Q6_K: return {8, 210};
    case DType::IQ4_NL: return {5, 18};
    case DType::IQ4_XS: return {8, 136};
    default: return {0, dtype_size(t)};
  }
}
constexpr int64_t block_elems(DType t) { return int64_t(1) << block_shape(t).shift; }
constexpr size_t block_bytes(DType t) { return block_shape(t).bytes; }

// Bytes of one row of `cols` elements: whole blocks (cols a multiple of the block for the block
// formats), except I4, whose last word is zero-padded. Inline, with a shift rather than a
// division: the row kernels ask once per row.
constexpr size_t row_bytes(DType t, int64_t cols) {
  const BlockShape b = block_shape(t);
  if (t == DType::I4) return size_t((cols + 7) >> 3) * 4;
  return size_t(cols >> b.shift) * b.bytes;
}
bool is_quantized(DType t);  // Q8_0 / Q4_0: qnext's blocks, with the int8-activation kernels
bool has_scales(DType t);    // F8_E4M3 / I4 matrices: codes here, scales in side tensors (Matrix::scales)
std::string_view dtype_name(DType t);  // safetensors spelling: "F32", "BF16", ...; "Q8_0", "Q4_0"
bool parse_dtype(std::string_view name, DType* out);  // the safetensors element types only
bool parse_quant_dtype(std::string_view name, DType* out);  // "Q8_0" / "Q4_0"

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, as torch does when it casts to bfloat16.
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffff) > 0x7f800000) return uint16_t((bits >> 16) | 0x40);  // NaN stays NaN
  bits += 0x7fff + ((bits >> 16) & 1);
  return uint16_t(bits >> 16);
}

// e4m3fn (1 sign, 4 exponent bits with bias 7, 3 mantissa bits; no infinities, 0x7f/0xff NaN).
float e4m3_to_f32(uint8_t code);
uint8_t f32_to_e4m3(float f);  // round to nearest even, saturating at +-448

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace qnext
