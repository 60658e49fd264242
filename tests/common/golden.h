// Helpers for tests against the golden reference data in tests/data.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace qnext::testing {

inline std::string data_dir(const std::string& name) { return std::string(QNEXT_TEST_DATA) + "/" + name; }

// The tensors of a reference.safetensors, read as float or int64 vectors by name.
class Reference {
 public:
  explicit Reference(const std::string& model_name) {
    auto f = SafetensorsFile::open(data_dir(model_name) + "/reference.safetensors");
    if (!f) throw std::runtime_error(f.error());
    file_ = std::make_unique<SafetensorsFile>(std::move(f.value()));
  }
  const TensorView& view(const std::string& name) const {
    for (const auto& t : file_->tensors())
      if (t.name == name) return t;
    throw std::runtime_error("reference tensor missing: " + name);
  }
  bool has(const std::string& name) const {
    for (const auto& t : file_->tensors())
      if (t.name == name) return true;
    return false;
  }
  std::vector<float> f32(const std::string& name) const {
    const auto& t = view(name);
    std::vector<float> v(size_t(t.numel()));
    std::memcpy(v.data(), t.data, t.nbytes);
    return v;
  }
  std::vector<int32_t> ids(const std::string& name) const {
    const auto& t = view(name);
    std::vector<int32_t> v(size_t(t.numel()));
    for (size_t i = 0; i < v.size(); ++i) v[i] = int32_t(reinterpret_cast<const int64_t*>(t.data)[i]);
    return v;
  }

 private:
  std::unique_ptr<SafetensorsFile> file_;
};

inline float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}
inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  return max_abs_diff(a.data(), b.data(), std::min(a.size(), b.size()));
}

inline int argmax(const float* v, size_t n) {
  return int(std::max_element(v, v + n) - v);
}

}  // namespace qnext::testing
