// `qnext template (--template FILE | --model DIR|GGUF) --jsonl FILE`: renders chat conversations.
// Each input line is {"messages", "tools"?, "add_generation_prompt"?, "kwargs"?}; each output line
// is the rendered prompt as one JSON string (non-ASCII kept as is).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "io/json_parse.h"
#include "template/chat_template.h"

namespace qnext::cli {
namespace {

using nlohmann::ordered_json;

Result<ChatTemplate> open_template(const std::string& file, const std::string& model_dir) {
  if (!model_dir.empty()) return ChatTemplate::load(model_dir);
  std::ifstream f(file, std::ios::binary);
  if (!f) return err("cannot open template " + file);
  std::ostringstream ss;
  ss << f.rdbuf();
  auto t = ChatTemplate::from_source(ss.str());
  if (!t.ok()) return err(file + ": " + t.error());
  return t;
}

// One jsonl line to its rendered text.
Result<std::string> render_line(const ChatTemplate& tpl, const std::string& line) {
  // Depth-limited: a line nested 50,000 deep would overflow the stack when copied or converted.
  auto parsed = parse_json<ordered_json>(line, "the line");
  if (!parsed) return Error{parsed.error()};
  const ordered_json& req = parsed.value();
  if (!req.is_object()) return err("not a JSON object");
  if (!req.contains("messages") || !req["messages"].is_array()) return err("\"messages\" must be a list");
  ordered_json tools = req.value("tools", ordered_json());
  if (!tools.is_null() && !tools.is_array()) return err("\"tools\" must be a list or null");
  ordered_json gen = req.value("add_generation_prompt", ordered_json(false));
  if (!gen.is_boolean()) return err("\"add_generation_prompt\" must be true or false");
  ordered_json kwargs = req.value("kwargs", ordered_json::object());
  if (kwargs.is_null()) kwargs = ordered_json::object();
  if (!kwargs.is_object()) return err("\"kwargs\" must be an object");
  return tpl.render(req["messages"], tools, gen.get<bool>(), kwargs);
}

int run(const std::string& template_file, const std::string& model_dir, const std::string& jsonl) {
  auto tpl = open_template(template_file, model_dir);
  if (!tpl.ok()) {
    std::fprintf(stderr, "error: %s\n", tpl.error().c_str());
    return 1;
  }
  std::ifstream file;
  if (jsonl != "-") {
    file.open(jsonl, std::ios::binary);
    if (!file) {
      std::fprintf(stderr, "error: cannot open %s\n", jsonl.c_str());
      return 1;
    }
  }
  std::istream& in = jsonl == "-" ? std::cin : file;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    auto text = render_line(tpl.value(), line);
    if (!text.ok()) {
      std::fprintf(stderr, "error: %s line %d: %s\n", jsonl.c_str(), n, text.error().c_str());
      return 1;
    }
    std::string out = ordered_json(text.value()).dump(-1, ' ', false, ordered_json::error_handler_t::replace);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fputc('\n', stdout);
  }
  return 0;
}

}  // namespace

void register_template(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("template", "Render chat conversations (JSON lines) with a chat template");
  auto template_file = std::make_shared<std::string>();
  auto model_dir = std::make_shared<std::string>();
  auto jsonl = std::make_shared<std::string>();
  auto* t = cmd->add_option("--template,-t", *template_file, "Jinja chat template file");
  auto* m = cmd->add_option("--model,-m", *model_dir,
                            "Model directory (chat_template.jinja or tokenizer_config.json), or a .gguf file");
  t->excludes(m);
  cmd->add_option("--jsonl", *jsonl, "Input: one {messages, tools, add_generation_prompt, kwargs} per line ('-' = stdin)")
      ->required();
  cmd->callback([=, &exit_code] {
    if (template_file->empty() && model_dir->empty()) {
      std::fprintf(stderr, "error: give --template FILE or --model DIR\n");
      exit_code = 2;
      return;
    }
    exit_code = run(*template_file, *model_dir, *jsonl);
  });
}

}  // namespace qnext::cli
