// Building a Tokenizer from tokenizer.json / tokenizer_config.json.
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <simdjson.h>

#include "core/mapped_file.h"
#include "io/gguf.h"
#include "io/json_parse.h"
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
namespace od = simdjson::ondemand;

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

// A field's or element's malformed JSON (simdjson finds it as it walks).
std::string malformed(const std::string& name, simdjson::error_code e) {
  if (e == simdjson::DEPTH_ERROR) return name + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
  return name + ": malformed JSON (" + simdjson::error_message(e) + ")";
}

Status load_vocab(od::value vocab, Tokenizer::Impl& impl, const std::string& name) {
  od::object entries;
  if (vocab.get_object().get(entries)) return err(name + ": field 'model.vocab' missing or not an object");
  size_t n = 0;
  if (auto e = entries.count_fields().get(n)) return err(malformed(name, e));
  impl.bpe.reserve(n, 8 * n);
  impl.vocab_ids.reserve(n, 8 * n);
  impl.id_bytes.reserve(n, 8 * n);
  std::string bytes;
  for (auto entry : entries) {
    od::field field;
    std::string_view token;
    if (auto e = std::move(entry).get(field)) return err(malformed(name, e));
    if (auto e = field.unescaped_key().get(token)) return err(malformed(name, e));
    int64_t id = -1;
    if (field.value().get_int64().get(id) || id < 0 || id > kMaxTokenId)
      return err(name + ": model.vocab['" + std::string(token) + "'] is not a valid id (0.." +
                 std::to_string(kMaxTokenId) + ")");
    const auto i = int32_t(id);
    vocab_string_to_bytes(token, bytes);
    impl.bpe.add_token(bytes, i);
    impl.vocab_ids.emplace(token, i);
    impl.id_bytes.set(i, bytes);
  }
  if (!impl.bpe.has_all_bytes()) return err(name + ": model.vocab lacks some of the 256 single-byte tokens");
  return Ok{};
}

// One merge's two sides: ["a", "b"] (newer spelling) or "a b" (older). Empty message: fine.
std::string merge_sides(od::value merge, std::string_view& left, std::string_view& right, const std::string& at) {
  od::json_type type;
  if (merge.type().get(type)) return at + " is neither a pair nor a string";
  if (type == od::json_type::string) {
    std::string_view both;
    if (merge.get_string().get(both)) return at + " is neither a pair nor a string";
    const size_t sp = both.find(' ');
    if (sp == std::string_view::npos) return at + " is not 'a b'";
    left = both.substr(0, sp);
    right = both.substr(sp + 1);
    return {};
  }
  od::array pair;
  if (type != od::json_type::array || merge.get_array().get(pair)) return at + " is neither a pair nor a string";
  size_t count = 0;
  for (auto side : pair) {
    std::string_view text;
    if (++count > 2 || std::move(side).get_string().get(text)) return at + " is neither a pair nor a string";
    (count == 1 ? left : right) = text;
  }
  return count == 2 ? std::string() : at + " is neither a pair nor a string";
}

Status load_merges(od::value merges, Tokenizer::Impl& impl, const std::string& name) {
  od::array list;
  if (merges.get_array().get(list)) return err(name + ": field 'model.merges' missing or not an array");
  size_t n = 0;
  if (auto e = list.count_elements().get(n)) return err(malformed(name, e));
  impl.bpe.reserve_merges(n);
  int32_t rank = 0;
  for (auto item : list) {
    const std::string at = name + ": model.merges[" + std::to_string(rank) + "]";
    od::value merge;
    if (auto e = std::move(item).get(merge)) return err(malformed(name, e));
    std::string_view left, right;
    if (std::string bad = merge_sides(merge, left, right, at); !bad.empty()) return err(bad);
    const int32_t l = impl.vocab_ids.find(left), r = impl.vocab_ids.find(right);
    if (l < 0 || r < 0 || !impl.bpe.add_merge(l, r, rank))
      return err(at + " (" + std::string(left) + " " + std::string(right) + ") uses tokens missing from model.vocab");
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

// tokenizer.json is ~11 MB, nearly all of it model.vocab and model.merges. simdjson's On-Demand
// parser walks those in place, building no tree (nlohmann's tree of them was a third of a 1.5 s
// start-up, simdjson's own DOM a fifth of what was left); the small rest (normalizer,
// pre-tokenizer, added tokens, the model's options) goes to nlohmann for the sections above.

// The raw JSON text of a value, whatever its type (simdjson gives it per type).
simdjson::error_code raw_json_of(od::value v, std::string_view& text) {
  od::json_type type;
  if (auto e = v.type().get(type)) return e;
  if (type == od::json_type::object) {
    od::object o;
    if (auto e = v.get_object().get(o)) return e;
    return o.raw_json().get(text);
  }
  if (type == od::json_type::array) {
    od::array a;
    if (auto e = v.get_array().get(a)) return e;
    return a.raw_json().get(text);
  }
  text = v.raw_json_token();
  return simdjson::SUCCESS;
}

Result<json> to_nlohmann(od::value v, const std::string& name) {
  std::string_view text;
  if (auto e = raw_json_of(v, text)) return err(malformed(name, e));
  return parse_json(text, name);
}

// The model object: its other fields (into `options`, checked first), then vocab, then merges,
// whatever their order in the file.
Status load_model(od::object model, Tokenizer::Impl& impl, json& options, const std::string& name) {
  options = json::object();
  for (auto field : model) {
    od::field f;
    std::string_view key;
    if (auto e = std::move(field).get(f)) return err(malformed(name, e));
    if (auto e = f.unescaped_key().get(key)) return err(malformed(name, e));
    if (key == "vocab" || key == "merges") continue;
    auto value = to_nlohmann(f.value(), name);
    if (!value) return err(value.error());
    options[std::string(key)] = std::move(*value);
  }
  if (Status s = load_model_options(options, impl, name); !s) return s;
  od::value vocab, merges;
  if (auto e = model.find_field_unordered("vocab").get(vocab))
    return err(e == simdjson::NO_SUCH_FIELD ? name + ": field 'model.vocab' missing or not an object" : malformed(name, e));
  if (Status s = load_vocab(vocab, impl, name); !s) return s;
  if (auto e = model.find_field_unordered("merges").get(merges))
    return err(e == simdjson::NO_SUCH_FIELD ? name + ": field 'model.merges' missing or not an array" : malformed(name, e));
  return load_merges(merges, impl, name);
}

// Fills impl's vocab and merges, and `rest` with the top-level fields but "model".
// padded: text is followed by simdjson::SIMDJSON_PADDING readable bytes.
Status read_tokenizer_json(std::string_view text, bool padded, const std::string& name, Tokenizer::Impl& impl,
                           json& rest) {
  od::parser parser;
  if (parser.allocate(std::max<size_t>(text.size(), 64), kMaxJsonDepth))
    return err(name + ": out of memory parsing " + std::to_string(text.size()) + " bytes");
  simdjson::padded_string copy;  // only when the bytes after text are not ours to read
  if (!padded) copy = simdjson::padded_string(text.data(), text.size());
  od::document doc;
  if (auto e = (padded ? parser.iterate(text.data(), text.size(), text.size() + simdjson::SIMDJSON_PADDING)
                       : parser.iterate(copy)).get(doc))
    return err(malformed(name, e));
  od::object top;
  if (auto e = doc.get_object().get(top))
    return err(e == simdjson::INCORRECT_TYPE ? name + ": top level is not a JSON object" : malformed(name, e));
  rest = json::object();
  bool have_model = false;
  for (auto field : top) {
    od::field f;
    std::string_view key;
    if (auto e = std::move(field).get(f)) return err(malformed(name, e));
    if (auto e = f.unescaped_key().get(key)) return err(malformed(name, e));
    od::object model;
    if (key == "model") {
      if (have_model) return err(name + ": field 'model' appears twice");
      have_model = true;
      if (!f.value().get_object().get(model)) {
        json options;
        if (Status s = load_model(model, impl, options, name); !s) return s;
        continue;
      }
      return err(name + ": field 'model' missing");  // present, but not an object
    }
    auto value = to_nlohmann(f.value(), name);
    if (!value) return err(value.error());
    rest[std::string(key)] = std::move(*value);
  }
  // The object ended: anything after it is not JSON (simdjson does not look unless asked).
  if (const char* after = nullptr; !doc.current_location().get(after))
    return err(name + ": malformed JSON (content after the top-level object, at byte " +
               std::to_string(after - (padded ? text.data() : copy.data())) + ")");
  if (!have_model) return err(name + ": field 'model' missing");
  return Ok{};
}

Status build_checked(std::string_view tok_text, bool tok_padded, std::string_view cfg_text, const std::string& tok_name,
                     const std::string& cfg_name, Tokenizer::Impl* impl) {
  json rest;
  Status s = read_tokenizer_json(tok_text, tok_padded, tok_name, *impl, rest);
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
  // Mapped with simdjson's padding after it, so the parse reads it in place: no copy, no read.
  auto tok_file = MappedFile::open(tok_path, {.padding = simdjson::SIMDJSON_PADDING, .populate = true});
  if (!tok_file) return err(tok_file.error());
  std::shared_ptr<MappedFile> cfg_file;
  if (fs::exists(cfg_path, ec)) {
    auto c = MappedFile::open(cfg_path);
    if (!c) return err(c.error());
    cfg_file = std::move(c.value());
  }
  auto text_of = [](const MappedFile* f) {
    return f ? std::string_view(reinterpret_cast<const char*>(f->data()), f->size()) : std::string_view();
  };
  auto impl = std::make_shared<Impl>();
  Status s = build(text_of(tok_file->get()), /*tok_padded=*/true, text_of(cfg_file.get()), tok_path, cfg_path, impl.get());
  if (!s) return err(s.error());
  Tokenizer t;
  t.impl_ = std::move(impl);
  return t;
}

}  // namespace qnext
