// NumPy .npy files (version 1.0, little-endian, C order): the output format of `qnext logits`.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"

namespace qnext {

Status write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape);

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};
Result<NpyArray> read_npy_f32(const std::string& path);  // '<f4' arrays only

}  // namespace qnext
