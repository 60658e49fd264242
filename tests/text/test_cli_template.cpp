// `qnext template`: renders golden_chat.jsonl through the binary and compares with `rendered`.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

using nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

const std::string kData = QNEXT_TEST_DATA;
const std::string kAssets = kData + "/../../assets/tokenizer";

struct RunResult {
  int status = -1;
  std::string out;
};

// Runs a shell command, capturing stdout (stderr goes to `err_file`).
RunResult run(const std::string& cmd) {
  RunResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class CliTemplate : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qnext_cli_tpl_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

}  // namespace

TEST_F(CliTemplate, RendersGoldenCases) {
  // Group the golden cases by template, one run of the binary per template.
  std::map<std::string, std::vector<ordered_json>> by_template;
  std::ifstream f(kData + "/tokenizer/golden_chat.jsonl");
  ASSERT_TRUE(f);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) {
      auto c = ordered_json::parse(line);
      by_template[c["template"].get<std::string>()].push_back(c);
    }
  ASSERT_EQ(by_template.size(), 3u);
  size_t checked = 0;
  for (const auto& [name, cases] : by_template) {
    fs::path in = dir_ / (name + ".jsonl");
    {
      std::ofstream o(in, std::ios::binary);
      for (const auto& c : cases)
        o << ordered_json{{"messages", c["messages"]},
                          {"tools", c["tools"]},
                          {"add_generation_prompt", c["add_generation_prompt"]},
                          {"kwargs", c["kwargs"]}}
                 .dump()
          << "\n";
    }
    auto r = run(std::string(QNEXT_BIN) + " template --template '" + kAssets + "/" + name + ".jinja' --jsonl '" +
                 in.string() + "'");
    ASSERT_EQ(r.status, 0) << name;
    std::istringstream outs(r.out);
    for (const auto& c : cases) {
      ASSERT_TRUE(std::getline(outs, line)) << "missing output for " << c["id"];
      EXPECT_EQ(ordered_json::parse(line).get<std::string>(), c["rendered"].get<std::string>()) << c["id"];
      ++checked;
    }
    EXPECT_FALSE(std::getline(outs, line)) << "extra output";
  }
  EXPECT_EQ(checked, 48u);
}

TEST_F(CliTemplate, ModelDirAndNonAsciiOutput) {
  fs::path in = dir_ / "in.jsonl";
  std::ofstream(in) << R"({"messages": [{"role": "user", "content": "héllo 北京"}], "add_generation_prompt": true})"
                    << "\n";
  auto r = run(std::string(QNEXT_BIN) + " template --model '" + kAssets + "' --jsonl '" + in.string() + "'");
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "\"<|im_start|>user\\nhéllo 北京<|im_end|>\\n<|im_start|>assistant\\n\"\n");
}

TEST_F(CliTemplate, ErrorsNameTheLine) {
  fs::path in = dir_ / "bad.jsonl";
  std::ofstream(in) << R"({"messages": [{"role": "user", "content": "a"}]})" << "\n"
                    << R"({"messages": "oops"})" << "\n";
  fs::path err = dir_ / "err.txt";
  auto r = run(std::string(QNEXT_BIN) + " template --template '" + kAssets + "/qwen3-next-instruct.jinja' --jsonl '" +
               in.string() + "' 2>'" + err.string() + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(slurp(err).find("line 2"), std::string::npos) << slurp(err);

  // A render error (raise_exception) is reported with the jsonl line and the template line.
  fs::path tpl = dir_ / "raise.jinja";
  std::ofstream(tpl) << "x\n{{ raise_exception('no system role') }}";
  r = run(std::string(QNEXT_BIN) + " template --template '" + tpl.string() + "' --jsonl '" + in.string() + "' 2>'" +
          err.string() + "'");
  EXPECT_NE(r.status, 0);
  std::string e = slurp(err);
  EXPECT_NE(e.find("line 1"), std::string::npos) << e;
  EXPECT_NE(e.find("no system role"), std::string::npos) << e;

  r = run(std::string(QNEXT_BIN) + " template --jsonl '" + in.string() + "' 2>/dev/null");
  EXPECT_NE(r.status, 0);
}

TEST_F(CliTemplate, ToolsNested50000Deep) {
  // Rejected while parsing (copying or converting it would overflow the stack).
  fs::path in = dir_ / "deep.jsonl";
  std::ofstream(in) << R"({"messages": [], "tools": [)" << std::string(50000, '[') << std::string(50000, ']') << "]}\n";
  fs::path err = dir_ / "err.txt";
  auto r = run(std::string(QNEXT_BIN) + " template --template '" + kAssets + "/qwen3-next-instruct.jinja' --jsonl '" +
               in.string() + "' 2>'" + err.string() + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(slurp(err), "error: " + in.string() + " line 1: the line: JSON nested deeper than 256 levels\n");
}
