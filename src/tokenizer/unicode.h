// UTF-8 and byte-level helpers shared by the tokenizer pieces.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qnext::unicode {

// GPT-2's bytes_to_unicode table: byte -> printable code point, and its inverse.
const std::array<char32_t, 256>& byte_to_codepoint();
// Inverse lookup; returns -1 for code points that are not a byte's stand-in.
int codepoint_to_byte(char32_t cp);

// Appends the UTF-8 encoding of cp.
void append_utf8(std::string& out, char32_t cp);

// Decodes one code point at s[i]; returns its length in bytes, 0 if the bytes there are
// not a well-formed UTF-8 sequence (truncated or ill-formed).
size_t decode_utf8(std::string_view s, size_t i, char32_t* cp);

// Length of the longest prefix of s[i..] that is a valid start of a UTF-8 sequence
// (the "maximal subpart" used for U+FFFD replacement), at least 1.
size_t maximal_subpart(std::string_view s, size_t i);

// Number of trailing bytes of s that are the start of a well-formed but unfinished
// UTF-8 sequence (0..3): what a streaming decoder must hold back.
size_t incomplete_utf8_tail(std::string_view s);

// True when s is entirely well-formed UTF-8.
bool is_valid_utf8(std::string_view s);

// Replaces each maximal ill-formed subpart with U+FFFD, like Rust's from_utf8_lossy.
std::string to_valid_utf8(std::string_view s);

// NFC normalization (libutf8proc, applied only around characters that need it).
// s must be valid UTF-8. needs_nfc(s) == false guarantees nfc(s) == s (true means "maybe").
bool needs_nfc(std::string_view s);
std::string nfc(std::string_view s);

}  // namespace qnext::unicode
