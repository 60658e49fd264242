// The grammar engine (runtime/grammar.h, grammar_mask.h): the text syntax and its errors, the
// matcher (also across UTF-8 characters split between tokens), and token masks, which must equal
// the brute-force answer (each token's bytes fed to a copy of the matcher) on a small random
// vocabulary and on the real Qwen vocabulary.
#include <gtest/gtest.h>

#include <random>

#include "common/real_vocab.h"
#include "runtime/grammar.h"
#include "runtime/grammar_mask.h"

using namespace qnext::grammar;

namespace {

std::shared_ptr<const Grammar> compile(const std::string& text) {
  auto g = Grammar::parse(text);
  if (!g.ok()) throw std::runtime_error("grammar did not compile: " + g.error());
  return g.value();
}

std::string parse_error(const std::string& text) {
  auto g = Grammar::parse(text);
  return g.ok() ? "(compiled)" : g.error();
}

// A small JSON grammar (objects, arrays, strings with escapes, numbers, literals).
const char* kJson = R"(
root   ::= ws value ws
value  ::= object | array | string | number | "true" | "false" | "null"
object ::= "{" ws ( member ( ws "," ws member )* ws )? "}"
member ::= string ws ":" ws value
array  ::= "[" ws ( value ( ws "," ws value )* ws )? "]"
string ::= "\"" ( [^"\\\x00-\x1f] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ) )* "\""
number ::= "-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]+ )?
ws     ::= | " " | "\n" [ \t]{0,20}
)";

}  // namespace

TEST(Grammar, AcceptsAndRejectsByTheSyntax) {
  struct Case {
    const char* grammar;
    std::vector<const char*> yes, no;
  };
  std::vector<Case> cases = {
      {R"(root ::= "ab" | "c")", {"ab", "c"}, {"", "a", "abc", "cc"}},
      {R"(root ::= [a-c]+ "!"?)", {"a", "abcba!", "c!"}, {"", "!", "ad", "a!!"}},
      {R"(root ::= [^a-z0-9]*)", {"", "ABC", "é!", "日本"}, {"a", "Ab", "9"}},
      {R"(root ::= "x"{2,4})", {"xx", "xxx", "xxxx"}, {"x", "xxxxx", ""}},
      {R"(root ::= "x"{3})", {"xxx"}, {"xx", "xxxx"}},
      {R"(root ::= "x"{2,} "y")", {"xxy", "xxxxxxy"}, {"xy", "y"}},
      {R"(root ::= ( "a" | "b" "c" )* "d")", {"d", "ad", "bcad", "abcbcd"}, {"bd", "abc"}},
      {R"(root ::= .)", {"a", "é", "😀", "\n"}, {"", "ab"}},
      {R"(root ::= "\x41\u00e9\U0001F600\n\t\"\\")", {"Aé😀\n\t\"\\"}, {"Aé😀"}},
      {R"(root ::= [\]\-\^a])", {"]", "-", "^", "a"}, {"b", "\\"}},
      {"root ::= \"日本\" [語-誠]", {"日本語", "日本誠"}, {"日本", "日本人"}},
      // Rules may be used before they are defined, span lines and carry comments.
      {"root ::= item \"|\" item # two items\n  | \"none\"\nitem ::= [0-9]\n", {"1|2", "none"}, {"1|", "12"}},
      // Right recursion and nested rules.
      {R"g(root ::= "(" root ")" | "x")g", {"x", "(x)", "(((x)))"}, {"(x", "()", "x)"}},
      {R"(root ::= a
a ::= "" | "a" a)",
       {"", "a", "aaaa"},
       {"b"}},
  };
  for (const Case& c : cases) {
    auto g = compile(c.grammar);
    for (const char* s : c.yes) EXPECT_TRUE(accepts(g, s)) << c.grammar << " should accept '" << s << "'";
    for (const char* s : c.no) EXPECT_FALSE(accepts(g, s)) << c.grammar << " should reject '" << s << "'";
  }
}

TEST(Grammar, JsonGrammarOnDocuments) {
  auto g = compile(kJson);
  for (const char* s : {"{}", "[]", "{\"a\": [1, 2.5e-3, -0, true, null]}", "\"\\u00e9\\n\"", " {\"k\":{\"x\":\"日本\"}}\n",
                        "[\n  1,\n  2\n]"})
    EXPECT_TRUE(accepts(g, s)) << s;
  for (const char* s : {"{", "[1,]", "{\"a\" 1}", "01", "\"\x01\"", "\"\\x\"", "[1 2]", "{}{}", "1234567890123456789"})
    EXPECT_FALSE(accepts(g, s)) << s;
}

TEST(Grammar, ErrorsNameTheLineAndTheProblem) {
  EXPECT_EQ(parse_error("a ::= \"x\""), "grammar: no rule named 'root'");
  EXPECT_EQ(parse_error("root ::= a\n\nb ::= \"x\""), "grammar: line 1: rule 'a' is used but not defined");
  EXPECT_EQ(parse_error("root ::= a\na ::= root \"x\" | \"y\""), "grammar: line 1: left recursion 'root' -> 'a' -> 'root'");
  EXPECT_EQ(parse_error("root ::= b a\nb ::= \"\" | \"q\"\na ::= b root"),
            "grammar: line 1: left recursion 'root' -> 'a' -> 'root'");
  EXPECT_EQ(parse_error("root ::= (\"x\"?)*"),
            "grammar: line 1: a repetition of something that can match nothing ('root/2' -> 'root/2')");
  EXPECT_EQ(parse_error("root ::= \"x\"\nroot ::= \"y\""), "grammar: line 2: rule 'root' is defined twice");
  EXPECT_EQ(parse_error("root ::= \"abc"), "grammar: line 1: unfinished literal");
  EXPECT_EQ(parse_error("root ::= [abc"), "grammar: line 1: unfinished character class");
  EXPECT_EQ(parse_error("root ::= []"), "grammar: line 1: empty character class");
  EXPECT_EQ(parse_error("root ::= [z-a]"), "grammar: line 1: character range 'z'-'a' runs backwards");
  EXPECT_EQ(parse_error("root ::= \"\\q\""), "grammar: line 1: unknown escape '\\q'");
  EXPECT_EQ(parse_error("root ::= \"\\uD800\""), "grammar: line 1: escape \\u/\\U names no Unicode character");
  EXPECT_EQ(parse_error("root ::= \"x\"{3,2}"), "grammar: line 1: repetition {3,2} runs backwards");
  EXPECT_EQ(parse_error("root ::= \"x\"{100000}"), "grammar: line 1: repetition count over 10000");
  EXPECT_EQ(parse_error("root ::= \"\xff\""), "grammar: line 1: the grammar text is not valid UTF-8");
  EXPECT_EQ(parse_error("root ::= \"x\" )"), "grammar: line 1: unexpected ')'");
  EXPECT_EQ(parse_error("root ::= " + std::string(300, '(') + "\"x\"" + std::string(300, ')')),
            "grammar: line 1: parentheses nested deeper than 200");
  std::string big = "root ::=";
  for (int i = 0; i < 110; ++i) big += " \"x\"{10000}";
  EXPECT_EQ(parse_error(big), "grammar: line 1: the grammar is larger than 1048576 elements");
  EXPECT_EQ(parse_error("\n\nroot = \"x\""), "grammar: line 3: expected '::=' after rule name 'root'");
}

TEST(Grammar, CharactersSplitAcrossTokens) {
  auto g = compile(R"(root ::= "é" [日-本] "!")");  // é = C3 A9, 日 = E6 97 A5
  Matcher m(g);
  EXPECT_TRUE(m.accept_bytes("\xC3"));
  EXPECT_FALSE(m.can_end());
  EXPECT_FALSE(m.accept_bytes("\xAA"));  // C3 AA is ê: refused, state unchanged
  EXPECT_TRUE(m.accept_bytes("\xA9\xE6"));
  EXPECT_FALSE(m.accept_bytes("\x80"));  // E6 80 .. is below 日 (U+65E5): cannot complete
  EXPECT_TRUE(m.accept_bytes("\x97"));
  EXPECT_TRUE(m.accept_bytes("\xA5!"));
  EXPECT_TRUE(m.can_end());
  EXPECT_TRUE(m.must_end());
  // Bytes UTF-8 never uses, overlong forms and surrogates are refused.
  Matcher any(compile("root ::= .*"));
  EXPECT_FALSE(any.accept_bytes("\xC0\x80"));
  EXPECT_FALSE(any.accept_bytes("\xFF"));
  EXPECT_FALSE(any.accept_bytes("\xED\xA0\x80"));
  EXPECT_FALSE(any.accept_bytes("\xE0\x80\x80"));
  EXPECT_TRUE(any.accept_bytes("\xF0\x9F\x98\x80"));
}

TEST(Grammar, UnboundedNestingStopsAtTheStackLimit) {
  auto g = compile(R"g(root ::= "(" root ")" | "x")g");
  Matcher m(g);
  EXPECT_TRUE(m.accept_bytes(std::string(kMaxStackDepth - 1, '(')));
  EXPECT_FALSE(m.accept_bytes(std::string(4, '(')));
}

TEST(Grammar, AmbiguousGrammarsStayBounded) {
  // Exponentially many parses of the same text (found by fuzz_grammar as a 13 s hang): the stack
  // set stays bounded, and the text is still a sentence.
  auto g = compile(R"(root ::= [a-z] root{0,9})");
  Matcher m(g);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(m.accept_bytes("ab"));
  EXPECT_LE(m.stacks().size(), kMaxStacks);
  EXPECT_TRUE(m.can_end());
  EXPECT_FALSE(m.accept_bytes("!"));
}

namespace {

// The brute-force mask: every token's bytes fed to a copy of the matcher.
std::vector<uint64_t> brute_mask(const Matcher& m, const GrammarVocab& v) {
  std::vector<uint64_t> bits((v.size() + 63) / 64, 0);
  for (size_t id = 0; id < v.size(); ++id) {
    std::string_view b = v.bytes(static_cast<int32_t>(id));
    if (b.empty()) continue;
    Matcher copy = m;
    if (copy.accept_bytes(b)) bits[id / 64] |= uint64_t{1} << (id % 64);
  }
  if (m.can_end())
    for (int32_t id : v.eos_ids()) bits[id / 64] |= uint64_t{1} << (id % 64);
  return bits;
}

std::vector<int32_t> allowed_ids(const std::vector<uint64_t>& bits) {
  std::vector<int32_t> out;
  for (size_t i = 0; i < bits.size() * 64; ++i)
    if ((bits[i / 64] >> (i % 64)) & 1) out.push_back(static_cast<int32_t>(i));
  return out;
}

// Random walks through the grammar by allowed tokens; at every step the cached masks must equal
// the brute-force ones. Returns the number of steps checked.
int check_masks_on_walks(const std::shared_ptr<const Grammar>& g, std::shared_ptr<const GrammarVocab> vocab,
                         int walks, int steps, uint32_t seed) {
  auto masker = std::make_shared<TokenMasker>(g, vocab);
  std::mt19937 rng(seed);
  int checked = 0;
  for (int w = 0; w < walks; ++w) {
    GrammarConstraint c(masker);
    for (int s = 0; s < steps; ++s) {
      std::vector<float> logits(vocab->size(), 0.0f);
      size_t n = c.apply(logits);
      auto expect = brute_mask(c.matcher(), *vocab);
      EXPECT_EQ(allowed_ids(c.last_mask()), allowed_ids(expect)) << "walk " << w << " step " << s;
      ++checked;
      auto ids = allowed_ids(c.last_mask());
      EXPECT_EQ(n, ids.size());
      for (size_t i = 0; i < logits.size(); ++i)
        EXPECT_EQ(std::isinf(logits[i]), !std::binary_search(ids.begin(), ids.end(), static_cast<int32_t>(i)));
      if (ids.empty() || ::testing::Test::HasFailure()) return checked;
      int32_t pick = ids[std::uniform_int_distribution<size_t>(0, ids.size() - 1)(rng)];
      const auto& eos = vocab->eos_ids();
      if (std::find(eos.begin(), eos.end(), pick) != eos.end()) break;
      EXPECT_TRUE(c.accept(pick));
    }
  }
  return checked;
}

}  // namespace

TEST(GrammarMask, EqualsBruteForceOnARandomVocabulary) {
  // Tokens made of JSON's bytes and multi-byte characters cut anywhere, so tokens cross rule
  // boundaries and end inside characters.
  const std::string alphabet = "{}[]\":, \n\\/ntrfuls0123456789.-+eEabcxyz";
  const std::vector<std::string> wide = {"é", "日本", "😀"};
  std::mt19937 rng(7);
  std::vector<std::string> tokens;
  for (char c : alphabet) tokens.push_back(std::string(1, c));
  // Every continuation byte alone, as a byte-level vocabulary has: a character cut by one token
  // can always be finished by another.
  for (int b = 0x80; b < 0xC0; ++b) tokens.push_back(std::string(1, static_cast<char>(b)));
  for (int i = 0; i < 3000; ++i) {
    std::string t;
    int len = 1 + static_cast<int>(rng() % 6);
    for (int k = 0; k < len; ++k) {
      if (rng() % 5 == 0) {
        const std::string& w = wide[rng() % wide.size()];
        t += w.substr(rng() % w.size());  // a tail of a character
        t += w;
        t += w.substr(0, 1 + rng() % (w.size() - 1 > 0 ? w.size() - 1 : 1));  // a head
      } else {
        t += alphabet[rng() % alphabet.size()];
      }
    }
    tokens.push_back(t);
  }
  tokens.push_back("");  // an id no grammar allows (a control token)
  tokens.push_back("<eos>");
  auto vocab = std::make_shared<const GrammarVocab>(tokens, std::vector<int32_t>{static_cast<int32_t>(tokens.size() - 1)});
  int n = check_masks_on_walks(compile(kJson), vocab, 30, 40, 11);
  EXPECT_GT(n, 300);
}

TEST(GrammarMask, EqualsBruteForceOnTheQwenVocabulary) {
  const qnext::Tokenizer& tok = qnext::testing::qwen_tokenizer();
  std::vector<int32_t> eos = {static_cast<int32_t>(*tok.token_id("<|im_end|>"))};
  auto vocab = GrammarVocab::from_tokenizer(tok, eos);
  EXPECT_TRUE(vocab->bytes(eos[0]).empty());
  EXPECT_TRUE(vocab->bytes(*tok.token_id("<|im_start|>")).empty());  // special: never allowed
  EXPECT_EQ(vocab->bytes(*tok.token_id("<tool_call>")), "<tool_call>");
  auto g = compile(kJson);
  int n = check_masks_on_walks(g, vocab, 2, 12, 5);
  EXPECT_GE(n, 12);
  // Tokens that span rule boundaries are allowed: `":` closes a key and starts the value.
  auto masker = std::make_shared<TokenMasker>(g, vocab);
  GrammarConstraint c(masker);
  ASSERT_TRUE(c.accept(tok.encode("{\"")[0]));
  ASSERT_TRUE(c.accept(tok.encode("name")[0]));
  std::vector<float> logits(tok.vocab_size(), 0.0f);
  c.apply(logits);
  auto colon = tok.token_id("\":");
  ASSERT_TRUE(colon.has_value());
  EXPECT_FALSE(std::isinf(logits[*colon]));
  EXPECT_TRUE(std::isinf(logits[eos[0]]));
}

TEST(GrammarMask, EqualsBruteForceOnStacksDeeperThanTheCacheKey) {
  // Past kMaxKeyDepth entries a stack is keyed by its top entries only, and the tokens that leave
  // them are checked against the whole stack: the masks must still be exact.
  auto g = compile(R"g(root ::= "(" root ")" | "[" root "]" | "x")g");
  auto vocab = std::make_shared<const GrammarVocab>(
      std::vector<std::string>{"(", ")", "[", "]", "x", "((", "))", ")]", "])", "x)", "x]", "(x", "[[", "]]", ")))", ""},
      std::vector<int32_t>{15});
  auto masker = std::make_shared<TokenMasker>(g, vocab);
  std::mt19937 rng(3);
  for (int walk = 0; walk < 4; ++walk) {
    GrammarConstraint c(masker);
    const int depth = int(TokenMasker::kMaxKeyDepth) + 5 + walk;
    for (int i = 0; i < depth; ++i) ASSERT_TRUE(c.accept(rng() % 2 ? 0 : 2));
    for (int step = 0; step < 3 * depth; ++step) {
      std::vector<float> logits(vocab->size(), 0.0f);
      c.apply(logits);
      ASSERT_EQ(allowed_ids(c.last_mask()), allowed_ids(brute_mask(c.matcher(), *vocab))) << "walk " << walk << " step " << step;
      auto ids = allowed_ids(c.last_mask());
      ASSERT_FALSE(ids.empty());
      int32_t pick = ids[rng() % ids.size()];
      if (pick == 15) break;
      ASSERT_TRUE(c.accept(pick));
    }
  }
}

TEST(GrammarMask, EosOnlyWhereTheGrammarEnds) {
  auto vocab = std::make_shared<const GrammarVocab>(std::vector<std::string>{"a", "b", "ab", ""}, std::vector<int32_t>{3});
  auto masker = std::make_shared<TokenMasker>(compile(R"(root ::= "a" "b"?)"), vocab);
  GrammarConstraint c(masker);
  std::vector<float> logits(5, 1.0f);  // one more than the vocabulary: never allowed
  EXPECT_EQ(c.apply(logits), 2u);      // a, ab
  EXPECT_FALSE(std::isinf(logits[0]));
  EXPECT_TRUE(std::isinf(logits[1]));
  EXPECT_FALSE(std::isinf(logits[2]));
  EXPECT_TRUE(std::isinf(logits[3]));
  EXPECT_TRUE(std::isinf(logits[4]));
  EXPECT_FALSE(c.accept(1));
  EXPECT_FALSE(c.accept(3));  // EOS before the grammar may end
  EXPECT_TRUE(c.accept(0));
  std::fill(logits.begin(), logits.end(), 1.0f);
  EXPECT_EQ(c.apply(logits), 2u);  // b, EOS
  EXPECT_FALSE(std::isinf(logits[1]));
  EXPECT_FALSE(std::isinf(logits[3]));
  EXPECT_TRUE(c.accept(1));
  std::fill(logits.begin(), logits.end(), 1.0f);
  EXPECT_EQ(c.apply(logits), 1u);  // only EOS
  EXPECT_FALSE(std::isinf(logits[3]));
  EXPECT_TRUE(c.matcher().must_end());
}
