#include "runtime/grammar_text.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace qnext::grammar_text {

// A grammar literal matching exactly the UTF-8 bytes `text` (ASCII-only output: other code points
// as \u / \U escapes). The text comes from json::dump, so it is valid UTF-8.
std::string literal(std::string_view text) {
  static const char* const kHex = "0123456789ABCDEF";
  auto hex = [&](uint32_t v, int digits) {
    std::string s;
    for (int i = digits - 1; i >= 0; --i) s += kHex[(v >> (4 * i)) & 0xF];
    return s;
  };
  std::string out = "\"";
  for (size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == '"') out += "\\\"";
      else if (c == '\\') out += "\\\\";
      else if (c < 0x20 || c == 0x7F) out += "\\x" + hex(c, 2);
      else out += static_cast<char>(c);
      ++i;
      continue;
    }
    int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    uint32_t cp = c & (0x7F >> len);
    for (int k = 1; k < len && i + k < text.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    out += cp <= 0xFFFF ? "\\u" + hex(cp, 4) : "\\U" + hex(cp, 8);
    i += len;
  }
  return out + "\"";
}

std::string sanitize(std::string_view s) {
  std::string out;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    out += ok ? c : '-';
    if (out.size() >= 40) break;
  }
  return out.empty() ? "x" : out;
}

// A quantifier suffix for {lo, hi} (hi < 0: unbounded); "" for exactly one.
std::string quantifier(int64_t lo, int64_t hi) {
  if (hi < 0) return lo == 0 ? "*" : lo == 1 ? "+" : "{" + std::to_string(lo) + ",}";
  if (lo == 1 && hi == 1) return "";
  if (lo == 0 && hi == 1) return "?";
  if (lo == hi) return "{" + std::to_string(lo) + "}";
  return "{" + std::to_string(lo) + "," + std::to_string(hi) + "}";
}

// `item` repeated lo..hi times (hi < 0: unbounded). The grammar expands {m,n} into one helper per
// count, so large counts are written as blocks of kBlock items plus a remainder: an exact and
// unambiguous decomposition that expands to a few hundred elements instead of n.
std::string repeated(const std::string& item, int64_t lo, int64_t hi) {
  if ((hi < 0 ? lo : hi) <= kBlock) return item + quantifier(lo, hi);
  std::string block = "( " + item + "{" + std::to_string(kBlock) + "} )";
  std::vector<std::string> parts;
  if (lo >= kBlock) parts.push_back(block + quantifier(lo / kBlock, lo / kBlock));
  if (lo % kBlock) parts.push_back(item + quantifier(lo % kBlock, lo % kBlock));
  if (hi < 0) {
    parts.push_back(item + "*");
  } else if (hi > lo) {
    // d more in [0, hi - lo]: fewer than `whole` blocks and up to kBlock - 1 items, or `whole`
    // blocks and up to `rest` items.
    int64_t whole = (hi - lo) / kBlock, rest = (hi - lo) % kBlock;
    std::vector<std::string> alts;
    if (whole > 0) {
      std::string fewer = whole > 1 ? block + quantifier(0, whole - 1) + " " : "";
      alts.push_back(fewer + item + quantifier(0, kBlock - 1));
      alts.push_back(block + quantifier(whole, whole) + (rest ? " " + item + quantifier(0, rest) : ""));
    } else {
      alts.push_back(item + quantifier(0, rest));
    }
    parts.push_back(alts.size() == 1 ? alts[0] : "( " + alts[0] + " | " + alts[1] + " )");
  }
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : " ") + p;
  return out;
}

std::string alternatives(const std::vector<std::string>& alts) {
  if (alts.size() == 1) return alts[0];
  std::string out = "(";
  for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : " ") + alts[i];
  return out + " )";
}

// --- integer ranges ------------------------------------------------------------------------------

// Digit strings of one length in [lo, hi] (lo <= hi, same length), no leading-zero rule here.
static std::string digit_range(const std::string& lo, const std::string& hi) {
  size_t common = 0;
  while (common < lo.size() && lo[common] == hi[common]) ++common;
  std::string prefix = common ? literal(lo.substr(0, common)) : "";
  if (common == lo.size()) return prefix;
  std::string l = lo.substr(common), h = hi.substr(common);
  size_t rest = l.size() - 1;
  auto cls = [](char a, char b) { return a == b ? literal(std::string(1, a)) : std::string("[") + a + "-" + b + "]"; };
  auto any = [&](size_t n) { return n ? " [0-9]" + quantifier(static_cast<int64_t>(n), static_cast<int64_t>(n)) : std::string(); };
  bool low_full = l.find_first_not_of('0', 1) == std::string::npos;   // l = a00..0
  bool high_full = h.find_first_not_of('9', 1) == std::string::npos;  // h = b99..9
  std::vector<std::string> alts;
  if (!low_full) alts.push_back(literal(l.substr(0, 1)) + " " + digit_range(l.substr(1), std::string(rest, '9')));
  char first = low_full ? l[0] : static_cast<char>(l[0] + 1);
  char last = high_full ? h[0] : static_cast<char>(h[0] - 1);
  if (first <= last) alts.push_back(cls(first, last) + any(rest));
  if (!high_full) alts.push_back(literal(h.substr(0, 1)) + " " + digit_range(std::string(rest, '0'), h.substr(1)));
  std::string body = alternatives(alts);
  return prefix.empty() ? body : prefix + " " + body;
}

// Decimal naturals in [lo, hi] without leading zeros (0 <= lo <= hi <= kMaxIntegerMagnitude).
std::string natural_range(int64_t lo, int64_t hi) {
  std::vector<std::string> alts;
  int lo_len = static_cast<int>(std::to_string(lo).size()), hi_len = static_cast<int>(std::to_string(hi).size());
  for (int len = lo_len; len <= hi_len; ++len) {
    int64_t first = len == 1 ? 0 : static_cast<int64_t>(std::pow(10.0, len - 1));
    int64_t last = static_cast<int64_t>(std::pow(10.0, len)) - 1;
    int64_t a = std::max(lo, first), b = std::min(hi, last);
    if (len > 1 && a == first && b == last) {
      // Whole lengths in a row share one alternative: [1-9][0-9]{len-1,len'-1}.
      int end = len;
      while (end < hi_len && (end + 1 < hi_len || std::to_string(hi).find_first_not_of('9') == std::string::npos)) ++end;
      alts.push_back("[1-9] [0-9]" + quantifier(len - 1, end - 1));
      len = end;
      continue;
    }
    alts.push_back(digit_range(std::to_string(a), std::to_string(b)));
  }
  return alternatives(alts);
}

}  // namespace qnext::grammar_text
