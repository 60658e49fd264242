// Tokenizer against HF golden data, the incremental decoder, and load errors.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

using namespace qnext;
using nlohmann::json;

namespace {

const std::string kData = std::string(QNEXT_TEST_DATA) + "/tokenizer";
const std::string kModelDir = std::string(QNEXT_TEST_DATA) + "/../../assets/tokenizer";

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A character the vocab has no single token for, so it is split across byte tokens.
std::string split_character();

const Tokenizer& tok() {
  static const Tokenizer t = [] {
    auto r = Tokenizer::load(kModelDir);
    // Thrown, not abort(): GoogleTest fails the calling test with this text and runs the rest.
    if (!r) throw std::runtime_error("cannot load the tokenizer from " + kModelDir + ": " + r.error());
    return std::move(r).value();
  }();
  return t;
}

std::vector<json> golden_cases() {
  std::vector<json> cases;
  std::ifstream f(kData + "/golden_encode.jsonl");
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) cases.push_back(json::parse(line));
  return cases;
}

std::string split_character() {
  for (std::string c : {"𪚥", "🫠", "𓀀", "ꙮ", "𝕏"})
    if (tok().encode(c).size() > 1) return c;
  ADD_FAILURE() << "no multi-token character found";
  return "";
}

}  // namespace

TEST(Tokenizer, Basics) {
  EXPECT_EQ(tok().vocab_size(), 151669u);
  EXPECT_EQ(tok().eos_id(), 151645);
  EXPECT_EQ(tok().pad_id(), 151643);
  EXPECT_EQ(tok().bos_id(), -1);
  EXPECT_EQ(tok().token_id("<|im_start|>"), 151644);
  EXPECT_EQ(tok().token_id("<think>"), 151667);
  EXPECT_EQ(tok().token_id("Ġhello"), 23811);
  EXPECT_EQ(tok().token_id("no-such-token-xyz"), std::nullopt);
  EXPECT_TRUE(tok().is_special(151644));
  EXPECT_FALSE(tok().is_special(151667));  // <think> is added but not special
  EXPECT_FALSE(tok().is_special(23811));
  EXPECT_EQ(tok().encode(""), std::vector<int32_t>{});
}

TEST(Tokenizer, GoldenEncodeDecode) {
  auto cases = golden_cases();
  ASSERT_EQ(cases.size(), 404u);
  int failures = 0;
  for (const auto& c : cases) {
    auto text = c["text"].get<std::string>();
    auto want = c["ids"].get<std::vector<int32_t>>();
    auto got = tok().encode(text);
    EXPECT_EQ(got, want) << c["id"] << " (" << c["category"] << "): " << text;
    EXPECT_EQ(tok().decode(want), c["decoded"].get<std::string>()) << c["id"];
    if (got != want && ++failures > 20) break;
  }
}

TEST(Tokenizer, GoldenEncodeIsStableWithWarmCache) {
  // A second pass is served largely from the piece cache; it must agree with the first.
  for (const auto& c : golden_cases())
    EXPECT_EQ(tok().encode(c["text"].get<std::string>()), c["ids"].get<std::vector<int32_t>>()) << c["id"];
}

TEST(Tokenizer, BenchText) {
  auto text = slurp(kData + "/bench_text.txt");
  auto want = json::parse(slurp(kData + "/bench_ids.json"))["ids"].get<std::vector<int32_t>>();
  ASSERT_EQ(want.size(), 16308u);
  EXPECT_TRUE(tok().encode(text) == want);  // (no diff dump: 51 KB)
  EXPECT_TRUE(tok().decode(want) == unicode::nfc(text));  // the text has some non-NFC parts
}

TEST(Tokenizer, ConcurrentEncodesAgree) {
  // One thread holds the piece cache, the others encode without it; all must agree.
  auto cases = golden_cases();
  const Tokenizer& shared = tok();  // loaded here: a load failure fails this test, not the binary
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 3; ++round)
        for (const auto& c : cases)
          if (shared.encode(c["text"].get<std::string>()) != c["ids"].get<std::vector<int32_t>>()) ++mismatches;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(Tokenizer, SkipSpecial) {
  auto ids = tok().encode("<|im_start|>user\nhi<think>x</think><|im_end|>");
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(ids.back(), 151645);
  EXPECT_EQ(tok().decode(ids, true), "user\nhi<think>x</think>");
  EXPECT_EQ(tok().decode(ids, false), "<|im_start|>user\nhi<think>x</think><|im_end|>");
}

TEST(Tokenizer, LongRunsUseTheLargeMergePath) {
  // Long pieces (CJK letter runs, whitespace runs) take the heap-based BPE; it must
  // agree with encoding the same content in short pieces and round-trip exactly.
  std::string cjk;
  for (int i = 0; i < 200; ++i) cjk += "自然语言处理";
  std::string spaces(300, ' ');
  std::string text = cjk + "\n" + spaces + "x" + std::string(5000, 'a');
  auto ids = tok().encode(text);
  EXPECT_EQ(tok().decode(ids), text);
  EXPECT_LT(ids.size(), text.size() / 2);
}

// Found by fuzz/fuzz_tokenizer: a piece longer than 48 bytes whose first two symbols merge first
// made the heap-based BPE read next[-1] (prev of the first symbol), one element before its vector.
// The result was right, so this fails only under the ASan/UBSan suite (scripts/test.sh --sanitize).
TEST(Tokenizer, RunOf50HashSigns) {
  const std::string text(50, '#');
  auto ids = tok().encode(text);
  EXPECT_EQ(tok().decode(ids), text);
  EXPECT_LT(ids.size(), text.size());
}

TEST(Tokenizer, InvalidUtf8InputIsReplaced) {
  auto ids = tok().encode(std::string("a\xff") + "b");
  EXPECT_EQ(tok().decode(ids), "a\xEF\xBF\xBD" "b");
}

TEST(Unicode, NfcMatchesGolden) {
  // "decoded" in the golden data is NFC(text) for every case.
  for (const auto& c : golden_cases()) {
    auto text = c["text"].get<std::string>();
    auto want = c["decoded"].get<std::string>();
    EXPECT_EQ(unicode::nfc(text), want) << c["id"];
    if (text != want) {
      EXPECT_TRUE(unicode::needs_nfc(text)) << c["id"];
    }
  }
  // Hangul jamo compose across the cut points: L+V, LV+T.
  EXPECT_EQ(unicode::nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8x"), "\xEA\xB0\x81x");
  EXPECT_EQ(unicode::nfc("\xEA\xB0\x80\xE1\x86\xA8"), "\xEA\xB0\x81");
  // Reordering of marks: dot below (ccc 220) moves before acute (ccc 230), then composes.
  EXPECT_EQ(unicode::nfc("abc e\xCC\x81\xCC\xA3 x"), "abc \xE1\xBA\xB9\xCC\x81 x");
  EXPECT_EQ(unicode::nfc("\xE2\x84\xAB"), "\xC3\x85");  // Angstrom sign -> A with ring
}

TEST(Tokenizer, NfcIsApplied) {
  // "e" + combining acute accent normalizes to the single code point U+00E9.
  EXPECT_EQ(tok().encode("caf\x65\xCC\x81"), tok().encode("caf\xC3\xA9"));
}

TEST(Tokenizer, DecodeReplacesBrokenUtf8) {
  // The first byte token of a multi-byte character alone is not valid text.
  auto ids = tok().encode(split_character());
  ASSERT_GT(ids.size(), 1u);
  std::string partial = tok().decode(std::span<const int32_t>(ids.data(), 1));
  EXPECT_TRUE(unicode::is_valid_utf8(partial));
  EXPECT_NE(partial.find("\xEF\xBF\xBD"), std::string::npos);
}

TEST(IncrementalDecoder, MatchesDecodeAndNeverSplitsCharacters) {
  std::vector<std::string> texts = {
      "Hello, world! 😀🎉👨‍👩‍👧‍👦 emoji soup",
      "中文文本：自然语言处理很有趣。日本語のテキスト、한국어 텍스트.",
      "Ünïcödé ñ ß ø — “quotes” … ∑∫√ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𪚥🫠𓀀ꙮ𝕏",
      "<|im_start|>assistant\n<think>\n🤔 hmm</think>答案<|im_end|>",
  };
  for (auto c : golden_cases()) texts.push_back(c["text"].get<std::string>());
  for (const auto& text : texts) {
    auto ids = tok().encode(text);
    bool has_replacement = text.find("\xEF\xBF\xBD") != std::string::npos;
    for (bool skip : {false, true}) {
      IncrementalDecoder dec(tok(), skip);
      std::string all;
      for (int32_t id : ids) {
        std::string piece = dec.push(id);
        EXPECT_TRUE(unicode::is_valid_utf8(piece)) << text;
        if (!has_replacement) {
          EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << "premature replacement in " << text;
        }
        all += piece;
      }
      all += dec.flush();
      EXPECT_EQ(all, tok().decode(ids, skip)) << text;
    }
  }
}

TEST(IncrementalDecoder, HoldsPartialCharacterUntilComplete) {
  std::string c = split_character();
  auto ids = tok().encode(c);
  ASSERT_GT(ids.size(), 1u);
  IncrementalDecoder dec(tok());
  std::string out;
  for (size_t i = 0; i + 1 < ids.size(); ++i) EXPECT_EQ(dec.push(ids[i]), "");
  out += dec.push(ids.back());
  EXPECT_EQ(out, c);
  EXPECT_EQ(dec.flush(), "");
}

TEST(IncrementalDecoder, FlushReplacesUnfinishedCharacter) {
  auto ids = tok().encode(split_character());
  ASSERT_GT(ids.size(), 1u);
  IncrementalDecoder dec(tok());
  EXPECT_EQ(dec.push(ids[0]), "");
  EXPECT_EQ(dec.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(dec.flush(), "");
}

TEST(Pretokenizer, WhitespaceClassRewrite) {
  EXPECT_EQ(rewrite_whitespace_classes("a\\d"), "a\\d");
  std::string r = rewrite_whitespace_classes("\\s+(?!\\S)|[^\\s\\p{L}]");
  EXPECT_NE(r.find("[^\\t"), std::string::npos);  // \S outside a class becomes a negated class
  EXPECT_EQ(r.find("\\s"), std::string::npos);
  EXPECT_EQ(r.find("\\S"), std::string::npos);
}

TEST(Pretokenizer, NextLineIsWhitespaceLikeOniguruma) {
  // U+0085 is White_Space; "\s+(?!\S)" must treat it as such.
  auto s = RegexSplitter::compile("\\s+(?!\\S)|\\s+|\\S+");
  ASSERT_TRUE(s.ok()) << s.error();
  std::vector<std::string> pieces;
  s->split("a\xC2\x85 b", [&](std::string_view p) { pieces.emplace_back(p); });
  // With PCRE2's own \s, "a\x85" would be one \S+ piece.
  EXPECT_EQ(pieces, (std::vector<std::string>{"a", "\xC2\x85", " ", "b"}));
}

// --- load errors ---------------------------------------------------------------------------

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("qnext_tok_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
  }
};

// A tiny but complete tokenizer.json: every byte, one merge, one added token.
json tiny_tokenizer() {
  json vocab = json::object();
  const auto& table = unicode::byte_to_codepoint();
  for (int b = 0; b < 256; ++b) {
    std::string s;
    unicode::append_utf8(s, table[b]);
    vocab[s] = b;
  }
  vocab["ab"] = 256;
  return json{{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({json::array({"a", "b"})})}}},
              {"normalizer", nullptr},
              {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
              {"added_tokens", json::array({{{"id", 257}, {"content", "<s>"}, {"special", true}}})}};
}

}  // namespace

TEST(TokenizerLoad, TinyTokenizerWorks) {
  TempDir dir;
  dir.write("tokenizer.json", tiny_tokenizer().dump());
  dir.write("tokenizer_config.json", R"({"eos_token": {"content": "<s>"}})");
  auto t = Tokenizer::load(dir.path.string());
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_EQ(t->encode("abc<s>ab"), (std::vector<int32_t>{256, 'c', 257, 256}));
  EXPECT_EQ(t->eos_id(), 257);
  EXPECT_EQ(t->vocab_size(), 258u);
}

TEST(TokenizerLoad, AddedTokenFlags) {
  // lstrip/rstrip swallow adjacent whitespace; single_word needs non-word neighbours.
  json j = tiny_tokenizer();
  j["added_tokens"].push_back({{"id", 258}, {"content", "<m>"}, {"lstrip", true}, {"rstrip", true}});
  j["added_tokens"].push_back({{"id", 259}, {"content", "cd"}, {"single_word", true}, {"normalized", false}});
  auto t = Tokenizer::from_json(j.dump());
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_EQ(t->encode("x  <m>  y"), (std::vector<int32_t>{'x', 258, 'y'}));
  EXPECT_EQ(t->encode("cd"), std::vector<int32_t>{259});
  EXPECT_EQ(t->encode("x cd."), (std::vector<int32_t>{'x', ' ', 259, '.'}));
  EXPECT_EQ(t->encode("xcd"), (std::vector<int32_t>{'x', 'c', 'd'}));
  EXPECT_EQ(t->encode("\xC3\xA9" "cd").back(), 'd');  // é is a letter: not a word boundary
  EXPECT_FALSE(t->is_special(258));
  EXPECT_TRUE(t->is_added(258));
}

TEST(TokenizerLoad, MissingFile) {
  TempDir dir;
  auto t = Tokenizer::load(dir.path.string());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("tokenizer.json"), std::string::npos) << t.error();
  EXPECT_NE(t.error().find("cannot open"), std::string::npos) << t.error();
}

TEST(TokenizerLoad, MalformedJson) {
  TempDir dir;
  dir.write("tokenizer.json", "{\"model\": {\"vocab\": ");
  auto t = Tokenizer::load(dir.path.string());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("tokenizer.json"), std::string::npos) << t.error();
  EXPECT_NE(t.error().find("malformed JSON"), std::string::npos) << t.error();
}

TEST(TokenizerLoad, MissingMerges) {
  TempDir dir;
  json j = tiny_tokenizer();
  j["model"].erase("merges");
  dir.write("tokenizer.json", j.dump());
  auto t = Tokenizer::load(dir.path.string());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("model.merges"), std::string::npos) << t.error();
}

TEST(TokenizerLoad, MergeWithUnknownToken) {
  json j = tiny_tokenizer();
  j["model"]["merges"].push_back(json::array({"ab", "zz"}));
  auto t = Tokenizer::from_json(j.dump());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("model.merges[1]"), std::string::npos) << t.error();
}

TEST(TokenizerLoad, MalformedConfig) {
  TempDir dir;
  dir.write("tokenizer.json", tiny_tokenizer().dump());
  dir.write("tokenizer_config.json", "{oops");
  auto t = Tokenizer::load(dir.path.string());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("tokenizer_config.json"), std::string::npos) << t.error();
}

// Found by fuzz/fuzz_tokenizer_json (input kept in fuzz/corpus/tokenizer_json): an added token's
// "lstrip": 53 made nlohmann's value() throw type_error out of Tokenizer::from_json.
TEST(TokenizerLoad, AddedTokenLstrip53) {
  json j = tiny_tokenizer();
  j["added_tokens"][0]["lstrip"] = 53;
  auto t = Tokenizer::from_json(j.dump());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("added_tokens entry '<s>': 'lstrip' is 53, not true or false"), std::string::npos) << t.error();
}

// Found in review beside it: other fields of the wrong type threw the same way; huge ids sized the
// id tables by them (2^31 - 1: a 64 GB table, and id + 1 overflowed int) or were narrowed
// (2^32 became id 0).
TEST(TokenizerLoad, PreTokenizerThatIsANumberAndHugeIds) {
  json j = tiny_tokenizer();
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {5}}};
  auto t = Tokenizer::from_json(j.dump());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("a field has an unexpected type"), std::string::npos) << t.error();

  j = tiny_tokenizer();
  j["model"]["vocab"]["ab"] = 2147483647;
  t = Tokenizer::from_json(j.dump());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("model.vocab['ab'] is not a valid id"), std::string::npos) << t.error();

  for (int64_t id : {int64_t{2147483647}, int64_t{4294967296}, int64_t{-1}}) {
    j = tiny_tokenizer();
    j["added_tokens"][0]["id"] = id;
    t = Tokenizer::from_json(j.dump());
    ASSERT_FALSE(t.ok()) << id;
    EXPECT_NE(t.error().find("added_tokens id " + std::to_string(id) + " is not a valid id"), std::string::npos) << t.error();
  }
  j = tiny_tokenizer();
  j["added_tokens"][0]["id"] = (1 << 24) - 1;  // the largest id allowed
  t = Tokenizer::from_json(j.dump());
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_EQ(t->vocab_size(), size_t(1) << 24);
}

TEST(TokenizerLoad, UnknownEosToken) {
  auto t = Tokenizer::from_json(tiny_tokenizer().dump(), R"({"eos_token": "<nope>"})");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("eos_token"), std::string::npos) << t.error();
}

// tokenizer.json's vocab and merges are read by simdjson, the rest by nlohmann (tokenizer_load.cpp):
// both spellings of a merge, the model's fields in any order, and the errors of the new path.
TEST(TokenizerLoad, MergeSpellingsAndFieldOrder) {
  json j = tiny_tokenizer();
  j["model"]["vocab"]["abc"] = 258;
  j["model"]["merges"] = json::array({json::array({"a", "b"}), "ab c"});  // newer and older spelling
  j["added_tokens"][0]["id"] = 259;
  // nlohmann dumps keys sorted: "merges" before "vocab", "added_tokens" before "model".
  auto t = Tokenizer::from_json(j.dump());
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_EQ(t->encode("abcab<s>"), (std::vector<int32_t>{258, 256, 259}));
  EXPECT_EQ(t->token_id("abc"), 258);
  EXPECT_EQ(t->token_id("<s>"), 259);
  EXPECT_FALSE(t->token_id("abd").has_value());

  j["model"]["merges"][1] = "abc";  // no space
  t = Tokenizer::from_json(j.dump());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("model.merges[1] is not 'a b'"), std::string::npos) << t.error();
  j["model"]["merges"][1] = json::array({"ab"});
  t = Tokenizer::from_json(j.dump());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("model.merges[1] is neither a pair nor a string"), std::string::npos) << t.error();
  j["model"]["merges"][1] = 7;
  t = Tokenizer::from_json(j.dump());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("model.merges[1] is neither a pair nor a string"), std::string::npos) << t.error();
}

TEST(TokenizerLoad, VocabErrorsOfTheFastPath) {
  json j = tiny_tokenizer();
  j["model"]["vocab"]["ab"] = 1.5;
  auto t = Tokenizer::from_json(j.dump());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("model.vocab['ab'] is not a valid id"), std::string::npos) << t.error();

  j = tiny_tokenizer();
  j["model"]["vocab"] = json::array();
  t = Tokenizer::from_json(j.dump());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("'model.vocab' missing or not an object"), std::string::npos) << t.error();

  j = tiny_tokenizer();
  j["model"] = 3;
  t = Tokenizer::from_json(j.dump());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("field 'model' missing"), std::string::npos) << t.error();

  std::string twice = tiny_tokenizer().dump();
  twice.pop_back();
  twice += ", \"model\": {}}";
  t = Tokenizer::from_json(twice);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("field 'model' appears twice"), std::string::npos) << t.error();

  t = Tokenizer::from_json("[1, 2]");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("top level is not a JSON object"), std::string::npos) << t.error();

  std::string deep = tiny_tokenizer().dump();
  deep.pop_back();
  deep += ", \"extra\": " + std::string(300, '[') + std::string(300, ']') + "}";
  t = Tokenizer::from_json(deep);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("JSON nested deeper than 256 levels"), std::string::npos) << t.error();

  // What follows the object, or a cut anywhere (the On-Demand parser finds it as it walks).
  const std::string whole = tiny_tokenizer().dump();
  for (const std::string& text : {whole + " x", whole + "}", whole + "{}", whole.substr(0, whole.size() / 2),
                                  whole.substr(0, whole.find("\"ab\"") + 6), whole.substr(0, whole.size() - 1)}) {
    t = Tokenizer::from_json(text);
    ASSERT_FALSE(t.ok()) << text.substr(text.size() > 40 ? text.size() - 40 : 0);
    EXPECT_NE(t.error().find("malformed JSON"), std::string::npos) << t.error();
  }

  std::string bad_utf8 = tiny_tokenizer().dump();
  bad_utf8.pop_back();
  bad_utf8 += ", \"extra\": \"\xC3\"}";
  t = Tokenizer::from_json(bad_utf8);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().find("malformed JSON"), std::string::npos) << t.error();
}

// Two spellings of the same bytes (a literal one beside the byte-level one): a lookup by bytes finds
// the first id, and each id still decodes to its own bytes and is found by its own spelling.
TEST(TokenizerLoad, TwoSpellingsOfTheSameBytes) {
  std::string byte_level;  // "âĤ¬"
  for (unsigned char b : std::string("\xE2\x82\xAC")) unicode::append_utf8(byte_level, unicode::byte_to_codepoint()[b]);
  json j = tiny_tokenizer();
  j["model"]["vocab"]["\xE2\x82\xAC"] = 258;  // "€" is not a byte-level spelling: taken literally
  j["model"]["vocab"][byte_level] = 259;
  j["added_tokens"][0]["id"] = 260;
  auto t = Tokenizer::from_json(j.dump());
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_EQ(t->token_bytes(258), "\xE2\x82\xAC");
  EXPECT_EQ(t->token_bytes(259), "\xE2\x82\xAC");
  EXPECT_EQ(t->token_id("\xE2\x82\xAC"), 258);
  EXPECT_EQ(t->token_id(byte_level), 259);
  EXPECT_EQ(t->encode("\xE2\x82\xAC"), (std::vector<int32_t>{0xE2, 0x82, 0xAC}));  // no merges: bytes
}
