// The tokenizer and chat template read from GGUF metadata: the real Qwen vocabulary against the HF
// golden data and tokenizer.json, the 4,000-token cut against its own tokenizer.json, how load()
// picks its source, and errors from metadata rewritten in memory.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "common/run.h"
#include "common/temp_dir.h"
#include "io/gguf.h"
#include "template/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

using namespace qnext;
using nlohmann::json;
using nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

const std::string kData = QNEXT_TEST_DATA;
const std::string kHfDir = kData + "/../../assets/tokenizer";  // the real tokenizer.json
const std::string kRealGguf = kData + "/gguf/tiny-real-vocab-q8_0/tiny-real-vocab-q8_0.gguf";
const std::string kCutDir = kData + "/gguf/tiny-k-q4_k_m";
const std::string kCutGguf = kCutDir + "/tiny-k-q4_k_m.gguf";

// Loaded once per binary (151,936 tokens): thrown, not abort(), so a failure fails the tests using it.
template <typename T>
T loaded(Result<T> r, const std::string& what) {
  if (!r) throw std::runtime_error("cannot load " + what + ": " + r.error());
  return std::move(r).value();
}
const Tokenizer& gguf_tok() {
  static const Tokenizer t = loaded(Tokenizer::load(kRealGguf), kRealGguf);
  return t;
}
const Tokenizer& hf_tok() {
  static const Tokenizer t = loaded(Tokenizer::load(kHfDir), kHfDir);
  return t;
}

std::vector<json> jsonl(const std::string& path) {
  std::vector<json> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}
const std::vector<json>& golden_encode() {
  static const auto cases = jsonl(kData + "/tokenizer/golden_encode.jsonl");
  return cases;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

// --- the real vocabulary ------------------------------------------------------------------------

TEST(GgufTokenizer, RealVocabEncodesGoldenTexts) {
  const auto& cases = golden_encode();
  ASSERT_EQ(cases.size(), 404u);
  int failures = 0;
  for (const auto& c : cases) {
    const auto text = c["text"].get<std::string>();
    const auto want = c["ids"].get<std::vector<int32_t>>();
    const auto got = gguf_tok().encode(text);
    EXPECT_EQ(got, want) << c["id"] << " (" << c["category"] << "): " << text;
    EXPECT_EQ(gguf_tok().decode(want), c["decoded"].get<std::string>()) << c["id"];
    if (got != want && ++failures > 20) break;
  }
}

TEST(GgufTokenizer, RealVocabEncodesBenchText) {
  const auto text = slurp(kData + "/tokenizer/bench_text.txt");
  const auto want = json::parse(slurp(kData + "/tokenizer/bench_ids.json"))["ids"].get<std::vector<int32_t>>();
  EXPECT_TRUE(gguf_tok().encode(text) == want);  // (no diff dump: 16,308 ids)
  EXPECT_TRUE(gguf_tok().decode(want) == unicode::nfc(text));
}

// Every id HF knows has the same bytes and lookups; the special flags differ where the GGUF's
// token types cannot say what tokenizer.json says (see SpecialFlagsFromTokenTypes).
TEST(GgufTokenizer, RealVocabAgreesWithTokenizerJson) {
  const Tokenizer& g = gguf_tok();
  const Tokenizer& h = hf_tok();
  ASSERT_EQ(h.vocab_size(), 151669u);
  EXPECT_EQ(g.vocab_size(), 151936u);  // the GGUF keeps the model's padded rows (type unused)
  EXPECT_EQ(g.eos_id(), h.eos_id());
  EXPECT_EQ(g.pad_id(), h.pad_id());
  EXPECT_EQ(g.bos_id(), 151643);  // tokenizer.ggml.bos_token_id; tokenizer_config.json has none
  EXPECT_EQ(h.bos_id(), -1);
  int differ = 0;
  for (int32_t id = 0; id < int32_t(h.vocab_size()) && differ < 10; ++id) {
    const bool same = g.token_bytes(id) == h.token_bytes(id) && g.is_added(id) == h.is_added(id);
    EXPECT_TRUE(same) << "id " << id;
    differ += !same;
  }
  for (const char* t : {"Ġhello", "<|im_start|>", "<think>", "</tool_call>", "<|file_sep|>"})
    EXPECT_EQ(g.token_id(t), h.token_id(t)) << t;
  // Padding rows: no text, not matched, not found.
  EXPECT_EQ(g.decode(std::vector<int32_t>{151669, 151935}), "");
  EXPECT_EQ(g.token_id("[PAD151669]"), std::nullopt);
  EXPECT_EQ(g.encode("[PAD151669]"), h.encode("[PAD151669]"));
}

TEST(GgufTokenizer, SpecialFlagsFromTokenTypes) {
  const Tokenizer& g = gguf_tok();
  const Tokenizer& h = hf_tok();
  // Control tokens are special, user-defined ones (<think>, <tool_call>, ...) are not, as in HF.
  for (int32_t id : {151643, 151644, 151645, 151656}) EXPECT_TRUE(g.is_special(id) && h.is_special(id)) << id;
  for (int32_t id : {151657, 151658, 151665, 151666, 151667, 151668})
    EXPECT_TRUE(!g.is_special(id) && !h.is_special(id) && g.is_added(id)) << id;
  // llama.cpp's converter marks <|...|> tokens as control even where tokenizer.json says
  // "special": false (<|fim_prefix|> .. <|file_sep|>, 151659..151664): the file cannot tell.
  for (int32_t id = 151659; id <= 151664; ++id) EXPECT_TRUE(g.is_special(id) && !h.is_special(id)) << id;
  int special = 0;
  for (int32_t id = 0; id < int32_t(g.vocab_size()); ++id) special += g.is_special(id);
  EXPECT_EQ(special, 20);
  const auto ids = g.encode("<|im_start|>user\nhi<think>x</think><|im_end|>");
  EXPECT_EQ(g.decode(ids, true), "user\nhi<think>x</think>");
}

TEST(GgufTemplate, RendersGoldenChatLikeTokenizerConfig) {
  auto from_gguf = ChatTemplate::load(kRealGguf);
  ASSERT_TRUE(from_gguf.ok()) << from_gguf.error();
  auto from_hf = ChatTemplate::load(kHfDir);
  ASSERT_TRUE(from_hf.ok()) << from_hf.error();
  EXPECT_EQ(from_gguf->source(), from_hf->source());
  int n = 0;
  std::ifstream f(kData + "/tokenizer/golden_chat.jsonl");
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    const auto c = ordered_json::parse(line);  // ordered: tools render with their keys in file order
    if (c["template"] != "qwen3-next-instruct") continue;  // the template the GGUF carries
    const ordered_json kwargs = c["kwargs"].is_object() ? c["kwargs"] : ordered_json::object();
    auto got = from_gguf->render(c["messages"], c["tools"], c["add_generation_prompt"].get<bool>(), kwargs);
    ASSERT_TRUE(got.ok()) << c["id"] << ": " << got.error();
    EXPECT_EQ(*got, c["rendered"].get<std::string>()) << c["id"];
    EXPECT_EQ(gguf_tok().encode(*got), c["rendered_ids"].get<std::vector<int32_t>>()) << c["id"];
    ++n;
  }
  EXPECT_EQ(n, 21);
}

// --- the 4,000-token cut ------------------------------------------------------------------------

TEST(GgufTokenizer, CutVocabAgreesWithItsTokenizerJson) {
  auto g = Tokenizer::load(kCutGguf);
  ASSERT_TRUE(g.ok()) << g.error();
  auto h = Tokenizer::from_json(slurp(kCutDir + "/tokenizer.json"), slurp(kCutDir + "/tokenizer_config.json"));
  ASSERT_TRUE(h.ok()) << h.error();
  EXPECT_EQ(g->vocab_size(), 4000u);
  EXPECT_EQ(g->eos_id(), 3976);
  EXPECT_EQ(g->eos_id(), h->eos_id());
  EXPECT_EQ(g->pad_id(), h->pad_id());
  for (const auto& c : golden_encode()) {
    const auto text = c["text"].get<std::string>();
    const auto ids = h->encode(text);
    ASSERT_EQ(g->encode(text), ids) << c["id"] << ": " << text;
    ASSERT_EQ(g->decode(ids), h->decode(ids)) << c["id"];
  }
}

// A directory with tokenizer.json uses it; a .gguf file, or a directory with only a GGUF, uses the
// GGUF. <|fim_prefix|> (3990 in the cut) tells them apart: special only in the GGUF.
TEST(GgufTokenizer, LoadPicksTheSource) {
  auto hf = Tokenizer::load(kCutDir);
  ASSERT_TRUE(hf.ok()) << hf.error();
  EXPECT_FALSE(hf->is_special(3990));
  qnext::testing::TempDir dir;
  fs::create_symlink(fs::absolute(kCutGguf), fs::path(dir.path) / "model.gguf");
  for (const std::string& path : {kCutGguf, dir.path}) {
    auto g = Tokenizer::load(path);
    ASSERT_TRUE(g.ok()) << path << ": " << g.error();
    EXPECT_TRUE(g->is_special(3990)) << path;
    auto tpl = ChatTemplate::load(path);
    ASSERT_TRUE(tpl.ok()) << path << ": " << tpl.error();
    auto text = tpl->render(ordered_json::parse(R"([{"role": "user", "content": "hi"}])"), nullptr, true);
    ASSERT_TRUE(text.ok()) << text.error();
    EXPECT_EQ(*text, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  }
  // A missing .gguf is reported as such, not as a directory without tokenizer.json.
  const std::string missing = dir.path + "/nonexistent.gguf";
  auto t = Tokenizer::load(missing);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error(), missing + ": no such file or directory");
  auto tpl = ChatTemplate::load(missing);
  ASSERT_FALSE(tpl.ok());
  EXPECT_EQ(tpl.error(), missing + ": no such file or directory");
}

TEST(GgufCli, TokenizeAndTemplateTakeAGgufFile) {
  using qnext::testing::run;
  auto r = run(qnext::testing::qnext_bin() + " tokenize --model " + kRealGguf + " 'Hello world<|im_end|>'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("[9707,1879,151645]"), std::string::npos) << r.output;
  const std::string in = qnext::testing::temp_path("gguf_chat.jsonl");
  std::ofstream(in) << R"({"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": true})" << "\n";
  r = run(qnext::testing::qnext_bin() + " template --model " + kRealGguf + " --jsonl " + in);
  fs::remove(in);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "\"<|im_start|>user\\nhi<|im_end|>\\n<|im_start|>assistant\\n\"\n");
}

// --- errors, from metadata rewritten in memory --------------------------------------------------

namespace {

// A tokenizer small enough to build by hand: the 256 byte tokens, three merges (Ġt, he, Ġthe),
// two control tokens, a user-defined one and a padding row.
GgufMetadata small_meta() {
  json tokens = json::array(), types = json::array();
  for (int b = 0; b < 256; ++b) {
    std::string s;
    unicode::append_utf8(s, unicode::byte_to_codepoint()[b]);
    tokens.push_back(s);
    types.push_back(1);
  }
  const std::pair<const char*, int> more[] = {{"Ġt", 1},           {"he", 1},         {"Ġthe", 1},  {"<|im_start|>", 3},
                                              {"<|im_end|>", 3},    {"<think>", 4},    {"[PAD262]", 5}};
  for (auto [t, type] : more) {
    tokens.push_back(t);
    types.push_back(type);
  }
  return GgufMetadata{{"general.architecture", "qwen3next"},
                      {"tokenizer.ggml.model", "gpt2"},
                      {"tokenizer.ggml.pre", "qwen2"},
                      {"tokenizer.ggml.tokens", tokens},
                      {"tokenizer.ggml.token_type", types},
                      {"tokenizer.ggml.merges", json::array({"Ġ t", "h e", "Ġt he"})},
                      {"tokenizer.ggml.eos_token_id", 260},
                      {"tokenizer.ggml.padding_token_id", 259},
                      {"tokenizer.chat_template", "{{ eos_token }}|{{ pad_token }}|{{ bos_token is defined }}"}};
}

// The loader's error for `meta`, or "" when it loads.
std::string tok_error(const GgufMetadata& meta) {
  auto t = Tokenizer::from_gguf(meta, "mem.gguf");
  return t.ok() ? "" : t.error();
}

}  // namespace

TEST(GgufTokenizerErrors, SmallMetadataLoads) {
  auto t = Tokenizer::from_gguf(small_meta(), "mem.gguf");
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_EQ(t->encode(" the<think>x<|im_end|>"), (std::vector<int32_t>{258, 261, 'x', 260}));
  EXPECT_EQ(t->decode(std::vector<int32_t>{258, 261, 262, 259}), " the<think><|im_start|>");
  EXPECT_TRUE(t->is_special(259));
  EXPECT_FALSE(t->is_special(261));
  EXPECT_TRUE(t->is_added(261));
  EXPECT_FALSE(t->is_added(262));
  EXPECT_EQ(t->token_id("[PAD262]"), std::nullopt);
  EXPECT_EQ(t->vocab_size(), 263u);
  EXPECT_EQ(t->eos_id(), 260);
  EXPECT_EQ(t->pad_id(), 259);
  EXPECT_EQ(t->bos_id(), -1);
  auto tpl = ChatTemplate::from_gguf(small_meta(), "mem.gguf");
  ASSERT_TRUE(tpl.ok()) << tpl.error();
  auto text = tpl->render(ordered_json::array(), nullptr, false);
  ASSERT_TRUE(text.ok()) << text.error();
  EXPECT_EQ(*text, "<|im_end|>|<|im_start|>|False");
}

TEST(GgufTokenizerErrors, EachBadKeyIsNamed) {
  struct Case {
    const char* what;
    std::function<void(GgufMetadata&)> edit;
    std::string expect;  // part of the message (which also starts with the file name)
  };
  const json huge = uint64_t(1) << 40;
  const std::vector<Case> cases = {
      {"no tokens", [](auto& m) { m.erase("tokenizer.ggml.tokens"); }, "tokenizer.ggml.tokens missing"},
      {"no merges", [](auto& m) { m.erase("tokenizer.ggml.merges"); }, "tokenizer.ggml.merges missing"},
      {"no types", [](auto& m) { m.erase("tokenizer.ggml.token_type"); }, "tokenizer.ggml.token_type missing"},
      {"no model", [](auto& m) { m.erase("tokenizer.ggml.model"); }, "tokenizer.ggml.model missing (no tokenizer"},
      {"llama model", [](auto& m) { m["tokenizer.ggml.model"] = "llama"; }, "tokenizer.ggml.model 'llama' is not supported"},
      {"model not text", [](auto& m) { m["tokenizer.ggml.model"] = 5; }, "tokenizer.ggml.model is 5, not a string"},
      {"no pre", [](auto& m) { m.erase("tokenizer.ggml.pre"); }, "tokenizer.ggml.pre missing"},
      {"other pre", [](auto& m) { m["tokenizer.ggml.pre"] = "llama-bpe"; }, "tokenizer.ggml.pre 'llama-bpe' is not supported"},
      {"tokens not a list", [](auto& m) { m["tokenizer.ggml.tokens"] = "abc"; }, "tokenizer.ggml.tokens is not an array"},
      {"no tokens at all", [](auto& m) { m["tokenizer.ggml.tokens"] = m["tokenizer.ggml.token_type"] = json::array(); },
       "tokenizer.ggml.tokens is empty"},
      {"token not text", [](auto& m) { m["tokenizer.ggml.tokens"][7] = 42; }, "tokenizer.ggml.tokens[7] is 42, not a string"},
      {"empty token", [](auto& m) { m["tokenizer.ggml.tokens"][260] = ""; }, "tokenizer.ggml.tokens[260] is empty"},
      {"short types", [](auto& m) { m["tokenizer.ggml.token_type"].erase(262); },
       "tokenizer.ggml.token_type has 262 entries for 263 tokens"},
      {"type 9", [](auto& m) { m["tokenizer.ggml.token_type"][5] = 9; }, "tokenizer.ggml.token_type[5] is 9, not a token type"},
      {"type text", [](auto& m) { m["tokenizer.ggml.token_type"][5] = "x"; }, "tokenizer.ggml.token_type[5] is \"x\""},
      {"byte unused", [](auto& m) { m["tokenizer.ggml.token_type"][65] = 5; }, "lacks some of the 256 single-byte tokens"},
      {"merge of unknown", [](auto& m) { m["tokenizer.ggml.merges"][1] = "h zz"; }, "tokenizer.ggml.merges[1] \"h zz\" uses a token"},
      {"merge making unknown", [](auto& m) { m["tokenizer.ggml.merges"][1] = "e h"; }, "tokenizer.ggml.merges[1]"},
      {"merge of added", [](auto& m) { m["tokenizer.ggml.merges"][1] = "<think> h"; }, "tokenizer.ggml.merges[1]"},
      {"merge without space", [](auto& m) { m["tokenizer.ggml.merges"][0] = "\xff\xfe"; }, "merges[0] \"\xEF\xBF\xBD"},
      {"merge not text", [](auto& m) { m["tokenizer.ggml.merges"][2] = json::array({"Ġt", "he"}); }, "merges[2] is [\"Ġt\",\"he\"]"},
      {"merges not a list", [](auto& m) { m["tokenizer.ggml.merges"] = 3; }, "tokenizer.ggml.merges is not an array"},
      {"eos past the end", [](auto& m) { m["tokenizer.ggml.eos_token_id"] = 263; },
       "tokenizer.ggml.eos_token_id = 263 is not a token id (0..262)"},
      {"eos negative", [](auto& m) { m["tokenizer.ggml.eos_token_id"] = -1; }, "tokenizer.ggml.eos_token_id = -1"},
      {"eos huge", [&](auto& m) { m["tokenizer.ggml.eos_token_id"] = huge; }, "tokenizer.ggml.eos_token_id = 1099511627776"},
      {"pad text", [](auto& m) { m["tokenizer.ggml.padding_token_id"] = "0"; }, "tokenizer.ggml.padding_token_id = \"0\""},
      {"bos float", [](auto& m) { m["tokenizer.ggml.bos_token_id"] = 1.5; }, "tokenizer.ggml.bos_token_id = 1.5"},
  };
  for (const auto& c : cases) {
    GgufMetadata m = small_meta();
    c.edit(m);
    std::string e;
    ASSERT_NO_THROW(e = tok_error(m)) << c.what;
    EXPECT_EQ(e.rfind("mem.gguf: ", 0), 0u) << c.what << ": " << e;
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.what << ": " << e;
  }
}

TEST(GgufTemplateErrors, EachBadKeyIsNamed) {
  const std::vector<std::pair<std::function<void(GgufMetadata&)>, std::string>> cases = {
      {[](auto& m) { m.erase("tokenizer.chat_template"); }, "no chat template in mem.gguf (no tokenizer.chat_template"},
      {[](auto& m) { m["tokenizer.chat_template"] = 1; }, "mem.gguf: tokenizer.chat_template is 1, not a string"},
      {[](auto& m) { m["tokenizer.chat_template"] = "{% if %}"; }, "mem.gguf tokenizer.chat_template: "},
      {[](auto& m) { m["tokenizer.ggml.eos_token_id"] = 263; },
       "mem.gguf: tokenizer.ggml.eos_token_id = 263 is not an id of tokenizer.ggml.tokens (263 entries)"},
      {[](auto& m) { m["tokenizer.ggml.bos_token_id"] = "x"; }, "mem.gguf: tokenizer.ggml.bos_token_id = \"x\""},
      {[](auto& m) { m.erase("tokenizer.ggml.tokens"); }, "tokenizer.ggml.eos_token_id = 260 is not an id"},
      {[](auto& m) { m["tokenizer.ggml.tokens"][260] = 7; }, "mem.gguf: tokenizer.ggml.tokens[260] is not a string"},
  };
  for (const auto& [edit, expect] : cases) {
    GgufMetadata m = small_meta();
    edit(m);
    Result<ChatTemplate> t = err("not run");
    ASSERT_NO_THROW(t = ChatTemplate::from_gguf(m, "mem.gguf")) << expect;
    ASSERT_FALSE(t.ok()) << expect;
    EXPECT_NE(t.error().find(expect), std::string::npos) << t.error();
  }
}
