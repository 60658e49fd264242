// Helpers for tests against the golden reference data in tests/data.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/cpu.h"
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
    for (size_t i = 0; i < v.size(); ++i) {  // tensors need not be 8-byte aligned in the file
      int64_t id;
      std::memcpy(&id, t.data + 8 * i, 8);
      v[i] = int32_t(id);
    }
    return v;
  }

 private:
  std::unique_ptr<SafetensorsFile> file_;
};

// The larger of two errors, NaN when either is (std::max(m, NaN) is m: a NaN output would pass).
inline float worse(float m, float d) { return d <= m ? m : d; }

inline float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = worse(m, std::fabs(a[i] - b[i]));
  return m;
}
inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  return max_abs_diff(a.data(), b.data(), std::min(a.size(), b.size()));
}

// The ISAs above the CPU's best, up to `highest` ("avx512", "avx2, avx512"), empty when it has
// them all: a test that checked what the CPU has ends with
//   if (auto lacking = testing::isas_lacking(Isa::Avx512); !lacking.empty())
//     GTEST_SKIP() << "this CPU lacks " << lacking << ": those kernels were not checked";
// so a run on a smaller CPU reports what it left out instead of passing quietly.
inline std::string isas_lacking(Isa highest) {
  std::string out;
  for (Isa isa : {Isa::Avx2, Isa::Avx512})
    if (isa <= highest && isa > best_isa()) out += (out.empty() ? "" : ", ") + std::string(isa_name(isa));
  return out;
}

inline int argmax(const float* v, size_t n) {
  return int(std::max_element(v, v + n) - v);
}

}  // namespace qnext::testing
