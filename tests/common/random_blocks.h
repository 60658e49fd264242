// Random blocks of llama.cpp's formats for the kernel tests: random bytes (every quant and scale bit
// pattern) with the fp16 fields set to finite values of every kind.
#pragma once
#include <cstddef>
#include <cstring>
#include <random>
#include <vector>

#include "core/cpu.h"
#include "kernels/ggml_blocks.h"
#include "kernels/matmul.h"

namespace qnext::testing {

inline std::vector<Isa> isas_here() {
  std::vector<Isa> v{Isa::Scalar};
  if (best_isa() >= Isa::Avx2) v.push_back(Isa::Avx2);
  if (best_isa() >= Isa::Avx512) v.push_back(Isa::Avx512);
  return v;
}

// Byte offsets of the fp16 fields of each block.
inline std::vector<size_t> f16_fields(DType t) {
  switch (t) {
    case DType::Q4_1: return {offsetof(BlockQ4_1, d), offsetof(BlockQ4_1, m)};
    case DType::Q5_0: return {offsetof(BlockQ5_0, d)};
    case DType::Q5_1: return {offsetof(BlockQ5_1, d), offsetof(BlockQ5_1, m)};
    case DType::Q2_K: return {offsetof(BlockQ2K, d), offsetof(BlockQ2K, dmin)};
    case DType::Q3_K: return {offsetof(BlockQ3K, d)};
    case DType::Q4_K: return {offsetof(BlockQ4K, d), offsetof(BlockQ4K, dmin)};
    case DType::Q5_K: return {offsetof(BlockQ5K, d), offsetof(BlockQ5K, dmin)};
    case DType::Q6_K: return {offsetof(BlockQ6K, d)};
    case DType::IQ4_NL: return {offsetof(BlockIq4Nl, d)};
    default: return {offsetof(BlockIq4Xs, d)};
  }
}

// A finite fp16 of every kind: +-0, subnormal, normal of either sign (up to 2^4).
inline uint16_t random_f16(std::mt19937& rng) {
  const uint16_t sign = uint16_t((rng() & 1) << 15), mant = uint16_t(rng() & 0x3ff);
  switch (rng() % 6) {
    case 0: return sign;                                     // +-0
    case 1: return uint16_t(sign | (mant ? mant : 1));       // subnormal
    default: return uint16_t(sign | ((1 + rng() % 19) << 10) | mant);  // 2^-14 .. 2^4
  }
}

struct RandomMatrix {
  std::vector<uint8_t> bytes;
  Matrix m;
};

// Random bytes (so every quant and scale bit pattern), the fp16 fields then set to random_f16;
// the first block has all quant bits clear, the second all set.
inline RandomMatrix random_matrix(DType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  RandomMatrix s;
  s.bytes.resize(size_t(rows) * row_bytes(t, cols));
  for (auto& b : s.bytes) b = uint8_t(rng());
  const size_t bb = block_bytes(t);
  const size_t nblocks = s.bytes.size() / bb;
  const auto fields = f16_fields(t);
  for (size_t i = 0; i < nblocks; ++i) {
    uint8_t* blk = s.bytes.data() + i * bb;
    if (i < 2) std::memset(blk, i == 0 ? 0x00 : 0xff, bb);
    for (size_t off : fields) {
      const uint16_t h = random_f16(rng);
      std::memcpy(blk + off, &h, 2);
    }
  }
  s.m = Matrix{t, s.bytes.data(), rows, cols};
  return s;
}

}  // namespace qnext::testing
