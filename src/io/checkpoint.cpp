#include "io/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>


namespace fs = std::filesystem;

namespace qnext {


Result<std::map<std::string, std::string>> parse_safetensors_index(std::string_view text, const std::string& name) {
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return err(name + ": malformed JSON: " + e.what());
  }
  if (!index.contains("weight_map") || !index["weight_map"].is_object()) return err(name + ": missing object 'weight_map'");
  std::map<std::string, std::string> weight_map;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    if (!it.value().is_string()) return err(name + ": weight_map['" + it.key() + "'] is not a file name");
    // Shards live next to the index: a path ("../x", "/etc/passwd", "sub/x") would make the loader
    // map a file outside the checkpoint directory.
    const std::string shard = it.value().get<std::string>();
    if (shard.empty() || shard == "." || shard == ".." || shard.find_first_of(std::string("/\\\0", 3)) != std::string::npos)
      return err(name + ": weight_map['" + it.key() + "'] = \"" + shard +
                 "\" is not a plain file name in the checkpoint directory");
    weight_map[it.key()] = shard;
  }
  return weight_map;
}

Result<Checkpoint> Checkpoint::open(const std::string& dir) {
  Checkpoint ck;
  ck.dir_ = dir;
  if (!fs::is_directory(dir)) return err(dir + ": not a directory");
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  std::map<std::string, std::string> weight_map;  // tensor -> shard file name
  std::vector<std::string> shard_names;
  if (fs::exists(index_path)) {
    std::ifstream in(index_path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in) return err(index_path.string() + ": cannot read");
    auto parsed = parse_safetensors_index(text.str(), index_path.string());
    if (!parsed) return err(parsed.error());
    weight_map = std::move(parsed.value());
    std::set<std::string> shards;
    for (const auto& [tensor, shard] : weight_map) shards.insert(shard);
    shard_names.assign(shards.begin(), shards.end());
  } else if (fs::exists(fs::path(dir) / "model.safetensors")) {
    shard_names.push_back("model.safetensors");
  } else {
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".safetensors" && e.path().filename() != "reference.safetensors")
        shard_names.push_back(e.path().filename().string());
    std::sort(shard_names.begin(), shard_names.end());
    if (shard_names.empty())
      return err(dir + ": no model.safetensors, model.safetensors.index.json or *.safetensors file");
  }

  ck.files_.reserve(shard_names.size());
  for (const auto& name : shard_names) {
    const std::string path = (fs::path(dir) / name).string();
    if (!fs::exists(path)) return err(path + ": shard listed in model.safetensors.index.json does not exist");
  }
  for (const auto& name : shard_names) {
    const std::string path = (fs::path(dir) / name).string();
    auto f = SafetensorsFile::open(path);
    if (!f) return err(f.error());
    ck.files_.push_back(std::move(f.value()));
  }
  for (const auto& f : ck.files_)
    for (const auto& t : f.tensors()) {
      if (ck.by_name_.count(t.name))
        return err(f.path() + ": tensor '" + t.name + "' also appears in " + *ck.by_name_[t.name]->file);
      ck.by_name_[t.name] = &t;
    }
  for (const auto& [name, shard] : weight_map) {
    auto it = ck.by_name_.find(name);
    if (it == ck.by_name_.end())
      return err((fs::path(dir) / shard).string() + ": tensor '" + name +
                 "' is listed in model.safetensors.index.json but absent from this shard");
    if (fs::path(*it->second->file).filename() != shard)
      return err(index_path.string() + ": tensor '" + name + "' is listed in " + shard + " but found in " +
                 *it->second->file);
  }
  return ck;
}

const TensorView* Checkpoint::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

Result<const TensorView*> Checkpoint::get(const std::string& name, const std::vector<int64_t>& shape) const {
  const TensorView* t = find(name);
  if (!t) return err(dir_ + ": tensor '" + name + "' is missing from the checkpoint");
  if (t->shape != shape)
    return err(*t->file + ": tensor '" + name + "' has shape " + t->shape_str() + ", expected " + shape_string(shape));
  return t;
}

bool Checkpoint::has_prefix(const std::string& prefix) const {
  auto it = by_name_.lower_bound(prefix);
  return it != by_name_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
}

size_t Checkpoint::total_bytes() const {
  size_t n = 0;
  for (const auto& [name, t] : by_name_) n += t->nbytes;
  return n;
}

}  // namespace qnext
