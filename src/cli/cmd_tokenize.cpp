// `qnext tokenize --model DIR`: text -> ids (JSON array), --ids -> text, --jsonl FILE -> one
// array per {"text": ...} line. Only the tokenizer files are needed in DIR.
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "tokenizer/tokenizer.h"

namespace qnext::cli {

namespace {

std::string ids_json(const std::vector<int32_t>& ids) { return nlohmann::json(ids).dump(); }

int encode_jsonl(const Tokenizer& tok, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "error: cannot open %s\n", path.c_str());
    return 1;
  }
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("text") || !j["text"].is_string()) {
      std::fprintf(stderr, "error: %s line %d: expected {\"text\": string}\n", path.c_str(), n);
      return 1;
    }
    std::printf("%s\n", ids_json(tok.encode(j["text"].get<std::string>())).c_str());
  }
  return 0;
}

}  // namespace

void register_tokenize(CLI::App& app, int& exit_code) {
  struct Opts {
    std::string model, text, ids, jsonl;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("tokenize", "Text to token ids (JSON), or --ids back to text");
  cmd->add_option("--model,-m", o->model, "Directory with tokenizer.json, or a .gguf file (weights not needed)")->required();
  auto* text = cmd->add_option("text", o->text, "Text to encode");
  auto* ids = cmd->add_option("--ids", o->ids, "Comma-separated ids to decode");
  auto* jsonl = cmd->add_option("--jsonl", o->jsonl, "File of {\"text\": ...} lines to encode");
  text->excludes(ids)->excludes(jsonl);
  ids->excludes(jsonl);
  cmd->callback([o, &exit_code, text, ids, jsonl] {
    exit_code = 1;
    auto tok = Tokenizer::load(o->model);
    if (!tok) {
      std::fprintf(stderr, "error: %s\n", tok.error().c_str());
      return;
    }
    if (jsonl->count()) {
      exit_code = encode_jsonl(tok.value(), o->jsonl);
      return;
    }
    if (ids->count()) {
      auto list = parse_ids(o->ids);
      if (!list) {
        std::fprintf(stderr, "error: %s\n", list.error().c_str());
        return;
      }
      const std::string s = tok->decode(list.value());
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fputc('\n', stdout);
    } else {
      if (!text->count()) {
        std::fprintf(stderr, "error: give text, --ids or --jsonl\n");
        return;
      }
      std::printf("%s\n", ids_json(tok->encode(o->text)).c_str());
    }
    exit_code = 0;
  });
}

}  // namespace qnext::cli
