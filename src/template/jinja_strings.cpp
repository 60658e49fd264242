// Python str operations (see jinja_strings.h). Case mapping uses utf8proc's simple mappings.
#include "template/jinja_strings.h"

#include <utf8proc.h>

#include <algorithm>
#include <stdexcept>

#include "template/jinja_limits.h"
#include "template/jinja_value.h"

namespace qnext::jinja {
namespace {

char32_t upper(char32_t c) { return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c))); }
char32_t lower(char32_t c) { return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))); }
bool cased_letter(char32_t c) { return upper(c) != c || lower(c) != c; }

}  // namespace

std::string py_strip(const std::string& s, const std::optional<std::string>& chars, bool left, bool right) {
  // One pass over the code points, without decoding the string (templates strip every message).
  std::u32string set = chars ? utf8_decode(*chars) : std::u32string();
  auto strip_it = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : is_py_space(c); };
  size_t b = 0, e = 0, i = 0;  // the kept bytes are [b, e)
  bool prefix = left;
  while (i < s.size()) {
    const bool strip = strip_it(utf8_next(s, i));
    if (prefix) {
      if (strip) {
        b = e = i;
        continue;
      }
      prefix = false;
      if (!right) break;  // lstrip: the rest is kept as is
    }
    if (!right || !strip) e = i;
  }
  charge_scan(i);
  if (!right) e = s.size();
  return b < e ? s.substr(b, e - b) : std::string();  // (invalid UTF-8 inside is kept as it is)
}

namespace {

// Before adding a part to a split result: the parts must still fit the render's byte budget as
// list slots (what they will become), so a split into millions of pieces fails early.
void check_parts(const std::vector<std::string>& out) { check_room(mul_sat(out.size() + 1, sizeof(Value))); }

}  // namespace

std::vector<std::string> py_split(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit,
                                  bool from_right) {
  std::vector<std::string> out;
  charge_copy(s.size());
  if (sep) {
    if (sep->empty()) throw JinjaError("empty separator");
    if (!from_right) {
      size_t start = 0;
      for (size_t p; (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) &&
                     (p = s.find(*sep, start)) != std::string::npos;
           start = p + sep->size()) {
        check_parts(out);
        out.push_back(s.substr(start, p - start));
      }
      out.push_back(s.substr(start));
    } else {
      size_t end = s.size();
      while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
        if (end < sep->size()) break;
        size_t p = s.rfind(*sep, end - sep->size());
        if (p == std::string::npos) break;
        check_parts(out);
        out.push_back(s.substr(p + sep->size(), end - p - sep->size()));
        end = p;
      }
      out.push_back(s.substr(0, end));
      std::reverse(out.begin(), out.end());
    }
    return out;
  }
  // Whitespace split: runs of whitespace separate, and leading/trailing runs give no empty parts.
  std::u32string u = utf8_decode(s);
  if (from_right) std::reverse(u.begin(), u.end());
  size_t i = 0;
  while (true) {
    while (i < u.size() && is_py_space(u[i])) ++i;
    if (i >= u.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
      std::u32string rest = u.substr(i);  // the remainder keeps its trailing whitespace
      if (from_right) std::reverse(rest.begin(), rest.end());
      out.push_back(utf8_encode(rest));
      break;
    }
    size_t j = i;
    while (j < u.size() && !is_py_space(u[j])) ++j;
    std::u32string part = u.substr(i, j - i);
    if (from_right) std::reverse(part.begin(), part.end());
    check_parts(out);
    out.push_back(utf8_encode(part));
    i = j;
  }
  if (from_right) std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> py_split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::u32string u = utf8_decode(s), cur;
  for (size_t i = 0; i < u.size(); ++i) {
    char32_t c = u[i];
    bool brk = c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e ||
               c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) {
      cur += c;
      continue;
    }
    if (c == '\r' && i + 1 < u.size() && u[i + 1] == '\n') ++i;
    check_parts(out);
    out.push_back(utf8_encode(cur));
    cur.clear();
  }
  if (!cur.empty()) out.push_back(utf8_encode(cur));
  return out;
}

std::string py_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count) {
  std::string out;
  int64_t n = 0;
  charge_copy(s.size());
  if (old.empty()) {  // Python inserts repl before every code point and at the end
    std::u32string u = utf8_decode(s);
    for (char32_t c : u) {
      if (count < 0 || n < count) {
        check_room(add_sat(out.size(), repl.size() + 4));
        out += repl;
        ++n;
      }
      out += utf8_encode(std::u32string(1, c));
    }
    if (count < 0 || n < count) out += repl;
    return out;
  }
  size_t start = 0;
  for (size_t p; (count < 0 || n < count) && (p = s.find(old, start)) != std::string::npos; start = p + old.size()) {
    check_room(add_sat(out.size(), add_sat(p - start, repl.size())));
    out.append(s, start, p - start);
    out += repl;
    ++n;
  }
  check_room(add_sat(out.size(), s.size() - start));
  out.append(s, start);
  return out;
}

std::string py_upper(const std::string& s) {
  std::u32string u = utf8_decode(s);
  for (auto& c : u) c = upper(c);
  return utf8_encode(u);
}

std::string py_lower(const std::string& s) {
  std::u32string u = utf8_decode(s);
  for (auto& c : u) c = lower(c);
  return utf8_encode(u);
}

std::string py_title(const std::string& s) {
  std::u32string u = utf8_decode(s);
  bool prev_cased = false;
  for (auto& c : u) {
    c = prev_cased ? lower(c) : upper(c);
    prev_cased = cased_letter(c);
  }
  return utf8_encode(u);
}

std::string py_capitalize(const std::string& s) {
  std::u32string u = utf8_decode(s);
  for (size_t i = 0; i < u.size(); ++i) u[i] = i == 0 ? upper(u[i]) : lower(u[i]);
  return utf8_encode(u);
}

}  // namespace qnext::jinja
