#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace qnext {

namespace {

// Unicode White_Space, written for use inside a character class.
constexpr std::string_view kWhiteSpace =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}"
    "\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<char*>(buf);
}

}  // namespace

std::string rewrite_whitespace_classes(std::string_view p) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char n = p[i + 1];
      ++i;
      if (n == 's') {
        if (in_class) {
          out += kWhiteSpace;
        } else {
          out += '[';
          out += kWhiteSpace;
          out += ']';
        }
      } else if (n == 'S' && !in_class) {
        out += "[^";
        out += kWhiteSpace;
        out += ']';
      } else {
        out += c;
        out += n;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal, not the end of the class.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

struct RegexSplitter::Code {
  pcre2_code* re = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(re); }
};

Result<RegexSplitter> RegexSplitter::compile(const std::string& pattern) {
  std::string rewritten = rewrite_whitespace_classes(pattern);
  int errcode = 0;
  PCRE2_SIZE erroffset = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(),
                                 PCRE2_UTF | PCRE2_UCP, &errcode, &erroffset, nullptr);
  if (!re) {
    return err("pre-tokenizer regex does not compile at offset " + std::to_string(erroffset) +
               ": " + pcre2_message(errcode));
  }
  auto code = std::make_shared<Code>();
  code->re = re;
  code->jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
  RegexSplitter s;
  s.code_ = std::move(code);
  return s;
}

void RegexSplitter::find_spans(std::string_view text,
                               std::vector<std::pair<size_t, size_t>>& spans) const {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_->re, nullptr);
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  size_t gap_start = 0;
  while (pos < text.size()) {
    // The text was validated once by the caller, so skip PCRE2's per-call UTF check
    // (it would otherwise rescan the rest of the text for every match).
    int rc = code_->jit ? pcre2_jit_match(code_->re, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr)
                        : pcre2_match(code_->re, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) break;  // no further match (or a resource error): the rest becomes one piece
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t b = ov[0], e = ov[1];
    if (b > gap_start) spans.emplace_back(gap_start, b);
    if (e > b) {
      spans.emplace_back(b, e);
      pos = e;
    } else {
      // Empty match: step over one code point so the loop always advances.
      pos = e + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
      if (b > gap_start) gap_start = b;
      continue;
    }
    gap_start = e;
  }
  if (gap_start < text.size()) spans.emplace_back(gap_start, text.size());
  pcre2_match_data_free(md);
}

}  // namespace qnext
