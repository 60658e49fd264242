// Writes GGUF files for tests: a fixture read with GgufCheckpoint, changed, written back. Values
// keep their JSON kind (unsigned -> U32/U64, signed -> I32/I64, float -> F32, bool, string, arrays of
// one kind), which is what llama.cpp's converter writes for the keys qnext reads.
#pragma once
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "io/gguf.h"

namespace qnext::testing {

struct GgufTensorOut {
  std::string name;
  uint32_t type;
  std::vector<int64_t> shape;  // row-major, outermost first
  std::vector<uint8_t> bytes;
};

class GgufWriter {
 public:
  static std::vector<GgufTensorOut> tensors_of(const GgufCheckpoint& g) {
    std::vector<GgufTensorOut> out;
    for (const auto& t : g.tensors()) out.push_back({t.name, t.type, t.shape, {t.data, t.data + t.nbytes}});
    return out;
  }

  static void write(const std::string& path, const GgufMetadata& meta, const std::vector<GgufTensorOut>& tensors) {
    GgufWriter w;
    w.b_ = {'G', 'G', 'U', 'F'};
    w.put<uint32_t>(3);
    w.put<uint64_t>(tensors.size());
    w.put<uint64_t>(meta.size());
    for (const auto& [key, v] : meta) {
      w.str(key);
      w.value(v, true);
    }
    uint64_t offset = 0;
    for (const auto& t : tensors) {
      w.str(t.name);
      w.put<uint32_t>(uint32_t(t.shape.size()));
      for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) w.put<uint64_t>(uint64_t(*d));
      w.put<uint32_t>(t.type);
      w.put<uint64_t>(offset);
      offset += (t.bytes.size() + 31) / 32 * 32;
    }
    for (const auto& t : tensors) {
      w.align();
      w.b_.insert(w.b_.end(), t.bytes.begin(), t.bytes.end());
    }
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(w.b_.data()), std::streamsize(w.b_.size()));
  }

 private:
  template <typename T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b_.insert(b_.end(), p, p + sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    b_.insert(b_.end(), s.begin(), s.end());
  }
  void align() {
    while (b_.size() % 32) b_.push_back(0);
  }
  static uint32_t type_of(const nlohmann::json& v) {
    if (v.is_boolean()) return 7;
    if (v.is_string()) return 8;
    if (v.is_array()) return 9;
    if (v.is_number_unsigned()) return v.get<uint64_t>() > 0xffffffffu ? 10 : 4;
    if (v.is_number_integer()) return 11;
    return 6;  // float32
  }
  void value(const nlohmann::json& v, bool with_type) {
    const uint32_t type = type_of(v);
    if (with_type) put<uint32_t>(type);
    switch (type) {
      case 7: put<uint8_t>(v.get<bool>()); break;
      case 8: str(v.get<std::string>()); break;
      case 4: put<uint32_t>(v.get<uint32_t>()); break;
      case 10: put<uint64_t>(v.get<uint64_t>()); break;
      case 11: put<int64_t>(v.get<int64_t>()); break;
      case 6: put<float>(v.get<float>()); break;
      case 9: {
        const uint32_t elem = v.empty() ? 4 : type_of(v[0]);
        put<uint32_t>(elem);
        put<uint64_t>(v.size());
        for (const auto& e : v) value(e, false);
        break;
      }
    }
  }
  std::vector<uint8_t> b_;
};

}  // namespace qnext::testing
