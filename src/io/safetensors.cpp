#include "io/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

namespace qnext {

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string TensorView::shape_str() const { return shape_string(shape); }

size_t TensorSpec::nbytes() const {
  size_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= size_t(d);
  return n;
}

Result<SafetensorsContents> parse_safetensors(const uint8_t* base, size_t size, const std::string& path) {
  SafetensorsContents st;
  if (size < 8) return err(path + ": truncated: " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  uint64_t header_len = 0;
  std::memcpy(&header_len, base, 8);
  if (header_len > size - 8)
    return err(path + ": header length " + std::to_string(header_len) + " goes beyond the file (" +
               std::to_string(size) + " bytes): truncated or not a safetensors file");
  const size_t data_size = size - 8 - header_len;
  const uint8_t* data = base + 8 + header_len;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(base + 8, base + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    return err(path + ": malformed header JSON: " + e.what());
  }
  if (!header.is_object()) return err(path + ": header JSON is not an object");

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& info = it.value();
    if (name == "__metadata__") {
      if (!info.is_object()) return err(path + ": __metadata__ is not an object");
      for (auto m = info.begin(); m != info.end(); ++m)
        if (m.value().is_string()) st.metadata[m.key()] = m.value().get<std::string>();
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    if (!info.is_object()) return err(where + ": header entry is not an object");
    if (!info.contains("dtype") || !info["dtype"].is_string()) return err(where + ": missing dtype");
    if (!info.contains("shape") || !info["shape"].is_array()) return err(where + ": missing shape");
    if (!info.contains("data_offsets") || !info["data_offsets"].is_array() || info["data_offsets"].size() != 2)
      return err(where + ": missing data_offsets [begin, end]");
    TensorView t;
    t.name = name;
    const std::string dt = info["dtype"].get<std::string>();
    if (!parse_dtype(dt, &t.dtype)) return err(where + ": unknown dtype '" + dt + "'");
    for (const auto& d : info["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) return err(where + ": bad shape entry " + d.dump());
      t.shape.push_back(d.get<int64_t>());
    }
    const auto& off = info["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      return err(where + ": data_offsets must be non-negative integers");
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data_size)
      return err(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                 "] out of range (data section is " + std::to_string(data_size) + " bytes; truncated file?)");
    // The declared shape's byte count, every product checked: [2^62, 2^62, 4] wrapped to 0 bytes in
    // 128 bits and was accepted.
    uint64_t expect = dtype_size(t.dtype);
    bool overflow = false;
    for (int64_t d : t.shape) overflow |= __builtin_mul_overflow(expect, uint64_t(d), &expect);
    if (overflow) return err(where + ": shape " + t.shape_str() + " of " + dt + " is larger than any file");
    if (expect != end - begin)
      return err(where + ": shape " + t.shape_str() + " of " + dt + " needs " + std::to_string(uint64_t(expect)) +
                 " bytes but data_offsets span " + std::to_string(end - begin));
    t.data = data + begin;
    t.nbytes = end - begin;
    st.tensors.push_back(std::move(t));
  }

  // Overlapping byte ranges mean a corrupt header.
  std::vector<const TensorView*> by_offset;
  for (const auto& t : st.tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->data < b->data; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const auto* prev = by_offset[i - 1];
    if (by_offset[i]->data < prev->data + prev->nbytes)
      return err(path + ": tensors '" + prev->name + "' and '" + by_offset[i]->name + "' have overlapping data_offsets");
  }
  for (auto& t : st.tensors) {
    auto q = st.metadata.find(std::string(kQuantKeyPrefix) + t.name);
    if (q == st.metadata.end()) continue;
    DType format;
    if (!parse_quant_dtype(q->second, &format))
      return err(path + ": tensor '" + t.name + "': unknown quantized format '" + q->second + "' in __metadata__");
    if (t.dtype != DType::U8 || t.shape.size() != 2)
      return err(path + ": tensor '" + t.name + "': a " + q->second + " matrix must be stored as U8 [rows, row bytes]");
    t.quant = format;
  }
  return st;
}

Result<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto mapped = MappedFile::open(path);
  if (!mapped) return err(mapped.error());
  SafetensorsFile st;
  st.file_ = mapped.value();
  auto contents = parse_safetensors(st.file_->data(), st.file_->size(), st.file_->path());
  if (!contents) return err(contents.error());
  st.tensors_ = std::move(contents.value().tensors);
  st.metadata_ = std::move(contents.value().metadata);
  for (auto& t : st.tensors_) t.file = &st.file_->path();
  return st;
}

Status write_safetensors(const std::string& path, const std::vector<TensorSpec>& tensors,
                         const std::function<void(size_t, uint8_t*)>& fill,
                         const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto& t : tensors) {
    size_t n = t.nbytes();
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return err(path + ": cannot create file");
  uint64_t len = h.size();
  bool ok = std::fwrite(&len, 8, 1, f) == 1 && std::fwrite(h.data(), 1, h.size(), f) == h.size();
  std::vector<uint8_t> buf;
  for (size_t i = 0; ok && i < tensors.size(); ++i) {
    buf.resize(tensors[i].nbytes());
    fill(i, buf.data());
    ok = std::fwrite(buf.data(), 1, buf.size(), f) == buf.size();
  }
  if (std::fclose(f) != 0) ok = false;
  if (!ok) return err(path + ": write failed (disk full?)");
  return Ok{};
}

}  // namespace qnext
