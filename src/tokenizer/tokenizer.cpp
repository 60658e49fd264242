#include "tokenizer/tokenizer.h"

#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/unicode.h"

namespace qnext {

void Tokenizer::Impl::encode_piece(std::string_view piece, std::vector<int32_t>& out, PieceCache* c) const {
  bool cacheable = c && piece.size() <= PieceCache::kMaxPiece;
  if (cacheable && c->lookup(piece, out)) return;
  size_t start = out.size();
  int32_t whole = ignore_merges ? bpe.find(piece) : -1;
  if (whole >= 0)
    out.push_back(whole);
  else
    bpe.encode(piece, out);
  if (cacheable) c->insert(piece, out.data() + start, out.size() - start);
}

void Tokenizer::Impl::encode_normalized(std::string_view text, std::vector<int32_t>& out, PieceCache* c) const {
  if (!splitter) {
    if (!text.empty()) encode_piece(text, out, c);
    return;
  }
  std::vector<std::pair<size_t, size_t>> spans;
  splitter->find_spans(text, spans);
  for (auto [b, e] : spans) encode_piece(text.substr(b, e - b), out, c);
}

void Tokenizer::Impl::encode_segment(std::string_view text, std::vector<int32_t>& out, PieceCache* c) const {
  if (text.empty()) return;
  std::string normalized;
  if (nfc && unicode::needs_nfc(text)) {
    normalized = unicode::nfc(text);
    text = normalized;
  }
  if (normalized_added.empty()) {
    encode_normalized(text, out, c);
    return;
  }
  size_t pos = 0;
  for (const auto& m : normalized_added.find_all(text)) {
    encode_normalized(text.substr(pos, m.begin - pos), out, c);
    out.push_back(m.id);
    pos = m.end;
  }
  encode_normalized(text.substr(pos), out, c);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::string cleaned;
  if (!unicode::is_valid_utf8(text)) {
    cleaned = unicode::to_valid_utf8(text);
    text = cleaned;
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  // One lock per call rather than per piece; a concurrent caller that finds the cache
  // busy just encodes without it instead of waiting.
  std::unique_lock lock(impl_->cache_mutex, std::try_to_lock);
  PieceCache* cache = lock.owns_lock() ? &impl_->cache : nullptr;
  size_t pos = 0;
  for (const auto& m : impl_->raw_added.find_all(text)) {
    impl_->encode_segment(text.substr(pos, m.begin - pos), out, cache);
    out.push_back(m.id);
    pos = m.end;
  }
  impl_->encode_segment(text.substr(pos), out, cache);
  return out;
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || size_t(id) >= impl_->id_bytes.size()) return {};
  return impl_->id_bytes[id];
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (skip_special && is_special(id)) continue;
    bytes += token_bytes(id);
  }
  return unicode::is_valid_utf8(bytes) ? bytes : unicode::to_valid_utf8(bytes);
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  std::string key(token);
  if (auto it = impl_->added_ids.find(key); it != impl_->added_ids.end()) return it->second;
  if (int32_t id = impl_->vocab_ids.find(key); id >= 0) return id;
  return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && size_t(id) < impl_->id_flags.size() && (impl_->id_flags[id] & Impl::kSpecial);
}

bool Tokenizer::is_added(int32_t id) const {
  return id >= 0 && size_t(id) < impl_->id_flags.size() && (impl_->id_flags[id] & Impl::kAdded);
}

size_t Tokenizer::vocab_size() const { return impl_->id_bytes.size(); }
int32_t Tokenizer::eos_id() const { return impl_->eos; }
int32_t Tokenizer::pad_id() const { return impl_->pad; }
int32_t Tokenizer::bos_id() const { return impl_->bos; }

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tok, bool skip_special)
    : tok_(tok), skip_special_(skip_special) {}

std::string IncrementalDecoder::push(int32_t id) {
  if (skip_special_ && tok_.is_special(id)) return {};
  pending_ += tok_.token_bytes(id);
  size_t hold = unicode::incomplete_utf8_tail(pending_);
  std::string_view ready(pending_.data(), pending_.size() - hold);
  std::string out = unicode::is_valid_utf8(ready) ? std::string(ready) : unicode::to_valid_utf8(ready);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string IncrementalDecoder::flush() {
  std::string out = unicode::to_valid_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace qnext
