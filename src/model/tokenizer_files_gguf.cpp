// The Hugging Face tokenizer files of a GGUF model: tokenizer.json and tokenizer_config.json made
// from its tokenizer.ggml.* metadata and tokenizer.chat_template, so that a checkpoint converted
// from the GGUF (model/quantize_gguf.cpp) tokenizes and renders chats exactly as the GGUF does.
// The split is tokenizer_gguf.cpp's: normal / unknown / byte tokens form the BPE vocab, control and
// user-defined ones are added tokens (special = control, matched in the raw text), unused padding
// rows are left out (so the files' vocabulary ends at the last used id, as HF's own files do).
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include "model/quantize.h"
#include "tokenizer/gguf_vocab.h"

namespace fs = std::filesystem;

namespace qnext {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;
using namespace gguf_vocab;

// The tokenizer.ggml.* values, checked for the types and lengths this writer relies on.
struct GgufVocab {
  const json* tokens = nullptr;  // [n] strings
  const json* types = nullptr;   // [n] token types
  const json* merges = nullptr;  // ["left right", ...] in rank order
};

Result<GgufVocab> read_vocab(const GgufCheckpoint& g) {
  const std::string& name = g.path();
  auto text = [&](const char* key) -> Result<std::string> {
    const json* v = g.meta(key);
    if (!v || !v->is_string()) return err(name + ": " + key + " is missing or not a string");
    return v->get<std::string>();
  };
  auto model = text("tokenizer.ggml.model");
  if (!model) return Error{model.error()};
  if (*model != "gpt2")
    return err(name + ": tokenizer.ggml.model '" + *model + "' cannot be written as tokenizer.json (only gpt2, the byte-level BPE)");
  auto pre = text("tokenizer.ggml.pre");
  if (!pre) return Error{pre.error()};
  if (*pre != "qwen2") return err(name + ": tokenizer.ggml.pre '" + *pre + "' is not supported (only qwen2)");
  GgufVocab v;
  for (auto [key, out] : {std::pair{"tokenizer.ggml.tokens", &v.tokens}, std::pair{"tokenizer.ggml.token_type", &v.types},
                          std::pair{"tokenizer.ggml.merges", &v.merges}}) {
    *out = g.meta(key);
    if (!*out || !(*out)->is_array()) return err(name + ": " + key + " is missing or not an array");
  }
  if (v.tokens->empty() || v.types->size() != v.tokens->size())
    return err(name + ": tokenizer.ggml.token_type has " + std::to_string(v.types->size()) + " entries for " +
               std::to_string(v.tokens->size()) + " tokens");
  for (size_t i = 0; i < v.tokens->size(); ++i) {
    const json& type = (*v.types)[i];
    if (!(*v.tokens)[i].is_string() || (*v.tokens)[i].get_ref<const std::string&>().empty())
      return err(name + ": tokenizer.ggml.tokens[" + std::to_string(i) + "] is not a non-empty string");
    if (!type.is_number_integer() || type.get<int64_t>() < kNormal || type.get<int64_t>() > kByte)
      return err(name + ": tokenizer.ggml.token_type[" + std::to_string(i) + "] is not a token type (1..6)");
  }
  return v;
}

// A JSON string literal; text that is not UTF-8 cannot be written and is named.
Result<std::string> quoted(const std::string& s, const std::string& what) {
  try {
    return json(s).dump();
  } catch (const json::exception&) {
    return err(what + " is not valid UTF-8");
  }
}

// Writes tokenizer.json: the Qwen2 layout (NFC, Split regex + ByteLevel, ByteLevel decoder, BPE).
// The vocab and merges are streamed as text: ordered_json objects insert in linear time.
Status write_tokenizer_json(const GgufCheckpoint& g, const GgufVocab& v, const fs::path& path) {
  const std::string& name = g.path();
  std::string vocab, merges;  // the bodies of model.vocab {...} and model.merges [...]
  ordered_json added = ordered_json::array();
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < v.tokens->size(); ++i) {
    const auto& text = (*v.tokens)[i].get_ref<const std::string&>();
    const int64_t type = (*v.types)[i].get<int64_t>();
    if (type == kUnused) continue;
    const std::string where = name + ": tokenizer.ggml.tokens[" + std::to_string(i) + "]";
    auto q = quoted(text, where);
    if (!q) return Error{q.error()};
    if (type == kControl || type == kUserDefined) {
      added.push_back({{"id", i}, {"content", text}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                       {"normalized", false}, {"special", type == kControl}});
      continue;
    }
    // A JSON object cannot hold two entries of one text (the GGUF loader keeps the first for lookups).
    if (!seen.insert(text).second) return err(where + " repeats the text " + *q + " of an earlier token");
    vocab += (vocab.empty() ? "\n    " : ",\n    ") + *q + ": " + std::to_string(i);
  }
  for (size_t r = 0; r < v.merges->size(); ++r) {
    const json& m = (*v.merges)[r];
    const std::string where = name + ": tokenizer.ggml.merges[" + std::to_string(r) + "]";
    const size_t sp = m.is_string() ? m.get_ref<const std::string&>().find(' ') : std::string::npos;
    if (sp == std::string::npos) return err(where + " is not a string 'left right'");
    const auto& s = m.get_ref<const std::string&>();
    auto left = quoted(s.substr(0, sp), where), right = quoted(s.substr(sp + 1), where);
    if (!left || !right) return Error{left ? right.error() : left.error()};
    merges += (merges.empty() ? "\n    [" : ",\n    [") + *left + ", " + *right + "]";
  }

  const ordered_json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  ordered_json head = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added},
                       {"normalizer", {{"type", "NFC"}}}};
  head["pre_tokenizer"] = {{"type", "Sequence"},
                           {"pretokenizers",
                            {{{"type", "Split"}, {"pattern", {{"Regex", kQwen2Pattern}}}, {"behavior", "Isolated"},
                              {"invert", false}},
                             byte_level}}};
  head["post_processor"] = byte_level;
  head["decoder"] = byte_level;
  const ordered_json model = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                              {"continuing_subword_prefix", ""}, {"end_of_word_suffix", ""}, {"fuse_unk", false},
                              {"byte_fallback", false}, {"ignore_merges", false}};
  std::ofstream out(path, std::ios::binary);
  out << "{\n";
  for (const auto& [key, value] : head.items()) out << "  " << json(key).dump() << ": " << value.dump() << ",\n";
  out << "  \"model\": {";
  for (const auto& [key, value] : model.items()) out << json(key).dump() << ": " << value.dump() << ", ";
  out << "\"vocab\": {" << vocab << "\n  },\n  \"merges\": [" << merges << "\n  ]}\n}\n";
  out.close();
  if (!out) return err(path.string() + ": write failed");
  return Ok{};
}

// Writes tokenizer_config.json: the special tokens by their text (as ChatTemplate::from_gguf and
// Tokenizer::from_gguf take them from the *_token_id keys) and the chat template.
Status write_tokenizer_config(const GgufCheckpoint& g, const GgufVocab& v, const fs::path& path) {
  const std::string& name = g.path();
  ordered_json cfg = ordered_json::object();
  const json* add_bos = g.meta("tokenizer.ggml.add_bos_token");
  cfg["add_bos_token"] = add_bos && add_bos->is_boolean() && add_bos->get<bool>();
  cfg["add_prefix_space"] = false;
  ordered_json decoder = ordered_json::object();
  for (size_t i = 0; i < v.tokens->size(); ++i) {
    const int64_t type = (*v.types)[i].get<int64_t>();
    if (type != kControl && type != kUserDefined) continue;
    decoder[std::to_string(i)] = {{"content", (*v.tokens)[i]}, {"lstrip", false}, {"normalized", false},
                                  {"rstrip", false}, {"single_word", false}, {"special", type == kControl}};
  }
  cfg["added_tokens_decoder"] = decoder;
  // llama.cpp's key spellings ("seperator" included), as ChatTemplate::from_gguf reads them.
  for (auto [key, field] : {std::pair{"tokenizer.ggml.bos_token_id", "bos_token"},
                            std::pair{"tokenizer.ggml.eos_token_id", "eos_token"},
                            std::pair{"tokenizer.ggml.unknown_token_id", "unk_token"},
                            std::pair{"tokenizer.ggml.padding_token_id", "pad_token"},
                            std::pair{"tokenizer.ggml.seperator_token_id", "sep_token"},
                            std::pair{"tokenizer.ggml.cls_token_id", "cls_token"},
                            std::pair{"tokenizer.ggml.mask_token_id", "mask_token"}}) {
    const json* id = g.meta(key);
    if (!id) {
      cfg[field] = nullptr;
      continue;
    }
    const bool in_range = id->is_number_integer() && !(id->is_number_unsigned() && id->get<uint64_t>() >= v.tokens->size()) &&
                          id->get<int64_t>() >= 0 && id->get<int64_t>() < int64_t(v.tokens->size());
    if (!in_range) return err(name + ": " + key + " is not an id of tokenizer.ggml.tokens");
    // A padding row has no text in the vocabulary that tokenizer.json could name.
    if ((*v.types)[id->get<size_t>()].get<int64_t>() == kUnused)
      return err(name + ": " + key + " names token " + id->dump() + ", an unused (padding) entry");
    cfg[field] = (*v.tokens)[id->get<size_t>()];
  }
  if (const json* tpl = g.meta("tokenizer.chat_template")) {
    if (!tpl->is_string()) return err(name + ": tokenizer.chat_template is not a string");
    cfg["chat_template"] = *tpl;
  }
  cfg["clean_up_tokenization_spaces"] = false;
  cfg["errors"] = "replace";
  cfg["split_special_tokens"] = false;
  cfg["tokenizer_class"] = "Qwen2Tokenizer";
  std::string text;
  try {
    text = cfg.dump(2);
  } catch (const json::exception&) {
    return err(name + ": a special token or the chat template is not valid UTF-8");
  }
  std::ofstream out(path, std::ios::binary);
  out << text << "\n";
  out.close();
  if (!out) return err(path.string() + ": write failed");
  return Ok{};
}

}  // namespace

Result<bool> write_gguf_tokenizer_files(const GgufCheckpoint& gguf, const std::string& out_dir) {
  if (!gguf.meta("tokenizer.ggml.model")) return false;  // a file without a tokenizer: nothing to write
  auto v = read_vocab(gguf);
  if (!v) return Error{v.error()};
  if (Status s = write_tokenizer_json(gguf, *v, fs::path(out_dir) / "tokenizer.json"); !s) return Error{s.error()};
  if (Status s = write_tokenizer_config(gguf, *v, fs::path(out_dir) / "tokenizer_config.json"); !s)
    return Error{s.error()};
  return true;
}

}  // namespace qnext
