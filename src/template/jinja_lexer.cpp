// Jinja lexer (see jinja_lexer.h). Whitespace rules follow jinja2's lexer:
//  - newlines are normalized to \n and one trailing newline of the template is dropped;
//  - `{%-`/`{{-`/`{#-` strip all whitespace before the tag, `-%}`/`-}}`/`-#}` all whitespace after;
//  - trim_blocks: a block or comment tag eats one newline right after it (unless closed with `+%}`);
//  - lstrip_blocks: spaces/tabs between a line start and a block or comment tag are dropped
//    (unless opened with `{%+`).
#include "template/jinja_lexer.h"

#include <algorithm>
#include <cctype>

#include "template/jinja_value.h"

namespace qnext::jinja {
namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string normalize_newlines(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\r') {
      out += '\n';
      if (i + 1 < in.size() && in[i + 1] == '\n') ++i;
    } else {
      out += in[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();  // keep_trailing_newline=False
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : s_(std::move(src)) {
    for (size_t i = 0; i < s_.size(); ++i)
      if (s_[i] == '\n') line_starts_.push_back(i + 1);
  }

  Result<std::vector<Token>> run() {
    size_t pos = 0;
    while (pos < s_.size()) {
      size_t tag = find_tag(pos);
      std::string text = s_.substr(pos, tag - pos);
      if (tag == s_.size()) {
        emit_text(text, pos);
        break;
      }
      char kind = s_[tag + 1];  // '{', '%' or '#'
      char sign = tag + 2 < s_.size() ? s_[tag + 2] : 0;
      trim_before(text, pos, kind, sign);
      emit_text(text, pos);
      size_t body = tag + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      if (kind == '#') {
        size_t end = s_.find("#}", body);
        if (end == std::string::npos) return fail("unclosed comment", tag);
        bool minus = end > body && s_[end - 1] == '-';
        bool plus = end > body && s_[end - 1] == '+';
        pos = trim_after(end + 2, minus, plus, true);
        continue;
      }
      if (kind == '%' && is_raw(body)) {
        auto r = lex_raw(tag, body);
        if (!r.ok()) return Error{r.error()};
        pos = r.value();
        continue;
      }
      auto r = lex_tag(tag, body, kind == '%');
      if (!r.ok()) return Error{r.error()};
      pos = r.value();
    }
    out_.push_back(Token{Tok::Eof, "", 0, 0, line_of(s_.size())});
    return std::move(out_);
  }

 private:
  int line_of(size_t pos) const {
    return static_cast<int>(std::upper_bound(line_starts_.begin(), line_starts_.end(), pos) -
                            line_starts_.begin()) + 1;
  }

  Error fail(const std::string& msg, size_t pos) const {
    return err("template syntax error at line " + std::to_string(line_of(pos)) + ": " + msg);
  }

  size_t find_tag(size_t pos) const {
    for (size_t i = pos; i + 1 < s_.size(); ++i)
      if (s_[i] == '{' && (s_[i + 1] == '{' || s_[i + 1] == '%' || s_[i + 1] == '#')) return i;
    return s_.size();
  }

  void emit_text(const std::string& text, size_t pos) {
    if (!text.empty()) out_.push_back(Token{Tok::Text, text, 0, 0, line_of(pos)});
  }

  // Whitespace control on the text in front of a tag.
  void trim_before(std::string& text, size_t text_pos, char kind, char sign) const {
    if (sign == '-') {
      size_t n = text.size();
      while (n > 0 && is_ws(text[n - 1])) --n;
      text.resize(n);
    } else if (sign != '+' && kind != '{') {  // lstrip_blocks
      size_t nl = text.rfind('\n');
      size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      bool line_starting = text_pos == 0 || s_[text_pos - 1] == '\n';
      if (l_pos > 0 || line_starting) {
        bool all_ws = l_pos < text.size() &&
                      std::all_of(text.begin() + static_cast<long>(l_pos), text.end(), is_ws);
        if (all_ws) text.resize(l_pos);
      }
    }
  }

  // Whitespace control after a tag ends at `pos`; returns where the next text starts.
  size_t trim_after(size_t pos, bool minus, bool plus, bool is_block) const {
    if (minus) {
      while (pos < s_.size() && is_ws(s_[pos])) ++pos;
    } else if (is_block && !plus && pos < s_.size() && s_[pos] == '\n') {  // trim_blocks
      ++pos;
    }
    return pos;
  }

  size_t skip_ws(size_t p) const {
    while (p < s_.size() && is_ws(s_[p])) ++p;
    return p;
  }

  bool word_at(size_t p, const std::string& w) const {
    if (s_.compare(p, w.size(), w) != 0) return false;
    size_t e = p + w.size();
    return e >= s_.size() || !(std::isalnum(static_cast<unsigned char>(s_[e])) || s_[e] == '_');
  }

  bool is_raw(size_t body) const { return word_at(skip_ws(body), "raw"); }

  // {% raw %}...{% endraw %}: the inside is emitted verbatim.
  Result<size_t> lex_raw(size_t tag, size_t body) {
    size_t p = skip_ws(skip_ws(body) + 3);
    bool minus = s_.compare(p, 3, "-%}") == 0;
    if (!minus && s_.compare(p, 2, "%}") != 0) return fail("expected '%}' after 'raw'", p);
    size_t start = minus ? skip_ws(p + 3) : p + 2;
    for (size_t i = start; (i = s_.find("{%", i)) != std::string::npos; ++i) {
      char sign = i + 2 < s_.size() ? s_[i + 2] : 0;
      size_t q = skip_ws(i + 2 + ((sign == '-' || sign == '+') ? 1 : 0));
      if (!word_at(q, "endraw")) continue;
      q = skip_ws(q + 6);
      bool emin = s_.compare(q, 3, "-%}") == 0, eplus = s_.compare(q, 3, "+%}") == 0;
      if (!emin && !eplus && s_.compare(q, 2, "%}") != 0) return fail("expected '%}' after 'endraw'", q);
      std::string text = s_.substr(start, i - start);
      trim_before(text, start, '%', sign);
      emit_text(text, start);
      return trim_after(q + (emin || eplus ? 3 : 2), emin, eplus, true);
    }
    return fail("missing endraw for raw block", tag);
  }

  // Tokens of one {{ ... }} or {% ... %} tag, from `body` to the closing delimiter.
  Result<size_t> lex_tag(size_t tag, size_t body, bool block) {
    out_.push_back(Token{block ? Tok::BlockBegin : Tok::VarBegin, "", 0, 0, line_of(tag)});
    const char close = block ? '%' : '}';
    int depth = 0;  // brackets: a `}}` inside a dict literal does not close the tag
    size_t p = body;
    while (true) {
      p = skip_ws(p);
      if (p >= s_.size()) return fail(block ? "unclosed block tag '{%'" : "unclosed variable tag '{{'", tag);
      int line = line_of(p);
      // Closing delimiter, with optional whitespace-control sign.
      if (depth == 0) {
        size_t q = p;
        bool minus = s_[q] == '-', plus = s_[q] == '+';
        if (minus || plus) ++q;
        if (q + 1 < s_.size() && s_[q] == close && s_[q + 1] == '}' && !(plus && !block)) {
          out_.push_back(Token{block ? Tok::BlockEnd : Tok::VarEnd, "", 0, 0, line});
          return trim_after(q + 2, minus, plus, block);
        }
      }
      char c = s_[p];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = p;
        while (e < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[e])) || s_[e] == '_')) ++e;
        out_.push_back(Token{Tok::Name, s_.substr(p, e - p), 0, 0, line});
        p = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        auto r = lex_number(p, line);
        if (!r.ok()) return Error{r.error()};
        p = r.value();
      } else if (c == '\'' || c == '"') {
        auto r = lex_string(p, line);
        if (!r.ok()) return Error{r.error()};
        p = r.value();
      } else {
        static const char* two[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (const char* t : two)
          if (s_.compare(p, 2, t) == 0) op = t;
        if (op.empty()) {
          if (std::string("+-*/%~()[]{},.:|=<>").find(c) == std::string::npos)
            return fail(std::string("unexpected character '") + c + "'", p);
          op = std::string(1, c);
        }
        if (op == "(" || op == "[" || op == "{") ++depth;
        if ((op == ")" || op == "]" || op == "}") && depth > 0) --depth;
        out_.push_back(Token{Tok::Op, op, 0, 0, line});
        p += op.size();
      }
    }
  }

  Result<size_t> lex_number(size_t p, int line) {
    size_t e = p;
    auto digits = [&] {
      while (e < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[e])) || s_[e] == '_')) ++e;
    };
    digits();
    bool is_float = false;
    if (e + 1 < s_.size() && s_[e] == '.' && std::isdigit(static_cast<unsigned char>(s_[e + 1]))) {
      is_float = true;
      ++e;
      digits();
    }
    if (e < s_.size() && (s_[e] == 'e' || s_[e] == 'E')) {
      size_t q = e + 1;
      if (q < s_.size() && (s_[q] == '+' || s_[q] == '-')) ++q;
      if (q < s_.size() && std::isdigit(static_cast<unsigned char>(s_[q]))) {
        is_float = true;
        e = q;
        digits();
      }
    }
    std::string text;
    for (size_t i = p; i < e; ++i)
      if (s_[i] != '_') text += s_[i];
    Token t{is_float ? Tok::Float : Tok::Int, text, 0, 0, line};
    try {
      if (is_float) t.fval = std::stod(text);
      else t.ival = std::stoll(text);
    } catch (...) {
      return fail("number out of range: " + text, p);
    }
    out_.push_back(t);
    return e;
  }

  // Python 'unicode-escape' decoding of the literal; unknown escapes stay as written.
  Result<size_t> lex_string(size_t p, int line) {
    char q = s_[p];
    std::string val;
    size_t i = p + 1;
    while (i < s_.size() && s_[i] != q) {
      if (s_[i] != '\\' || i + 1 >= s_.size()) {
        val += s_[i++];
        continue;
      }
      char e = s_[i + 1];
      i += 2;
      switch (e) {
        case 'n': val += '\n'; break;
        case 't': val += '\t'; break;
        case 'r': val += '\r'; break;
        case '\\': val += '\\'; break;
        case '\'': val += '\''; break;
        case '"': val += '"'; break;
        case 'a': val += '\a'; break;
        case 'b': val += '\b'; break;
        case 'f': val += '\f'; break;
        case 'v': val += '\v'; break;
        case '\n': break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (i + n > s_.size()) return fail("truncated \\" + std::string(1, e) + " escape", i);
          std::string hex = s_.substr(i, n);
          if (!std::all_of(hex.begin(), hex.end(), [](char h) { return std::isxdigit(static_cast<unsigned char>(h)); }))
            return fail("invalid \\" + std::string(1, e) + " escape", i);
          unsigned long cp = std::stoul(hex, nullptr, 16);
          if (cp > 0x10ffff) return fail("invalid code point in string escape", i);
          val += utf8_encode(std::u32string(1, static_cast<char32_t>(cp)));
          i += n;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {  // octal, up to 3 digits
            unsigned cp = static_cast<unsigned>(e - '0');
            for (int k = 0; k < 2 && i < s_.size() && s_[i] >= '0' && s_[i] <= '7'; ++k, ++i)
              cp = cp * 8 + static_cast<unsigned>(s_[i] - '0');
            val += utf8_encode(std::u32string(1, static_cast<char32_t>(cp)));
          } else {
            val += '\\';
            val += e;
          }
      }
    }
    if (i >= s_.size()) return fail("unterminated string literal", p);
    out_.push_back(Token{Tok::String, val, 0, 0, line});
    return i + 1;
  }

  std::string s_;
  std::vector<size_t> line_starts_;
  std::vector<Token> out_;
};

}  // namespace

Result<std::vector<Token>> lex(const std::string& source) { return Lexer(normalize_newlines(source)).run(); }

}  // namespace qnext::jinja
