// How a KV cache row of D elements is laid out, for the attention kernels: F32 (float), F16
// (uint16_t halves) or Q8_0 (BlockQ8_0: 32 elements per block, an f16 scale and 32 int8). A row
// pointer is an E*, rows are `stride` E apart (a Q8_0 row: D / 32 blocks).
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "core/dtype.h"
#include "kernels/quant.h"

namespace qnext {

// Bytes of one row of D elements.
template <typename E>
constexpr size_t kv_row_bytes(int D) {
  if constexpr (std::is_same_v<E, BlockQ8_0>) return size_t(D / kQuantBlock) * sizeof(BlockQ8_0);
  else return size_t(D) * sizeof(E);
}

// Element d of a row as a float (the scalar twin's reading; a Q8_0 element is d * q, exact in float).
inline float kv_element(const float* row, int d) { return row[d]; }
inline float kv_element(const uint16_t* row, int d) { return f16_to_f32(row[d]); }
inline float kv_element(const BlockQ8_0* row, int d) {
  const BlockQ8_0& b = row[d / kQuantBlock];
  return f16_to_f32(b.d) * float(b.q[d % kQuantBlock]);
}

}  // namespace qnext
