// Pieces of grammar text (runtime/grammar.h's syntax) for converters that write grammars, such as
// json_schema.cpp: literals, rule-name hints, bounded repetition, alternatives, integer ranges.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qnext::grammar_text {

// A literal matching exactly the UTF-8 bytes `text` (valid UTF-8; ASCII-only output: other code
// points as \u / \U escapes).
std::string literal(std::string_view text);
// Up to 40 characters of `s` usable in a rule name (others become '-'); "x" when none.
std::string sanitize(std::string_view s);
// A quantifier suffix for {lo, hi} (hi < 0: unbounded); "" for exactly one.
std::string quantifier(int64_t lo, int64_t hi);
// `item` repeated lo..hi times (hi < 0: unbounded); counts over kBlock are written in blocks of
// kBlock items (the grammar expands {m,n} into one helper per count).
constexpr int64_t kBlock = 64;
std::string repeated(const std::string& item, int64_t lo, int64_t hi);
// "( a | b | ... )", or the one alternative alone.
std::string alternatives(const std::vector<std::string>& alts);
// Decimal naturals in [lo, hi] without leading zeros (0 <= lo <= hi < 10^18), as exact digit ranges.
std::string natural_range(int64_t lo, int64_t hi);

}  // namespace qnext::grammar_text
