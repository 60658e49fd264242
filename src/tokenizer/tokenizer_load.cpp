// Building a Tokenizer from tokenizer.json / tokenizer_config.json.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <simdjson.h>

#include "io/gguf.h"
#include "io/json_parse.h"
#include "io/padded_file.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace qnext {

// Vocab strings are GPT-2 byte stand-ins; convert back to the raw bytes they denote.
void vocab_string_to_bytes(std::string_view s, std::string& out) {
  out.clear();
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp;
    size_t n = unicode::decode_utf8(s, i, &cp);
    int b = n ? unicode::codepoint_to_byte(cp) : -1;
    if (b < 0) {  // not a byte-level spelling: take it literally
      out.assign(s);
      return;
    }
    out += char(b);
    i += n;
  }
}

std::string vocab_string_to_bytes(std::string_view s) {
  std::string out;
  vocab_string_to_bytes(s, out);
  return out;
}

namespace {

using nlohmann::json;
namespace dom = simdjson::dom;

// GPT-2 pre-tokenizer pattern, used by a ByteLevel pre-tokenizer with use_regex=true.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

Result<json> parse_json(std::string_view text, const std::string& name) { return qnext::parse_json<json>(text, name); }


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

// The model's scalar fields (its vocab and merges are read by load_vocab / load_merges).
Status load_model_options(const json& m, Tokenizer::Impl& impl, const std::string& name) {
  if (!m.is_object()) return err(name + ": field 'model' missing");
  if (m.value("type", "BPE") != "BPE") return err(name + ": model.type must be BPE");
  if (!m.value("continuing_subword_prefix", std::string()).empty() ||
      !m.value("end_of_word_suffix", std::string()).empty())
    return err(name + ": model.continuing_subword_prefix / end_of_word_suffix are not supported");
  impl.ignore_merges = m.value("ignore_merges", false);
  return Ok{};
}

Status load_vocab(const dom::element* vocab, Tokenizer::Impl& impl, const std::string& name) {
  dom::object entries;
  if (!vocab || vocab->get_object().get(entries)) return err(name + ": field 'model.vocab' missing or not an object");
  const size_t n = entries.size();  // a hint: simdjson saturates it at 2^24 - 1
  impl.bpe.reserve(n, 8 * n);
  impl.vocab_ids.reserve(n, 8 * n);
  impl.id_bytes.reserve(n, 8 * n);
  std::string bytes;
  for (const dom::key_value_pair kv : entries) {
    int64_t id = -1;
    if (kv.value.get_int64().get(id) || id < 0 || id > kMaxTokenId)
      return err(name + ": model.vocab['" + std::string(kv.key) + "'] is not a valid id (0.." +
                 std::to_string(kMaxTokenId) + ")");
    const auto i = int32_t(id);
    vocab_string_to_bytes(kv.key, bytes);
    impl.bpe.add_token(bytes, i);
    impl.vocab_ids.emplace(kv.key, i);
    impl.id_bytes.set(i, bytes);
  }
  if (!impl.bpe.has_all_bytes()) return err(name + ": model.vocab lacks some of the 256 single-byte tokens");
  return Ok{};
}

Status load_merges(const dom::element* merges, Tokenizer::Impl& impl, const std::string& name) {
  dom::array list;
  if (!merges || merges->get_array().get(list)) return err(name + ": field 'model.merges' missing or not an array");
  impl.bpe.reserve_merges(list.size());  // a hint, as the vocab's
  int32_t rank = 0;
  for (const dom::element merge : list) {
    // Two spellings exist: ["a", "b"] (newer) and "a b" (older).
    std::string_view left, right, both;
    dom::array pair;
    if (!merge.get_array().get(pair)) {
      if (pair.size() != 2 || pair.at(0).get_string().get(left) || pair.at(1).get_string().get(right))
        return err(name + ": model.merges[" + std::to_string(rank) + "] is neither a pair nor a string");
    } else if (!merge.get_string().get(both)) {
      size_t sp = both.find(' ');
      if (sp == std::string_view::npos) return err(name + ": model.merges[" + std::to_string(rank) + "] is not 'a b'");
      left = both.substr(0, sp);
      right = both.substr(sp + 1);
    } else {
      return err(name + ": model.merges[" + std::to_string(rank) + "] is neither a pair nor a string");
    }
    const int32_t l = impl.vocab_ids.find(left), r = impl.vocab_ids.find(right);
    if (l < 0 || r < 0 || !impl.bpe.add_merge(l, r, rank))
      return err(name + ": model.merges[" + std::to_string(rank) + "] (" + std::string(left) + " " +
                 std::string(right) + ") uses tokens missing from model.vocab");
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
    impl.id_bytes.set(a.id, a.content);
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
  if (int32_t id = impl.vocab_ids.find(content); id >= 0) return id;
  return err(name + ": " + field + " '" + content + "' is not a known token");
}

// tokenizer.json is ~11 MB, nearly all of it model.vocab and model.merges: simdjson reads those
// in place (nlohmann's DOM of them was a third of a 1.5 s start-up). The small rest (normalizer,
// pre-tokenizer, added tokens, the model's options) goes to nlohmann for the sections above.
struct TokenizerDocument {
  dom::parser parser;  // owns what the elements point into
  json rest = json::object();  // the top-level fields but "model"
  json model;                  // "model" without vocab and merges (null when absent)
  std::optional<dom::element> vocab, merges;
};

Result<json> to_nlohmann(dom::element e, const std::string& name) { return parse_json(simdjson::minify(e), name); }

// padded: text is followed by simdjson::SIMDJSON_PADDING readable bytes.
Status parse_tokenizer_json(std::string_view text, bool padded, const std::string& name, TokenizerDocument& doc) {
  if (doc.parser.allocate(std::max<size_t>(text.size(), 64), kMaxJsonDepth))
    return err(name + ": out of memory parsing " + std::to_string(text.size()) + " bytes");
  dom::element root;
  // Copies the text into a padded buffer only when the bytes after it are not ours to read.
  if (auto e = doc.parser.parse(text.data(), text.size(), /*realloc_if_needed=*/!padded).get(root)) {
    if (e == simdjson::DEPTH_ERROR) return err(name + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    return err(name + ": malformed JSON (" + simdjson::error_message(e) + ")");
  }
  dom::object top;
  if (root.get_object().get(top)) return err(name + ": top level is not a JSON object");
  for (const dom::key_value_pair kv : top) {  // a repeated key: the last one counts, as in nlohmann
    dom::object model;
    if (kv.key != "model" || kv.value.get_object().get(model)) {
      auto value = to_nlohmann(kv.value, name);
      if (!value) return err(value.error());
      (kv.key == "model" ? doc.model : doc.rest[std::string(kv.key)]) = std::move(*value);
      continue;
    }
    doc.model = json::object();
    doc.vocab.reset();
    doc.merges.reset();
    for (const dom::key_value_pair field : model) {
      if (field.key == "vocab") {
        doc.vocab = field.value;
      } else if (field.key == "merges") {
        doc.merges = field.value;
      } else {
        auto value = to_nlohmann(field.value, name);
        if (!value) return err(value.error());
        doc.model[std::string(field.key)] = std::move(*value);
      }
    }
  }
  return Ok{};
}

Status build_checked(std::string_view tok_text, bool tok_padded, std::string_view cfg_text, const std::string& tok_name,
                     const std::string& cfg_name, Tokenizer::Impl* impl) {
  auto doc = std::make_unique<TokenizerDocument>();
  Status s = parse_tokenizer_json(tok_text, tok_padded, tok_name, *doc);
  if (s) s = load_model_options(doc->model, *impl, tok_name);
  if (s) s = load_vocab(doc->vocab ? &*doc->vocab : nullptr, *impl, tok_name);
  if (s) s = load_merges(doc->merges ? &*doc->merges : nullptr, *impl, tok_name);
  const json rest = std::move(doc->rest);
  doc.reset();  // the parsed tape is as large as the file
  if (s) s = load_normalizer(rest.value("normalizer", json()), *impl, tok_name);
  if (s) s = load_pre_tokenizer(rest.value("pre_tokenizer", json()), *impl, tok_name);
  if (s) s = load_added_tokens(rest.value("added_tokens", json()), *impl, tok_name);
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
Status build(std::string_view tok_text, bool tok_padded, std::string_view cfg_text, const std::string& tok_name,
             const std::string& cfg_name, Tokenizer::Impl* impl) {
  try {
    return build_checked(tok_text, tok_padded, cfg_text, tok_name, cfg_name, impl);
  } catch (const json::exception& e) {
    return err(tok_name + ": a field has an unexpected type (" + e.what() + ")");
  }
}

}  // namespace

Result<Tokenizer> Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json) {
  auto impl = std::make_shared<Impl>();
  Status s = build(tokenizer_json, /*tok_padded=*/false, config_json, "tokenizer.json", "tokenizer_config.json", impl.get());
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
  auto tok_text = PaddedFile::map(tok_path, simdjson::SIMDJSON_PADDING);
  if (!tok_text) return err(tok_text.error());
  PaddedFile cfg_text;
  if (fs::exists(cfg_path, ec)) {
    auto c = PaddedFile::map(cfg_path, 0);
    if (!c) return err(c.error());
    cfg_text = std::move(c.value());
  }
  auto impl = std::make_shared<Impl>();
  Status s = build(tok_text->text(), /*tok_padded=*/true, cfg_text.text(), tok_path, cfg_path, impl.get());
  if (!s) return err(s.error());
  Tokenizer t;
  t.impl_ = std::move(impl);
  return t;
}

}  // namespace qnext
