// `qnext tokenize`, `qnext run` and `qnext chat` end to end.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "common/golden.h"
#include "common/run.h"
#include "runtime/grammar.h"

namespace fs = std::filesystem;

namespace qnext {
namespace {

using testing::data_dir;
using testing::qnext_bin;
using testing::run;

const std::string kTokDir = std::string(QNEXT_TEST_DATA) + "/../../assets/tokenizer";

// stdout only (stderr dropped), for output compared byte for byte.
testing::RunResult run_stdout(const std::string& command) { return run("(" + command + " 2>/dev/null)"); }

// tiny-real-vocab's weights with the real tokenizer and chat template beside them.
const std::string& chat_model_dir() {
  static const std::string dir = [] {
    const std::string d = testing::temp_path("model");
    fs::create_directories(d);
    for (const char* f : {"config.json", "model.safetensors"})
      fs::create_symlink(fs::absolute(data_dir("tiny-real-vocab") + "/" + f), d + "/" + f);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      fs::create_symlink(fs::absolute(kTokDir + "/" + f), d + "/" + f);
    return d;
  }();
  return dir;
}

struct Cleanup : ::testing::Environment {
  void TearDown() override { fs::remove_all(testing::temp_path("model")); }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new Cleanup);

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

TEST(CliTokenize, JsonlMatchesGoldenIds) {
  const std::string golden = data_dir("tokenizer/golden_encode.jsonl");
  auto r = run_stdout(qnext_bin() + " tokenize --model " + kTokDir + " --jsonl " + golden);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream f(golden);
  auto out = lines(r.output);
  size_t n = 0;
  for (std::string line; std::getline(f, line);) {
    if (line.empty()) continue;
    auto expect = nlohmann::json::parse(line);
    ASSERT_LT(n, out.size());
    EXPECT_EQ(nlohmann::json::parse(out[n]), expect["ids"]) << expect["id"];
    ++n;
  }
  EXPECT_GT(n, 10u);
  EXPECT_EQ(n, out.size());
}

TEST(CliTokenize, TextToIdsAndBack) {
  const std::string text = "Hello, world! ünïcödé 日本語 <|im_end|>";
  auto enc = run_stdout(qnext_bin() + " tokenize --model " + kTokDir + " '" + text + "'");
  ASSERT_EQ(enc.exit_code, 0) << enc.output;
  auto ids = nlohmann::json::parse(enc.output).get<std::vector<int32_t>>();
  EXPECT_EQ(ids.front(), 9707);   // "Hello"
  EXPECT_EQ(ids.back(), 151645);  // <|im_end|> is one special token
  std::string csv;
  for (size_t i = 0; i < ids.size(); ++i) csv += (i ? "," : "") + std::to_string(ids[i]);
  auto dec = run_stdout(qnext_bin() + " tokenize --model " + kTokDir + " --ids " + csv);
  ASSERT_EQ(dec.exit_code, 0) << dec.output;
  EXPECT_EQ(dec.output, text + "\n");

  auto bad = run(qnext_bin() + " tokenize --model /nonexistent hi");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("error: /nonexistent/tokenizer.json: cannot open: No such file or directory"), std::string::npos) << bad.output;
}

TEST(CliRun, GreedyIsDeterministicAndMatchesGenerate) {
  const std::string dir = chat_model_dir();
  const std::string cmd = qnext_bin() + " run -t 1 --model " + dir + " -p 'The capital of France is' --temp 0 -n 8 --ignore-eos";
  auto a = run_stdout(cmd);
  auto b = run_stdout(cmd);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  EXPECT_EQ(a.output, b.output);

  auto ids = run_stdout(qnext_bin() + " tokenize --model " + dir + " 'The capital of France is'");
  ASSERT_EQ(ids.exit_code, 0);
  std::string csv = nlohmann::json::parse(ids.output).dump();
  csv = csv.substr(1, csv.size() - 2);
  auto gen = run_stdout(qnext_bin() + " generate -t 1 --model " + dir + " --ids " + csv + " -n 8");
  ASSERT_EQ(gen.exit_code, 0) << gen.output;
  std::string gen_ids;
  for (const auto& l : lines(gen.output))
    if (std::regex_match(l, std::regex("[0-9]+(,[0-9]+)*"))) gen_ids = l;
  ASSERT_EQ(std::count(gen_ids.begin(), gen_ids.end(), ','), 7) << gen.output;
  auto text = run_stdout(qnext_bin() + " tokenize --model " + dir + " --ids " + gen_ids);
  EXPECT_EQ(a.output, text.output);  // both end with one newline

  // Stats go to stderr.
  auto full = run(cmd);
  EXPECT_NE(full.output.find("8 generated"), std::string::npos) << full.output;
  EXPECT_NE(full.output.find("tok/s"), std::string::npos);
}

TEST(CliRun, StopStringCutsTheOutput) {
  const std::string dir = chat_model_dir();
  auto base = run_stdout(qnext_bin() + " run -t 1 --model " + dir + " -p 'Once upon a time' --temp 0 -n 12 --ignore-eos");
  ASSERT_EQ(base.exit_code, 0) << base.output;
  std::string text = base.output.substr(0, base.output.size() - 1);
  ASSERT_GE(text.size(), 4u);
  // Stop at a piece of the greedy text: the output is what came before it.
  size_t from = text.size() / 2;
  while (from + 3 < text.size() && text.substr(from, 3).find_first_of("\n'\"\\$`") != std::string::npos) ++from;
  const std::string stop = text.substr(from, 3);
  const size_t at = text.find(stop);
  auto cut = run(qnext_bin() + " run -t 1 --model " + dir +
                 " -p 'Once upon a time' --temp 0 -n 12 --ignore-eos --stop='" + stop + "'");
  ASSERT_EQ(cut.exit_code, 0) << cut.output;
  EXPECT_EQ(cut.output.substr(0, at + 1), text.substr(0, at) + "\n") << cut.output;
  EXPECT_NE(cut.output.find("stop: stop string"), std::string::npos) << cut.output;
}

struct Stats {
  int total, fresh;
};
std::vector<Stats> stats_lines(const std::string& out) {
  std::vector<Stats> s;
  std::regex re(R"(\[(\d+) prompt tokens \((\d+) new\))");
  for (std::sregex_iterator it(out.begin(), out.end(), re), end; it != end; ++it)
    s.push_back({std::stoi((*it)[1]), std::stoi((*it)[2])});
  return s;
}

TEST(CliChat, ScriptedConversationKeepsStateAcrossTurns) {
  const std::string dir = chat_model_dir();
  auto r = run("printf 'Hello there\\nHow are you?\\n/reset\\nHello there\\n' | " + qnext_bin() +
               " chat -t 1 --model " + dir + " --system 'Be brief.' --temp 0 -n 6");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto s = stats_lines(r.output);
  ASSERT_EQ(s.size(), 3u) << r.output;
  EXPECT_EQ(s[0].fresh, s[0].total);
  EXPECT_GT(s[1].total, s[0].total);
  EXPECT_LT(s[1].fresh, s[1].total - s[0].total + 8) << r.output;  // only this turn's text (and the last answer's tail)
  EXPECT_LT(s[1].fresh, s[1].total);
  EXPECT_EQ(r.output.find("re-prefilled"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[conversation cleared]"), std::string::npos);
  EXPECT_EQ(s[2].fresh, s[0].total);  // after /reset, from scratch
  EXPECT_EQ(s[2].total, s[0].total);

  // The same answers again: greedy chat is deterministic.
  const std::string two = "printf 'Hello there\\nHow are you?\\n' | " + qnext_bin() + " chat -t 1 --model " + dir +
                          " --system 'Be brief.' --temp 0 -n 6";
  auto first = run_stdout(two), again = run_stdout(two);
  EXPECT_EQ(first.exit_code, 0);
  EXPECT_FALSE(first.output.empty());
  EXPECT_EQ(again.output, first.output);
}

TEST(CliChat, ExitCommandAndMissingTemplate) {
  const std::string dir = chat_model_dir();
  auto r = run("printf '/exit\\nHello\\n' | " + qnext_bin() + " chat -t 1 --model " + dir + " --temp 0 -n 4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(stats_lines(r.output).empty()) << r.output;

  // Weights and tokenizer but no template (no chat_template.jinja, no tokenizer_config.json). Plain
  // tiny-real-vocab has no tokenizer either, and failed on that before it reached the template.
  const std::string no_tpl = testing::temp_path("model-no-template");
  fs::create_directories(no_tpl);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::create_symlink(fs::absolute(data_dir("tiny-real-vocab") + "/" + f), no_tpl + "/" + f);
  fs::create_symlink(fs::absolute(kTokDir + "/tokenizer.json"), no_tpl + "/tokenizer.json");
  auto bad = run("echo hi | " + qnext_bin() + " chat --model " + no_tpl);
  fs::remove_all(no_tpl);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("error: no chat template in " + no_tpl +
                            " (neither chat_template.jinja nor tokenizer_config.json)"),
            std::string::npos)
      << bad.output;
}

}  // namespace
}  // namespace qnext

namespace qnext {
// Sampling flags are checked: NaN, negative temperatures and top-p above 1 used to be accepted.
TEST(CliRun, SamplingFlagsAreValidated) {
  using namespace qnext::testing;
  const std::string base = qnext_bin() + " run -t 1 --model " + data_dir("tiny-real-vocab") + " -p hi -n 1 ";
  for (const char* bad : {"--temp nan", "--temp -1", "--top-p 5", "--top-p 0", "--min-p 2", "--presence-penalty inf"}) {
    auto r = run(base + bad);
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_NE(r.output.find("must be a finite number in"), std::string::npos) << bad << ": " << r.output;
  }
}
TEST(CliRun, GrammarAndJsonSchemaConstrainTheOutput) {
  const std::string dir = chat_model_dir();
  const std::string gfile = testing::temp_path("answer.gbnf"), sfile = testing::temp_path("schema.json");
  const std::string grammar_text = R"(root ::= "{\"answer\": " ("true" | "false" | [0-9]{1,3}) ", \"why\": \"" [a-z ]{0,20} "\"}")";
  std::ofstream(gfile) << grammar_text;
  std::ofstream(sfile) << R"({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 99},
      "tags": {"type": "array", "items": {"enum": ["x", "y"]}, "maxItems": 3}}, "required": ["n", "tags"]})";
  auto g = grammar::Grammar::parse(grammar_text);
  ASSERT_TRUE(g.ok()) << g.error();
  for (int seed : {1, 2, 3}) {
    SCOPED_TRACE(seed);
    const std::string common = qnext_bin() + " run -t 1 --model " + dir + " -p 'Answer:' -n 200 --temp 1 --seed " +
                               std::to_string(seed);
    auto r = run_stdout(common + " --grammar " + gfile);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const std::string text = r.output.substr(0, r.output.size() - 1);  // run ends with a newline
    EXPECT_TRUE(grammar::accepts(g.value(), text)) << text;
    auto j = run_stdout(common + " --json-schema " + sfile);
    ASSERT_EQ(j.exit_code, 0) << j.output;
    auto doc = nlohmann::json::parse(j.output);
    ASSERT_TRUE(doc.is_object()) << j.output;
    EXPECT_EQ(doc.size(), 2u) << j.output;
    EXPECT_TRUE(doc["n"].is_number_integer() && doc["n"] >= 0 && doc["n"] <= 99) << j.output;
    ASSERT_TRUE(doc["tags"].is_array()) << j.output;
    EXPECT_LE(doc["tags"].size(), 3u);
    for (const auto& t : doc["tags"]) EXPECT_TRUE(t == "x" || t == "y") << j.output;
  }
  // Errors name the file; the two flags exclude each other; MTP does not combine with them yet.
  const std::string base = qnext_bin() + " run -t 1 --model " + dir + " -p hi -n 4 ";
  const std::string bad = testing::temp_path("bad.gbnf");
  std::ofstream(bad) << "root ::= missing";
  auto e = run(base + "--grammar " + bad);
  EXPECT_NE(e.exit_code, 0);
  EXPECT_NE(e.output.find("error: " + bad + ": grammar: line 1: rule 'missing' is used but not defined"), std::string::npos)
      << e.output;
  std::ofstream(bad) << R"({"type": "string", "pattern": "a+"})";
  e = run(base + "--json-schema " + bad);
  EXPECT_NE(e.output.find("error: " + bad + ": json schema: unsupported keyword 'pattern' at /"), std::string::npos)
      << e.output;
  EXPECT_NE(run(base + "--grammar " + gfile + " --json-schema " + sfile).exit_code, 0);
  e = run(base + "--grammar " + gfile + " --mtp 2");
  EXPECT_NE(e.output.find("--mtp does not combine with --grammar"), std::string::npos) << e.output;
  for (const auto& f : {gfile, sfile, bad}) fs::remove(f);
}

}  // namespace qnext
