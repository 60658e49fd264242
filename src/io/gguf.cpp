#include "io/gguf.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <regex>

#include "io/safetensors.h"

namespace qnext {
namespace {

// ggml.h's enum ggml_type, indexed by number; null names mark numbers ggml no longer uses.
constexpr GgmlTypeInfo kGgmlTypes[] = {
    {"F32", 1, 4},       {"F16", 1, 2},       {"Q4_0", 32, 18},     {"Q4_1", 32, 20},    {nullptr, 0, 0},
    {nullptr, 0, 0},     {"Q5_0", 32, 22},    {"Q5_1", 32, 24},     {"Q8_0", 32, 34},    {"Q8_1", 32, 36},
    {"Q2_K", 256, 84},   {"Q3_K", 256, 110},  {"Q4_K", 256, 144},   {"Q5_K", 256, 176},  {"Q6_K", 256, 210},
    {"Q8_K", 256, 292},  {"IQ2_XXS", 256, 66}, {"IQ2_XS", 256, 74}, {"IQ3_XXS", 256, 98}, {"IQ1_S", 256, 50},
    {"IQ4_NL", 32, 18},  {"IQ3_S", 256, 110}, {"IQ2_S", 256, 82},   {"IQ4_XS", 256, 136}, {"I8", 1, 1},
    {"I16", 1, 2},       {"I32", 1, 4},       {"I64", 1, 8},        {"F64", 1, 8},       {"IQ1_M", 256, 56},
    {"BF16", 1, 2},      {nullptr, 0, 0},     {nullptr, 0, 0},      {nullptr, 0, 0},     {"TQ1_0", 256, 54},
    {"TQ2_0", 256, 66},  {nullptr, 0, 0},     {nullptr, 0, 0},      {nullptr, 0, 0},     {"MXFP4", 32, 17},
};
constexpr uint32_t kNumGgmlTypes = sizeof(kGgmlTypes) / sizeof(kGgmlTypes[0]);

// GGUF metadata value types.
enum ValueType : uint32_t { U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 };

constexpr uint64_t kMaxDims = 4;           // GGML_MAX_DIMS
constexpr uint64_t kMaxStringBytes = 1u << 30;

// Bounds-checked little-endian reads; the first failure is kept and every later read is a no-op.
struct Cursor {
  const uint8_t* bytes;
  size_t size;
  size_t pos = 0;
  std::string error;

  bool ok() const { return error.empty(); }
  size_t left() const { return size - pos; }
  void fail(std::string msg) {
    if (error.empty()) error = std::move(msg);
  }
  template <typename T>
  T read(const char* what) {
    T v{};
    if (!ok()) return v;
    if (left() < sizeof(T)) {
      fail("truncated at byte " + std::to_string(pos) + " reading " + what);
      return v;
    }
    std::memcpy(&v, bytes + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string string(const char* what) {
    const uint64_t n = read<uint64_t>(what);
    if (!ok()) return {};
    if (n > left() || n > kMaxStringBytes) {
      fail("truncated at byte " + std::to_string(pos) + ": " + what + " of " + std::to_string(n) + " bytes");
      return {};
    }
    std::string s(reinterpret_cast<const char*>(bytes + pos), size_t(n));
    pos += size_t(n);
    return s;
  }
};

size_t value_min_bytes(uint32_t type) {
  switch (type) {
    case U8: case I8: case BOOL: return 1;
    case U16: case I16: return 2;
    case U32: case I32: case F32: return 4;
    case STRING: case U64: case I64: case F64: return 8;
    case ARRAY: return 12;
    default: return 0;
  }
}

nlohmann::json read_scalar(Cursor& c, uint32_t type, const std::string& key) {
  switch (type) {
    case U8: return c.read<uint8_t>("a u8 value");
    case I8: return c.read<int8_t>("an i8 value");
    case U16: return c.read<uint16_t>("a u16 value");
    case I16: return c.read<int16_t>("an i16 value");
    case U32: return c.read<uint32_t>("a u32 value");
    case I32: return c.read<int32_t>("an i32 value");
    case U64: return c.read<uint64_t>("a u64 value");
    case I64: return c.read<int64_t>("an i64 value");
    case F32: return double(c.read<float>("an f32 value"));
    case F64: return c.read<double>("an f64 value");
    case BOOL: {
      const uint8_t b = c.read<uint8_t>("a bool value");
      if (b > 1) c.fail("key '" + key + "': bool value " + std::to_string(b) + " is neither 0 nor 1");
      return b == 1;
    }
    case STRING: return c.string("a string value");
    default: c.fail("key '" + key + "': unknown value type " + std::to_string(type)); return nullptr;
  }
}

nlohmann::json read_value(Cursor& c, uint32_t type, const std::string& key) {
  if (type != ARRAY) return read_scalar(c, type, key);
  const uint32_t elem = c.read<uint32_t>("an array's element type");
  const uint64_t n = c.read<uint64_t>("an array's length");
  if (!c.ok()) return nullptr;
  if (elem == ARRAY) {
    c.fail("key '" + key + "': arrays of arrays are not supported");
    return nullptr;
  }
  const size_t min = value_min_bytes(elem);
  if (min == 0) {
    c.fail("key '" + key + "': unknown array element type " + std::to_string(elem));
    return nullptr;
  }
  if (n > c.left() / min) {  // before allocating anything sized by n
    c.fail("truncated: key '" + key + "' claims " + std::to_string(n) + " elements");
    return nullptr;
  }
  nlohmann::json a = nlohmann::json::array();
  a.get_ref<nlohmann::json::array_t&>().reserve(size_t(n));
  for (uint64_t i = 0; i < n && c.ok(); ++i) a.push_back(read_scalar(c, elem, key));
  return a;
}

std::string where(const std::string& name, const std::string& what) { return name + ": " + what; }

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t type) {
  if (type >= kNumGgmlTypes || !kGgmlTypes[type].name) return nullptr;
  return &kGgmlTypes[type];
}

std::optional<DType> dtype_of_ggml(uint32_t type) {
  switch (type) {
    case 0: return DType::F32;
    case 1: return DType::F16;
    case 2: return DType::Q4_0;
    case 3: return DType::Q4_1;
    case 6: return DType::Q5_0;
    case 7: return DType::Q5_1;
    case 8: return DType::Q8_0;
    case 10: return DType::Q2_K;
    case 11: return DType::Q3_K;
    case 12: return DType::Q4_K;
    case 13: return DType::Q5_K;
    case 14: return DType::Q6_K;
    case 20: return DType::IQ4_NL;
    case 23: return DType::IQ4_XS;
    case 30: return DType::BF16;
    default: return std::nullopt;
  }
}

std::string gguf_shown(const nlohmann::json& v) {
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string GgufTensor::shape_str() const { return shape_string(shape); }

std::string GgufTensor::type_name() const {
  const GgmlTypeInfo* t = ggml_type_info(type);
  return t ? t->name : "type " + std::to_string(type);
}

Result<GgufContents> parse_gguf(const uint8_t* bytes, size_t size, const std::string& name) {
  Cursor c{bytes, size, 0, {}};
  if (size < 4 || std::memcmp(bytes, "GGUF", 4) != 0) return err(where(name, "not a GGUF file (no 'GGUF' magic)"));
  c.pos = 4;
  GgufContents out;
  out.version = c.read<uint32_t>("the version");
  const uint32_t swapped = __builtin_bswap32(out.version);
  if (c.ok() && (swapped == 2 || swapped == 3)) return err(where(name, "a big-endian GGUF file; only little-endian is supported"));
  if (c.ok() && (out.version < 2 || out.version > 3))
    return err(where(name, "GGUF version " + std::to_string(out.version) + " is not supported (2 and 3 are)"));
  const uint64_t n_tensors = c.read<uint64_t>("the tensor count");
  const uint64_t n_kv = c.read<uint64_t>("the metadata count");
  if (!c.ok()) return err(where(name, c.error));
  // Each entry takes at least 12 (key-value) or 32 (tensor) bytes: counts beyond that are corrupt.
  if (n_kv > c.left() / 12) return err(where(name, "metadata count " + std::to_string(n_kv) + " exceeds the file"));
  if (n_tensors > c.left() / 32) return err(where(name, "tensor count " + std::to_string(n_tensors) + " exceeds the file"));

  for (uint64_t i = 0; i < n_kv && c.ok(); ++i) {
    std::string key = c.string("a metadata key");
    const uint32_t type = c.read<uint32_t>("a metadata value type");
    if (!c.ok()) break;
    nlohmann::json v = read_value(c, type, key);
    if (!c.ok()) break;
    if (out.metadata.count(key)) return err(where(name, "metadata key '" + key + "' appears twice"));
    out.metadata.emplace(std::move(key), std::move(v));
  }
  if (!c.ok()) return err(where(name, c.error));

  if (auto it = out.metadata.find("general.alignment"); it != out.metadata.end()) {
    const auto& a = it->second;
    if (!a.is_number_unsigned() || a.get<uint64_t>() == 0 || (a.get<uint64_t>() & (a.get<uint64_t>() - 1)) ||
        a.get<uint64_t>() > (1u << 20))
      return err(where(name, "general.alignment is " + gguf_shown(a) + "; expected a power of two"));
    out.alignment = a.get<uint64_t>();
  }

  std::vector<uint64_t> offsets;
  for (uint64_t i = 0; i < n_tensors && c.ok(); ++i) {
    GgufTensor t;
    t.name = c.string("a tensor name");
    const uint32_t n_dims = c.read<uint32_t>("a tensor's dimension count");
    if (!c.ok()) break;
    const std::string tw = "tensor '" + t.name + "'";
    if (n_dims == 0 || n_dims > kMaxDims)
      return err(where(name, tw + " has " + std::to_string(n_dims) + " dimensions (1 to 4 allowed)"));
    std::vector<int64_t> ne(n_dims);
    for (auto& d : ne) {
      const uint64_t v = c.read<uint64_t>("a tensor dimension");
      if (c.ok() && (v == 0 || v > (uint64_t(1) << 40)))
        return err(where(name, tw + " has a dimension of " + std::to_string(v)));
      d = int64_t(v);
    }
    t.type = c.read<uint32_t>("a tensor type");
    const uint64_t offset = c.read<uint64_t>("a tensor offset");
    if (!c.ok()) break;
    const GgmlTypeInfo* info = ggml_type_info(t.type);
    if (!info) return err(where(name, tw + " has unknown ggml type " + std::to_string(t.type)));
    if (ne[0] % info->block_elems != 0)
      return err(where(name, tw + " (" + info->name + ") has rows of " + std::to_string(ne[0]) +
                                 " elements, not a multiple of its block of " + std::to_string(info->block_elems)));
    t.shape.assign(ne.rbegin(), ne.rend());
    // Elements are at most 2^40 per dimension, so count in 128 bits to catch overflow.
    unsigned __int128 bytes_needed = (unsigned __int128)(ne[0] / info->block_elems) * info->block_bytes;
    for (size_t d = 1; d < ne.size(); ++d) bytes_needed *= uint64_t(ne[d]);
    if (bytes_needed > (unsigned __int128)(uint64_t(1) << 62))
      return err(where(name, tw + " of shape " + t.shape_str() + " is larger than any file"));
    t.nbytes = size_t(bytes_needed);
    if (offset % out.alignment != 0)
      return err(where(name, tw + " data offset " + std::to_string(offset) + " is not a multiple of the alignment " +
                                 std::to_string(out.alignment)));
    offsets.push_back(offset);
    out.tensors.push_back(std::move(t));
  }
  if (!c.ok()) return err(where(name, c.error));

  const uint64_t data_start = (c.pos + out.alignment - 1) / out.alignment * out.alignment;
  if (data_start > size && !out.tensors.empty()) return err(where(name, "truncated: no tensor data follows the header"));
  const uint64_t data_size = data_start <= size ? size - data_start : 0;
  std::vector<size_t> order(out.tensors.size());
  for (size_t i = 0; i < order.size(); ++i) {
    order[i] = i;
    GgufTensor& t = out.tensors[i];
    if (offsets[i] > data_size || t.nbytes > data_size - offsets[i])
      return err(where(name, "tensor '" + t.name + "' (" + t.type_name() + " " + t.shape_str() + ", " +
                                 std::to_string(t.nbytes) + " bytes at data offset " + std::to_string(offsets[i]) +
                                 ") runs past the end of the file: truncated?"));
    t.data = bytes + data_start + offsets[i];
  }
  // Names must be unique and byte ranges disjoint.
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return offsets[a] < offsets[b]; });
  for (size_t k = 1; k < order.size(); ++k) {
    const size_t a = order[k - 1], b = order[k];
    if (out.tensors[a].nbytes > 0 && offsets[a] + out.tensors[a].nbytes > offsets[b])
      return err(where(name, "tensors '" + out.tensors[a].name + "' and '" + out.tensors[b].name + "' overlap"));
  }
  std::vector<const std::string*> names;
  for (const auto& t : out.tensors) names.push_back(&t.name);
  std::sort(names.begin(), names.end(), [](auto* a, auto* b) { return *a < *b; });
  for (size_t k = 1; k < names.size(); ++k)
    if (*names[k] == *names[k - 1]) return err(where(name, "tensor '" + *names[k] + "' appears twice"));
  return out;
}

bool is_gguf_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(path);
  if (fs::is_regular_file(p, ec)) return p.extension() == ".gguf";
  if (!fs::is_directory(p, ec) || fs::exists(p / "config.json", ec)) return false;
  for (const auto& e : fs::directory_iterator(p, ec))
    if (e.path().extension() == ".gguf") return true;
  return false;
}

namespace {

// The files of a model given as a .gguf file, a split's first file, or a directory.
Result<std::vector<std::string>> gguf_files(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path first(path);
  if (fs::is_directory(first, ec)) {
    std::vector<fs::path> found;
    for (const auto& e : fs::directory_iterator(first, ec))
      if (e.path().extension() == ".gguf") found.push_back(e.path());
    std::sort(found.begin(), found.end());
    if (found.empty()) return err(path + ": no .gguf file in this directory");
    static const std::regex kFirstSplit(R"(.*-00001-of-\d{5}\.gguf)");
    std::vector<fs::path> firsts;
    for (const auto& f : found)
      if (std::regex_match(f.filename().string(), kFirstSplit)) firsts.push_back(f);
    if (found.size() == 1) first = found[0];
    else if (firsts.size() == 1) first = firsts[0];
    else return err(path + ": holds " + std::to_string(found.size()) + " .gguf files that are not one split set; pass the file");
  } else if (!fs::exists(first, ec)) {
    return err(path + ": no such file or directory");
  }
  static const std::regex kSplit(R"((.*)-(\d{5})-of-(\d{5})\.gguf)");
  std::smatch m;
  const std::string fname = first.filename().string();
  if (!std::regex_match(fname, m, kSplit)) return std::vector<std::string>{first.string()};
  if (m[2] != "00001") return err(first.string() + ": part " + m[2].str() + " of a split set; pass the first part (-00001-of-...)");
  const int n = std::stoi(m[3].str());
  std::vector<std::string> files;
  for (int i = 1; i <= n; ++i) {
    char part[32];
    std::snprintf(part, sizeof(part), "-%05d-of-%05d.gguf", i, n);
    const fs::path f = first.parent_path() / (m[1].str() + part);
    if (!fs::exists(f, ec)) return err(f.string() + ": missing part " + std::to_string(i) + " of the split set");
    files.push_back(f.string());
  }
  return files;
}

}  // namespace

Result<GgufCheckpoint> GgufCheckpoint::open(const std::string& path) {
  auto files = gguf_files(path);
  if (!files) return err(files.error());
  GgufCheckpoint ck;
  ck.path_ = files->front();
  ck.file_names_ = files.value();
  std::vector<GgufContents> parts;
  for (const std::string& f : ck.file_names_) {
    auto mapped = MappedFile::open(f);
    if (!mapped) return err(mapped.error());
    auto contents = parse_gguf(mapped.value()->data(), mapped.value()->size(), f);
    if (!contents) return err(contents.error());
    ck.files_.push_back(std::move(mapped.value()));
    parts.push_back(std::move(contents.value()));
  }
  if (parts.size() > 1) {
    for (size_t i = 0; i < parts.size(); ++i) {
      auto it = parts[i].metadata.find("split.no");
      if (it != parts[i].metadata.end() && (!it->second.is_number_integer() || it->second.get<int64_t>() != int64_t(i)))
        return err(ck.file_names_[i] + ": split.no is " + gguf_shown(it->second) + ", expected " + std::to_string(i));
    }
  }
  ck.metadata_ = std::move(parts.front().metadata);
  for (size_t i = 0; i < parts.size(); ++i)
    for (GgufTensor& t : parts[i].tensors) {
      t.file = &ck.file_names_[i];
      if (ck.by_name_.count(t.name))
        return err(ck.file_names_[i] + ": tensor '" + t.name + "' is also in " + *ck.tensors_[ck.by_name_[t.name]].file);
      ck.by_name_[t.name] = ck.tensors_.size();
      ck.tensors_.push_back(std::move(t));
    }
  if (auto it = ck.metadata_.find("split.tensors.count"); it != ck.metadata_.end())
    if (!it->second.is_number_integer() || it->second.get<int64_t>() != int64_t(ck.tensors_.size()))
      return err(ck.path_ + ": split.tensors.count is " + gguf_shown(it->second) + " but the files hold " +
                 std::to_string(ck.tensors_.size()) + " tensors");
  return ck;
}

const nlohmann::json* GgufCheckpoint::meta(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const GgufTensor* GgufCheckpoint::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

Result<const GgufTensor*> GgufCheckpoint::get(const std::string& name, const std::vector<int64_t>& shape) const {
  const GgufTensor* t = find(name);
  if (!t) return err(path_ + ": tensor '" + name + "' not found");
  if (t->shape != shape)
    return err(*t->file + ": tensor '" + name + "' has shape " + t->shape_str() + ", expected " + shape_string(shape));
  return t;
}

size_t GgufCheckpoint::total_bytes() const {
  size_t n = 0;
  for (const auto& t : tensors_) n += t.nbytes;
  return n;
}

}  // namespace qnext
