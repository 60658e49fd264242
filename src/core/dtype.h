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
enum class DType { F32, BF16, F16, I64, I32, U8, Q8_0, Q4_0 };

size_t dtype_size(DType t);  // bytes per element; 0 for the block formats (see row_bytes)
size_t row_bytes(DType t, int64_t cols);  // bytes of one row of `cols` elements
bool is_quantized(DType t);
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

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace qnext
