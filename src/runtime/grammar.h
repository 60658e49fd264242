// Grammars for constrained decoding: a GBNF-like text compiled to flat rules, and a matcher that
// advances a set of pushdown stacks one Unicode code point at a time (tokens may end inside a
// UTF-8 character; the matcher keeps the partial one and only accepts bytes that can complete to
// a character the grammar allows, so a constrained generation never reaches a dead end).
//
// The text (start rule `root`; `#` starts a comment; a rule may span lines):
//   name  ::= alternatives                 names: letters, digits, '-' and '_'
//   alternatives: sequence ( "|" sequence )*     an empty sequence matches nothing (epsilon)
//   item: primary [ "*" | "+" | "?" | "{m}" | "{m,}" | "{m,n}" ]
//   primary: "literal"      escapes \\ \" \' \n \r \t \xHH \uHHHH \UHHHHHHHH (code points)
//            [a-z_\n]       a class of code points; [^"\\] its complement; escapes as above plus \] \- \^ \[
//            .              any code point
//            name           another rule (may come before or after its definition)
//            ( alternatives )
// Refused with the line named: undefined rules, a missing root, left recursion (also through
// rules that can match nothing), a repetition of something that can match nothing, and sizes over
// the limits below.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/result.h"

namespace qnext::grammar {

inline constexpr size_t kMaxGrammarBytes = size_t{1} << 20;  // of text
inline constexpr size_t kMaxElements = size_t{1} << 20;      // after expanding repetitions
inline constexpr int kMaxRepeat = 10'000;                    // m and n of {m,n}
inline constexpr int kMaxNesting = 200;                      // parentheses

// One position of a rule's alternative. A rule is its alternatives one after another, each
// closed by an End; the rule's alternatives are listed in Grammar::rule_alts.
struct Element {
  enum Kind : uint8_t {
    Chars,     // one code point in ranges[a, a + b)
    CharsNot,  // one code point not in ranges[a, a + b)
    Ref,       // rule a
    End,       // end of an alternative
  };
  Kind kind;
  uint32_t a = 0, b = 0;
};

struct Range {
  uint32_t lo, hi;  // inclusive code points
};

struct Grammar {
  std::vector<Element> elements;             // [every alternative of every rule, each closed by End]
  std::vector<Range> ranges;                 // [the code point ranges Chars elements point into]
  std::vector<std::vector<uint32_t>> rule_alts;  // [rule][alternative] -> index of its first element
  std::vector<std::string> rule_names;       // [rule], with generated helpers named after their rule
  uint32_t root = 0;

  // Parses and checks a grammar text (syntax above).
  static Result<std::shared_ptr<const Grammar>> parse(std::string_view text);

  // Does the code point match the Chars / CharsNot element at `pos`?
  bool matches(uint32_t pos, uint32_t cp) const;
  // Can some code point in [lo, hi] match the element at `pos`? (a partial UTF-8 character)
  bool may_match(uint32_t pos, uint32_t lo, uint32_t hi) const;
};

// A set of stacks of element positions, stored flat so that stepping a set allocates nothing once
// its buffers have grown. Each stack's last entry is its next element.
class StackSet {
 public:
  size_t size() const { return starts_.size() - 1; }
  bool empty() const { return size() == 0; }
  std::span<const uint32_t> operator[](size_t i) const {
    return {data_.data() + starts_[i], data_.data() + starts_[i + 1]};
  }
  void clear() {
    data_.clear();
    starts_.assign(1, 0);
    index_.clear();
  }
  // Adds the stack unless the set holds it already.
  void add(std::span<const uint32_t> stack);
  bool any_empty() const;
  bool operator==(const StackSet& o) const { return data_ == o.data_ && starts_ == o.starts_; }

 private:
  static constexpr size_t kIndexFrom = 16;  // below this many stacks a scan is cheaper than hashing
  bool contains(std::span<const uint32_t> stack, uint64_t hash) const;

  std::vector<uint32_t> data_;
  std::vector<uint32_t> starts_ = {0};
  std::unordered_multimap<uint64_t, uint32_t> index_;  // stack hash -> stack, once there are many
};

// A UTF-8 character in progress across bytes (and tokens).
struct Utf8Partial {
  uint32_t bits = 0;  // the character's bits so far
  int left = 0;       // continuation bytes still to come; 0: none in progress
  uint32_t min = 0;   // the smallest code point it may be (overlong forms are refused)
};

// The deepest a stack may grow (nested rules not yet finished); bytes that would go deeper are
// refused, so a grammar with unbounded nesting cannot grow without limit.
inline constexpr size_t kMaxStackDepth = 4096;
// An ambiguous grammar can parse the same text in exponentially many ways (e.g. x ::= "a" x{0,9}):
// a stack set keeps at most kMaxStacks of them, and one step (a code point, or the start)
// explores at most kMaxExpandSteps rule references; past either the rest are dropped. The grammar then matches a
// part of its language (never a string outside it); the grammars qnext writes (JSON schemas,
// tool calls) stay far below both.
inline constexpr size_t kMaxStacks = 8192;  // above the 4096 values an enum may list (json_schema.cpp)
inline constexpr size_t kMaxExpandSteps = size_t{1} << 16;

// Scratch space for stepping stack sets; one per thread of use.
struct StepScratch {
  std::vector<uint32_t> stack;
  StackSet next;
};

// Every expansion of `stack` (whose last entry may be a Ref or an End) added to `out`, each ending
// at a Chars / CharsNot element or empty; `steps` is the step's budget (kMaxExpandSteps), shared
// by the stacks of one step.
void expand(const Grammar& g, std::vector<uint32_t>& stack, StackSet& out, size_t& steps);
// The stacks after one code point: each stack whose next element matches it, advanced, expanded.
void advance(const Grammar& g, const StackSet& stacks, uint32_t cp, StackSet& out, std::vector<uint32_t>& scratch);
// Steps `stacks` and `partial` over the bytes; false (both then unspecified) as soon as no stack
// can take them, including a partial character that no stack can complete.
bool consume(const Grammar& g, StackSet& stacks, Utf8Partial& partial, std::string_view bytes, StepScratch& scratch);

// The state of a match: every way the input so far can continue (an empty stack means the root
// is complete), and the UTF-8 character in progress.
class Matcher {
 public:
  explicit Matcher(std::shared_ptr<const Grammar> g);

  // Advances over the bytes. If the grammar refuses them the state is left as it was and the
  // result is false.
  bool accept_bytes(std::string_view bytes);
  // The input so far is a complete sentence (some stack is empty and no character is partial).
  bool can_end() const { return partial_.left == 0 && stacks_.any_empty(); }
  // Nothing but the end may follow (the root is complete on every path).
  bool must_end() const { return partial_.left == 0 && stacks_.size() == 1 && stacks_[0].empty(); }

  const Grammar& grammar() const { return *g_; }
  const std::shared_ptr<const Grammar>& grammar_ptr() const { return g_; }
  const StackSet& stacks() const { return stacks_; }
  const Utf8Partial& partial() const { return partial_; }

 private:
  std::shared_ptr<const Grammar> g_;
  StackSet stacks_;
  Utf8Partial partial_;
  StackSet trial_;
  StepScratch scratch_;
};

// The whole text is a sentence of the grammar.
bool accepts(const std::shared_ptr<const Grammar>& g, std::string_view text);

}  // namespace qnext::grammar
