// Building a Tokenizer from tokenizer.json / tokenizer_config.json.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/gguf.h"
#include "io/json_parse.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace qnext {

// Vocab strings are GPT-2 byte stand-ins; convert back to the raw bytes they denote.
std::string vocab_string_to_bytes(std::string_view s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp;
    size_t n = unicode::decode_utf8(s, i, &cp);
    int b = n ? unicode::codepoint_to_byte(cp) : -1;
    if (b < 0) return std::string(s);  // not a byte-level spelling: take it literally
    out += char(b);
    i += n;
  }
  return out;
}

namespace {

using nlohmann::json;

// GPT-2 pre-tokenizer pattern, used by a ByteLevel pre-tokenizer with use_regex=true.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

Result<json> parse_json(std::string_view text, const std::string& name) { return qnext::parse_json<json>(text, name); }

Result<std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return err(path + ": cannot open file");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Normalizer: only NFC (alone or in a Sequence) is understood.
Status load_normalizer(const json& n, Tokenizer::Impl& impl, const std::string& name) {
  if (n.is_null()) return Ok{};
  std::string type = n.value("type", "");
  if (type == "NFC") {
    impl.nfc = true;
    return Ok{};
  }
  if (type == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
    for (const auto& sub : n["normalizers"]) {
      Status s = load_normalizer(sub, impl, name);
      if (!s) return s;
    }
    return Ok{};
  }
  return err(name + ": normalizer type '" + type + "' is not supported (only NFC)");
}

// Pre-tokenizer: Split(regex, Isolated) and/or ByteLevel, possibly in a Sequence.
Status load_pre_tokenizer(const json& p, Tokenizer::Impl& impl, const std::string& name) {
  if (p.is_null()) return Ok{};
  std::string type = p.value("type", "");
  if (type == "Sequence" && p.contains("pretokenizers") && p["pretokenizers"].is_array()) {
    for (const auto& sub : p["pretokenizers"]) {
      Status s = load_pre_tokenizer(sub, impl, name);
      if (!s) return s;
    }
    return Ok{};
  }
  std::string pattern;
  if (type == "ByteLevel") {
    if (p.value("add_prefix_space", false))
      return err(name + ": pre_tokenizer ByteLevel.add_prefix_space=true is not supported");
    if (!p.value("use_regex", true)) return Ok{};
    pattern = kGpt2Pattern;
  } else if (type == "Split") {
    const json* regex = p.contains("pattern") ? &p["pattern"] : nullptr;
    if (!regex || !regex->contains("Regex") || !(*regex)["Regex"].is_string())
      return err(name + ": pre_tokenizer Split.pattern.Regex missing (only regex patterns are supported)");
    if (p.value("behavior", "") != "Isolated" || p.value("invert", false))
      return err(name + ": pre_tokenizer Split supports only behavior=Isolated, invert=false");
    pattern = (*regex)["Regex"].get<std::string>();
  } else {
    return err(name + ": pre_tokenizer type '" + type + "' is not supported");
  }
  if (impl.splitter) return err(name + ": more than one splitting pre_tokenizer is not supported");
  auto splitter = RegexSplitter::compile(pattern);
  if (!splitter) return err(name + ": " + splitter.error());
  impl.splitter = std::move(splitter.value());
  return Ok{};
}

Status load_model(const json& m, Tokenizer::Impl& impl, const std::string& name) {
  if (!m.is_object()) return err(name + ": field 'model' missing");
  if (m.value("type", "BPE") != "BPE") return err(name + ": model.type must be BPE");
  if (!m.value("continuing_subword_prefix", std::string()).empty() ||
      !m.value("end_of_word_suffix", std::string()).empty())
    return err(name + ": model.continuing_subword_prefix / end_of_word_suffix are not supported");
  impl.ignore_merges = m.value("ignore_merges", false);
  if (!m.contains("vocab") || !m["vocab"].is_object()) return err(name + ": field 'model.vocab' missing or not an object");
  if (!m.contains("merges") || !m["merges"].is_array()) return err(name + ": field 'model.merges' missing or not an array");

  for (const auto& [token, id] : m["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxTokenId)
      return err(name + ": model.vocab['" + token + "'] is not a valid id (0.." + std::to_string(kMaxTokenId) + ")");
    auto i = id.get<int32_t>();
    impl.bpe.add_token(vocab_string_to_bytes(token), i);
    impl.vocab_ids.emplace(token, i);
    if (size_t(i) >= impl.id_bytes.size()) impl.id_bytes.resize(i + 1);
    impl.id_bytes[i] = vocab_string_to_bytes(token);
  }
  if (!impl.bpe.has_all_bytes()) return err(name + ": model.vocab lacks some of the 256 single-byte tokens");

  int32_t rank = 0;
  for (const auto& merge : m["merges"]) {
    // Two spellings exist: ["a", "b"] (newer) and "a b" (older).
    std::string left, right;
    if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else if (merge.is_string()) {
      auto s = merge.get<std::string>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos) return err(name + ": model.merges[" + std::to_string(rank) + "] is not 'a b'");
      left = s.substr(0, sp);
      right = s.substr(sp + 1);
    } else {
      return err(name + ": model.merges[" + std::to_string(rank) + "] is neither a pair nor a string");
    }
    auto l = impl.vocab_ids.find(left), r = impl.vocab_ids.find(right);
    if (l == impl.vocab_ids.end() || r == impl.vocab_ids.end() || !impl.bpe.add_merge(l->second, r->second, rank))
      return err(name + ": model.merges[" + std::to_string(rank) + "] (" + left + " " + right +
                 ") uses tokens missing from model.vocab");
    ++rank;
  }
  return Ok{};
}

Status load_added_tokens(const json& list, Tokenizer::Impl& impl, const std::string& name) {
  if (list.is_null()) return Ok{};
  if (!list.is_array()) return err(name + ": field 'added_tokens' is not an array");
  for (const auto& t : list) {
    if (!t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") || !t["content"].is_string())
      return err(name + ": added_tokens entry without integer 'id' and string 'content'");
    const json& id = t["id"];
    if (id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxTokenId || (id.is_number_unsigned() && id.get<uint64_t>() > uint64_t(kMaxTokenId)))
      return err(name + ": added_tokens id " + id.dump() + " is not a valid id (0.." + std::to_string(kMaxTokenId) + ")");
    AddedToken a;
    a.id = id.get<int32_t>();
    a.content = t["content"].get<std::string>();
    for (const char* flag : {"special", "lstrip", "rstrip", "single_word", "normalized"})
      if (t.contains(flag) && !t[flag].is_boolean())  // value() threw type_error out of the loader
        return err(name + ": added_tokens entry '" + a.content + "': '" + flag + "' is " + t[flag].dump() +
                   ", not true or false");
    a.special = t.value("special", false);
    a.lstrip = t.value("lstrip", false);
    a.rstrip = t.value("rstrip", false);
    a.single_word = t.value("single_word", false);
    a.normalized = t.value("normalized", !a.special);  // HF's default
    (a.normalized ? impl.normalized_added : impl.raw_added).add(a);
    impl.added_ids[a.content] = a.id;
    if (size_t(a.id) >= impl.id_bytes.size()) impl.id_bytes.resize(a.id + 1);
    impl.id_bytes[a.id] = a.content;
    impl.added.push_back(std::move(a));
  }
  return Ok{};
}

// eos_token etc. may be a plain string or an object with "content"; null means none.
Result<int32_t> config_token(const json& cfg, const char* field, const Tokenizer::Impl& impl, const std::string& name) {
  if (!cfg.contains(field) || cfg[field].is_null()) return -1;
  const json& v = cfg[field];
  std::string content;
  if (v.is_string())
    content = v.get<std::string>();
  else if (v.is_object() && v.contains("content") && v["content"].is_string())
    content = v["content"].get<std::string>();
  else
    return err(name + ": field '" + field + "' is neither a string nor {\"content\": ...}");
  if (auto it = impl.added_ids.find(content); it != impl.added_ids.end()) return it->second;
  if (auto it = impl.vocab_ids.find(content); it != impl.vocab_ids.end()) return it->second;
  return err(name + ": " + field + " '" + content + "' is not a known token");
}

Status build_checked(std::string_view tok_text, std::string_view cfg_text, const std::string& tok_name,
                     const std::string& cfg_name, Tokenizer::Impl* impl) {
  auto j = parse_json(tok_text, tok_name);
  if (!j) return err(j.error());
  if (!j->is_object()) return err(tok_name + ": top level is not a JSON object");
  Status s = load_model(j->contains("model") ? (*j)["model"] : json(), *impl, tok_name);
  if (s) s = load_normalizer(j->value("normalizer", json()), *impl, tok_name);
  if (s) s = load_pre_tokenizer(j->value("pre_tokenizer", json()), *impl, tok_name);
  if (s) s = load_added_tokens(j->value("added_tokens", json()), *impl, tok_name);
  if (!s) return err(s.error());
  impl->id_flags.assign(impl->id_bytes.size(), 0);
  for (const auto& a : impl->added)
    impl->id_flags[a.id] = Tokenizer::Impl::kAdded | (a.special ? Tokenizer::Impl::kSpecial : 0);

  if (!cfg_text.empty()) {
    auto cfg = parse_json(cfg_text, cfg_name);
    if (!cfg) return err(cfg.error());
    if (!cfg->is_object()) return err(cfg_name + ": top level is not a JSON object");
    auto eos = config_token(*cfg, "eos_token", *impl, cfg_name);
    auto pad = config_token(*cfg, "pad_token", *impl, cfg_name);
    auto bos = config_token(*cfg, "bos_token", *impl, cfg_name);
    for (auto* r : {&eos, &pad, &bos})
      if (!*r) return err(r->error());
    impl->eos = *eos;
    impl->pad = *pad;
    impl->bos = *bos;
  }
  return Ok{};
}

// The sections above read optional fields with nlohmann's value() and get(), which throw on a
// field of another type than expected ("normalizer": 5, a pre-tokenizer that is a number): such a
// file is an error, not a crash.
Status build(std::string_view tok_text, std::string_view cfg_text, const std::string& tok_name,
             const std::string& cfg_name, Tokenizer::Impl* impl) {
  try {
    return build_checked(tok_text, cfg_text, tok_name, cfg_name, impl);
  } catch (const json::exception& e) {
    return err(tok_name + ": a field has an unexpected type (" + e.what() + ")");
  }
}

}  // namespace

Result<Tokenizer> Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json) {
  auto impl = std::make_shared<Impl>();
  Status s = build(tokenizer_json, config_json, "tokenizer.json", "tokenizer_config.json", impl.get());
  if (!s) return err(s.error());
  Tokenizer t;
  t.impl_ = std::move(impl);
  return t;
}

Result<Tokenizer> Tokenizer::load(const std::string& model_dir) {
  namespace fs = std::filesystem;
  std::string tok_path = (fs::path(model_dir) / "tokenizer.json").string();
  std::string cfg_path = (fs::path(model_dir) / "tokenizer_config.json").string();
  std::error_code ec;
  // HF files beside a GGUF win: tokenizer.json is the exact source (GGUF token types only
  // approximate its "special" flags).
  const bool gguf_file = fs::path(model_dir).extension() == ".gguf" && !fs::is_directory(model_dir, ec);
  if (gguf_file || (!fs::exists(tok_path, ec) && is_gguf_path(model_dir))) return load_gguf_tokenizer(model_dir);
  auto tok_text = read_file(tok_path);
  if (!tok_text) return err(tok_text.error());
  std::string cfg_text;
  if (fs::exists(cfg_path, ec)) {
    auto c = read_file(cfg_path);
    if (!c) return err(c.error());
    cfg_text = std::move(c.value());
  }
  auto impl = std::make_shared<Impl>();
  Status s = build(*tok_text, cfg_text, tok_path, cfg_path, impl.get());
  if (!s) return err(s.error());
  Tokenizer t;
  t.impl_ = std::move(impl);
  return t;
}

}  // namespace qnext
