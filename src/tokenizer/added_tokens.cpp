#include "tokenizer/added_tokens.h"

#include <utf8proc.h>

#include <algorithm>

#include "tokenizer/unicode.h"

namespace qnext {

namespace {

bool is_space(char32_t c) {
  return c == ' ' || (c >= '\t' && c <= '\r') || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// Word characters for single_word, as HF: alphanumeric (Unicode letters and numbers) or '_'.
bool is_word(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  switch (utf8proc_category(utf8proc_int32_t(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

// Code point ending right before byte i (text is valid UTF-8).
char32_t before(std::string_view text, size_t i, size_t* len) {
  size_t b = i - 1;
  while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
  char32_t cp = 0xFFFD;
  unicode::decode_utf8(text, b, &cp);
  *len = i - b;
  return cp;
}

char32_t after(std::string_view text, size_t i, size_t* len) {
  char32_t cp = 0xFFFD;
  size_t n = unicode::decode_utf8(text, i, &cp);
  *len = n ? n : 1;
  return cp;
}

}  // namespace

void AddedTokenMatcher::add(const AddedToken& token) {
  if (token.content.empty()) return;
  tokens_.push_back(token);
  std::stable_sort(tokens_.begin(), tokens_.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  first_byte_[static_cast<unsigned char>(token.content[0])] = true;
}

std::vector<AddedTokenMatcher::Match> AddedTokenMatcher::find_all(std::string_view text) const {
  std::vector<Match> out;
  size_t prev_end = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (!first_byte_[static_cast<unsigned char>(text[i])]) continue;
    for (const AddedToken& t : tokens_) {
      if (text.compare(i, t.content.size(), t.content) != 0) continue;
      size_t begin = i, end = i + t.content.size(), n;
      if (t.single_word) {
        bool left_ok = begin == 0 || !is_word(before(text, begin, &n));
        bool right_ok = end == text.size() || !is_word(after(text, end, &n));
        if (!left_ok || !right_ok) continue;
      }
      if (t.lstrip) {
        while (begin > prev_end && is_space(before(text, begin, &n))) begin -= n;
      }
      if (t.rstrip) {
        while (end < text.size() && is_space(after(text, end, &n))) end += n;
      }
      out.push_back({begin, end, t.id});
      prev_end = end;
      i = end - 1;
      break;
    }
  }
  return out;
}

}  // namespace qnext
