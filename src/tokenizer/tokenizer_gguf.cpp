// Building a Tokenizer from a GGUF file's tokenizer.ggml.* metadata: llama.cpp's spelling of the
// byte-level BPE that tokenizer.json describes (same tokens, same merges, token types for the
// added tokens). The normalizer and split regex are not in the file; `tokenizer.ggml.pre` names
// them, and only the Qwen2 family's is known here.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_impl.h"

namespace qnext {

namespace {

using nlohmann::json;

// The split regex and token types (tokenizer/gguf_vocab.h).
using gguf_vocab::kQwen2Pattern;
using enum gguf_vocab::TokenType;


struct Reader {
  const GgufMetadata& meta;
  const std::string& name;

  const json* find(const char* key) const {
    auto it = meta.find(key);
    return it == meta.end() ? nullptr : &it->second;
  }
  Error error(const std::string& what) const { return err(name + ": " + what); }

  // A string-valued key that must be present.
  Result<std::string> string(const char* key, const char* why) const {
    const json* v = find(key);
    if (!v) return error(std::string(key) + " missing (" + why + ")");
    if (!v->is_string()) return error(std::string(key) + " is " + gguf_shown(*v) + ", not a string");
    return v->get<std::string>();
  }
  // An array-valued key that must be present.
  Result<const json*> array(const char* key) const {
    const json* v = find(key);
    if (!v) return error(std::string(key) + " missing");
    if (!v->is_array()) return error(std::string(key) + " is not an array");
    return v;
  }
  // An optional token id: -1 when absent, else an integer in [0, n_tokens).
  Result<int32_t> token_id(const char* key, size_t n_tokens) const {
    const json* v = find(key);
    if (!v) return -1;
    if (!v->is_number_integer() || (v->is_number_unsigned() && v->get<uint64_t>() >= n_tokens) ||
        v->get<int64_t>() < 0 || v->get<int64_t>() >= int64_t(n_tokens))
      return error(std::string(key) + " = " + gguf_shown(*v) + " is not a token id (0.." + std::to_string(n_tokens - 1) + ")");
    return v->get<int32_t>();
  }
};

// The model and pre-tokenizer names: only what this engine implements is accepted.
Status load_kind(const Reader& r, Tokenizer::Impl& impl) {
  auto model = r.string("tokenizer.ggml.model", "no tokenizer in this GGUF");
  if (!model) return Error{model.error()};
  if (*model != "gpt2")
    return r.error("tokenizer.ggml.model '" + *model + "' is not supported (only gpt2, the byte-level BPE)");
  auto pre = r.string("tokenizer.ggml.pre", "the pre-tokenizer regex is unknown");
  if (!pre) return Error{pre.error()};
  if (*pre != "qwen2")
    return r.error("tokenizer.ggml.pre '" + *pre + "' is not supported (only qwen2)");
  impl.nfc = true;  // Qwen's tokenizer.json normalizes to NFC; GGUF has no key for it
  auto splitter = RegexSplitter::compile(kQwen2Pattern);
  if (!splitter) return r.error(splitter.error());
  impl.splitter = std::move(splitter.value());
  return Ok{};
}

// Tokens by type: normal ones form the BPE vocab, control and user-defined ones are added tokens
// (matched whole in the text), unused ones (padding entries) are left out as HF leaves them out.
Status load_tokens(const Reader& r, Tokenizer::Impl& impl) {
  auto tokens = r.array("tokenizer.ggml.tokens");
  if (!tokens) return Error{tokens.error()};
  auto types = r.array("tokenizer.ggml.token_type");
  if (!types) return Error{types.error()};
  const json& tok = **tokens;
  const json& type = **types;
  if (tok.empty()) return r.error("tokenizer.ggml.tokens is empty");
  if (tok.size() > size_t(kMaxTokenId) + 1)
    return r.error("tokenizer.ggml.tokens has " + std::to_string(tok.size()) + " entries (at most " +
                   std::to_string(kMaxTokenId + 1) + ")");
  if (type.size() != tok.size())
    return r.error("tokenizer.ggml.token_type has " + std::to_string(type.size()) + " entries for " +
                   std::to_string(tok.size()) + " tokens");

  // The tables keep their keys in arenas with 32-bit offsets (string_id_map.h).
  size_t total = 0;
  for (const json& t : tok) total += t.is_string() ? t.get_ref<const std::string&>().size() : 0;
  if (total > kMaxVocabBytes)
    return r.error("tokenizer.ggml.tokens hold " + std::to_string(total) + " bytes (at most " +
                   std::to_string(kMaxVocabBytes) + ")");
  impl.id_bytes.reserve(tok.size(), 8 * tok.size());
  impl.id_bytes.set(int32_t(tok.size() - 1), {});  // every id has its place; set below
  for (size_t i = 0; i < tok.size(); ++i) {
    const std::string at = "[" + std::to_string(i) + "]";
    if (!tok[i].is_string()) return r.error("tokenizer.ggml.tokens" + at + " is " + gguf_shown(tok[i]) + ", not a string");
    if (!type[i].is_number_integer() || type[i].get<int64_t>() < kNormal || type[i].get<int64_t>() > kByte)
      return r.error("tokenizer.ggml.token_type" + at + " is " + gguf_shown(type[i]) + ", not a token type (1..6)");
    const auto& text = tok[i].get_ref<const std::string&>();
    if (text.empty()) return r.error("tokenizer.ggml.tokens" + at + " is empty");
    const auto id = int32_t(i);
    switch (type[i].get<int64_t>()) {
      case kUnused:
        break;
      case kControl:
      case kUserDefined: {
        // Stored as their text, not in the byte-level spelling. Control tokens are HF's special
        // ones, user-defined ones (<think>, <tool_call>) are added but not special.
        AddedToken a;
        a.id = id;
        a.content = text;
        a.special = type[i].get<int64_t>() == kControl;
        a.normalized = false;  // as Qwen's tokenizer.json; llama.cpp matches them in the raw text too
        impl.raw_added.add(a);
        impl.added_ids[a.content] = id;
        impl.id_bytes.set(id, a.content);
        impl.added.push_back(std::move(a));
        break;
      }
      default: {  // normal, unknown, byte: entries of the BPE vocab
        std::string bytes = vocab_string_to_bytes(text);
        impl.bpe.add_token(bytes, id);
        impl.vocab_ids.emplace(text, id);
        impl.id_bytes.set(id, bytes);
      }
    }
  }
  if (!impl.bpe.has_all_bytes()) return r.error("tokenizer.ggml.tokens lacks some of the 256 single-byte tokens");
  impl.id_flags.assign(impl.id_bytes.size(), 0);
  for (const auto& a : impl.added)
    impl.id_flags[a.id] = Tokenizer::Impl::kAdded | (a.special ? Tokenizer::Impl::kSpecial : 0);
  return Ok{};
}

// Merges in rank order, each "left right" in the byte-level spelling.
Status load_merges(const Reader& r, Tokenizer::Impl& impl) {
  auto merges = r.array("tokenizer.ggml.merges");
  if (!merges) return Error{merges.error()};
  int32_t rank = 0;
  for (const json& m : **merges) {
    const std::string at = "tokenizer.ggml.merges[" + std::to_string(rank) + "]";
    if (!m.is_string()) return r.error(at + " is " + gguf_shown(m) + ", not a string");
    const auto& s = m.get_ref<const std::string&>();
    const size_t sp = s.find(' ');
    if (sp == std::string::npos) return r.error(at + " " + gguf_shown(m) + " is not 'left right'");
    const std::string_view spelling(s);
    const int32_t left = impl.vocab_ids.find(spelling.substr(0, sp));
    const int32_t right = impl.vocab_ids.find(spelling.substr(sp + 1));
    if (left < 0 || right < 0 || !impl.bpe.add_merge(left, right, rank))
      return r.error(at + " " + gguf_shown(m) + " uses a token, or makes one, missing from tokenizer.ggml.tokens");
    ++rank;
  }
  return Ok{};
}

Status load_special_ids(const Reader& r, Tokenizer::Impl& impl) {
  const size_t n = impl.id_bytes.size();
  auto eos = r.token_id("tokenizer.ggml.eos_token_id", n);
  auto pad = r.token_id("tokenizer.ggml.padding_token_id", n);
  auto bos = r.token_id("tokenizer.ggml.bos_token_id", n);
  for (auto* id : {&eos, &pad, &bos})
    if (!*id) return Error{id->error()};
  impl.eos = *eos;
  impl.pad = *pad;
  impl.bos = *bos;  // the file's, even with add_bos_token false (Qwen's tokenizer_config.json says none)
  return Ok{};
}

}  // namespace

Result<Tokenizer> Tokenizer::from_gguf(const std::map<std::string, nlohmann::json>& metadata, const std::string& name) {
  auto impl = std::make_shared<Impl>();
  const Reader r{metadata, name};
  try {  // every access above checks its type first; this is the net for what was missed
    Status s = load_kind(r, *impl);
    if (s) s = load_tokens(r, *impl);
    if (s) s = load_merges(r, *impl);
    if (s) s = load_special_ids(r, *impl);
    if (!s) return Error{s.error()};
  } catch (const json::exception& e) {
    return err(name + ": a tokenizer key has an unexpected type (" + e.what() + ")");
  }
  Tokenizer t;
  t.impl_ = std::move(impl);
  return t;
}

Result<Tokenizer> load_gguf_tokenizer(const std::string& path) {
  auto file = GgufCheckpoint::open(path);
  if (!file) return Error{file.error()};
  return Tokenizer::from_gguf(file->metadata(), file->path());
}

}  // namespace qnext
