#include "tokenizer/unicode.h"

#include <utf8proc.h>

#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <vector>

namespace qnext::unicode {

const std::array<char32_t, 256>& byte_to_codepoint() {
  // Printable Latin-1 bytes map to themselves; the rest are shifted to 256+n so every
  // byte has a visible, non-whitespace stand-in (the convention the vocab is written in).
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      t[b] = printable ? char32_t(b) : next++;
    }
    return t;
  }();
  return table;
}

namespace {

// The stand-ins are U+0021..U+0143 (the 68 shifted bytes end at 256 + 67): a flat table of them,
// since this runs for every character of a 150k-token vocabulary at start-up.
constexpr char32_t kStandInEnd = 256 + 68;

const std::array<int16_t, kStandInEnd>& stand_in_to_byte() {
  static const std::array<int16_t, kStandInEnd> table = [] {
    std::array<int16_t, kStandInEnd> t;
    t.fill(-1);
    const auto& to_cp = byte_to_codepoint();
    for (int b = 0; b < 256; ++b) t[to_cp[b]] = int16_t(b);
    return t;
  }();
  return table;
}

}  // namespace

int codepoint_to_byte(char32_t cp) {
  static const auto& table = stand_in_to_byte();
  return cp < kStandInEnd ? table[cp] : -1;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

namespace {

// Valid range for the second byte of a sequence, per the Unicode well-formedness table
// (this is what rules out overlongs, surrogates and code points above U+10FFFF).
bool second_byte_ok(unsigned char lead, unsigned char b) {
  if (lead == 0xE0) return b >= 0xA0 && b <= 0xBF;
  if (lead == 0xED) return b >= 0x80 && b <= 0x9F;
  if (lead == 0xF0) return b >= 0x90 && b <= 0xBF;
  if (lead == 0xF4) return b >= 0x80 && b <= 0x8F;
  return b >= 0x80 && b <= 0xBF;
}

size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

}  // namespace

size_t decode_utf8(std::string_view s, size_t i, char32_t* cp) {
  auto lead = static_cast<unsigned char>(s[i]);
  size_t len = sequence_length(lead);
  if (len == 0 || i + len > s.size()) return 0;
  if (len == 1) {
    *cp = lead;
    return 1;
  }
  if (!second_byte_ok(lead, static_cast<unsigned char>(s[i + 1]))) return 0;
  char32_t c = lead & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) {
    auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    c = (c << 6) | (b & 0x3F);
  }
  *cp = c;
  return len;
}

size_t maximal_subpart(std::string_view s, size_t i) {
  auto lead = static_cast<unsigned char>(s[i]);
  size_t len = sequence_length(lead);
  if (len <= 1) return 1;
  size_t k = 1;
  if (i + k < s.size() && second_byte_ok(lead, static_cast<unsigned char>(s[i + k]))) {
    ++k;
    while (k < len && i + k < s.size() && (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80) ++k;
  }
  return k;
}

size_t incomplete_utf8_tail(std::string_view s) {
  size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    size_t i = n - back;
    auto b = static_cast<unsigned char>(s[i]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need = sequence_length(b);
    return need > back && maximal_subpart(s, i) == back ? back : 0;
  }
  return 0;
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // Skip ASCII eight bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= s.size()) break;
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    char32_t cp;
    size_t n = decode_utf8(s, i, &cp);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string to_valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    char32_t cp;
    size_t n = decode_utf8(s, i, &cp);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      i += maximal_subpart(s, i);
    }
  }
  return out;
}

namespace {

// One bit per code point: set when NFC may change text around it, i.e. it is not a
// "stable" starter. Stable means canonical combining class 0, unchanged by NFC on its own,
// and never the second element of a composition (which would fuse it with the preceding
// character). Text can be cut before any stable character without changing its NFC, so
// only the stretches between stable characters that contain unstable ones need utf8proc.
class NfcStability {
 public:
  NfcStability() : bits_((0x110000 + 63) / 64, 0) {
    utf8proc_int32_t buf[16];
    for (utf8proc_int32_t cp = 0; cp < 0x110000; ++cp) {
      const utf8proc_property_t* p = utf8proc_get_property(cp);
      if (p->combining_class != 0) mark(cp);
      bool hangul = cp >= 0xAC00 && cp <= 0xD7A3;
      if (p->decomp_seqindex == UINT16_MAX && !hangul) continue;
      int last = 0;
      utf8proc_ssize_t n = utf8proc_decompose_char(cp, buf, 16, UTF8PROC_DECOMPOSE, &last);
      if (n <= 0 || (n == 1 && buf[0] == cp)) continue;  // only a compatibility mapping
      for (utf8proc_ssize_t k = 1; k < n && k < 16; ++k) mark(buf[k]);  // may compose backwards
      std::string one;
      append_utf8(one, char32_t(cp));
      if (compose(one) != one) mark(cp);  // singleton or excluded: NFC replaces it
    }
  }
  bool unstable(char32_t cp) const { return (bits_[cp >> 6] >> (cp & 63)) & 1; }

  static std::string compose(std::string_view s) {
    utf8proc_uint8_t* out = nullptr;
    utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                      static_cast<utf8proc_ssize_t>(s.size()), &out,
                                      static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (n < 0) return std::string(s);  // unreachable for valid input; keep the text as is
    std::string result(reinterpret_cast<char*>(out), static_cast<size_t>(n));
    std::free(out);
    return result;
  }

 private:
  void mark(utf8proc_int32_t cp) {
    if (cp >= 0 && cp < 0x110000) bits_[cp >> 6] |= uint64_t(1) << (cp & 63);
  }
  std::vector<uint64_t> bits_;
};

const NfcStability& stability() {
  static const NfcStability table;
  return table;
}

}  // namespace

bool needs_nfc(std::string_view s) {
  // Code points below U+0300 (lead bytes < 0xCC) are all stable.
  size_t i = 0;
  while (i < s.size() && static_cast<unsigned char>(s[i]) < 0xCC) ++i;
  if (i == s.size()) return false;
  const NfcStability& t = stability();
  while (i < s.size()) {
    char32_t cp;
    size_t n = decode_utf8(s, i, &cp);
    if (n == 0) return true;  // not expected: callers pass valid UTF-8
    if (t.unstable(cp)) return true;
    i += n;
  }
  return false;
}

std::string nfc(std::string_view s) {
  const NfcStability& t = stability();
  std::string out;
  out.reserve(s.size());
  size_t copied = 0;       // s[0, copied) is already in out
  size_t last_stable = 0;  // start of the latest stable character (a safe cut point)
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0xCC) {  // below U+0300: always stable (see needs_nfc)
      last_stable = i;
      i += b < 0x80 ? 1 : 2;
      continue;
    }
    char32_t cp;
    size_t n = decode_utf8(s, i, &cp);
    if (n == 0) return NfcStability::compose(s);  // not expected: let utf8proc decide
    if (!t.unstable(cp)) {
      last_stable = i;
      i += n;
      continue;
    }
    // Normalize from the last safe cut point up to the next stable character.
    size_t end = i + n;
    while (end < s.size()) {
      size_t m = decode_utf8(s, end, &cp);
      if (m == 0 || !t.unstable(cp)) break;
      end += m;
    }
    out.append(s.substr(copied, last_stable - copied));
    out += NfcStability::compose(s.substr(last_stable, end - last_stable));
    copied = i = last_stable = end;
  }
  out.append(s.substr(copied));
  return out;
}

}  // namespace qnext::unicode
