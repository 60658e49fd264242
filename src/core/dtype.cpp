#include "core/dtype.h"

#include <algorithm>
#include <cmath>

namespace qnext {

bool is_quantized(DType t) { return t == DType::Q8_0 || t == DType::Q4_0; }
bool has_scales(DType t) { return t == DType::F8_E4M3 || t == DType::I4; }

float e4m3_to_f32(uint8_t code) {
  const int exp = (code >> 3) & 15, mant = code & 7;
  float v;
  if ((code & 0x7f) == 0x7f) v = std::nanf("");
  else if (exp == 0) v = std::ldexp(float(mant), -9);  // subnormal: mant / 8 * 2^-6
  else v = std::ldexp(float(8 + mant), exp - 10);     // (1 + mant / 8) * 2^(exp - 7)
  return (code & 0x80) ? -v : v;
}

bool parse_quant_dtype(std::string_view name, DType* out) {
  if (name == "Q8_0") *out = DType::Q8_0;
  else if (name == "Q4_0") *out = DType::Q4_0;
  else return false;
  return true;
}

uint8_t f32_to_e4m3(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint8_t sign = uint8_t((bits >> 24) & 0x80);
  const float a = std::fabs(f);
  if (!(a < 464.0f)) return sign | 0x7e;  // beyond 448's rounding range (and NaN): saturate
  if (a < 0.015625f) return sign | uint8_t(std::nearbyint(a * 512.0f));  // subnormal steps of 2^-9 (8 is 2^-6)
  uint32_t abits = bits & 0x7fffffff;
  abits += 0x7ffff + ((abits >> 20) & 1);  // round to 3 mantissa bits, nearest even
  const int exp = int(abits >> 23) - 127 + 7;
  const uint8_t code = uint8_t((exp << 3) | ((abits >> 20) & 7));
  return sign | std::min<uint8_t>(code, 0x7e);
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
    case DType::Q8_0: return "Q8_0";
    case DType::Q4_0: return "Q4_0";
    case DType::F8_E4M3: return "F8_E4M3";
    case DType::I4: return "I4";
    case DType::Q4_1: return "Q4_1";
    case DType::Q5_0: return "Q5_0";
    case DType::Q5_1: return "Q5_1";
    case DType::Q2_K: return "Q2_K";
    case DType::Q3_K: return "Q3_K";
    case DType::Q4_K: return "Q4_K";
    case DType::Q5_K: return "Q5_K";
    case DType::Q6_K: return "Q6_K";
    case DType::IQ4_NL: return "IQ4_NL";
    case DType::IQ4_XS: return "IQ4_XS";
  }
  return "?";
}

bool parse_dtype(std::string_view name, DType* out) {
  static constexpr struct { std::string_view name; DType type; } kTypes[] = {
      {"F32", DType::F32}, {"BF16", DType::BF16}, {"F16", DType::F16},
      {"I64", DType::I64}, {"I32", DType::I32},   {"U8", DType::U8}, {"F8_E4M3", DType::F8_E4M3}};
  for (const auto& t : kTypes)
    if (t.name == name) {
      *out = t.type;
      return true;
    }
  return false;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: value = mant * 2^-24
      float f = std::ldexp(float(mant), -24);
      return (h & 0x8000) ? -f : f;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000 | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  uint16_t sign = uint16_t((bits >> 16) & 0x8000);
  float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7e00;
  if (a >= 65520.0f) return sign | 0x7c00;
  if (a < 6.103515625e-05f) {  // subnormal half: round a * 2^24 to an integer
    return sign | uint16_t(std::nearbyint(a * 16777216.0f));
  }
  uint32_t abits = bits & 0x7fffffff;
  // round to nearest even on the 13 dropped mantissa bits
  abits += 0xfff + ((abits >> 13) & 1);
  uint32_t exp = (abits >> 23) - 112;
  return sign | uint16_t((exp << 10) | ((abits >> 13) & 0x3ff));
}

}  // namespace qnext
