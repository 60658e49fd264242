// ChatTemplate (see chat_template.h): loading and the variables transformers passes to a template.
#include "template/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/gguf.h"
#include "io/json_parse.h"
#include "template/jinja_eval.h"
#include "template/jinja_parser.h"

namespace qnext {
namespace {

Result<std::string> read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return err("cannot open " + p.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Result<ChatTemplate> load_gguf(const std::string& path) {
  auto file = GgufCheckpoint::open(path);
  if (!file) return Error{file.error()};
  return ChatTemplate::from_gguf(file->metadata(), file->path());
}

}  // namespace

Result<ChatTemplate> ChatTemplate::from_source(std::string source) {
  auto body = jinja::parse_template(source);
  if (!body.ok()) return Error{body.error()};
  if (auto st = jinja::check_names(*body.value()); !st.ok()) return Error{st.error()};
  ChatTemplate t;
  t.source_ = std::move(source);
  t.body_ = std::move(body.value());
  return t;
}

Result<ChatTemplate> ChatTemplate::load(const std::string& model_dir) {
  namespace fs = std::filesystem;
  const fs::path dir(model_dir);
  std::error_code ec;
  if (dir.extension() == ".gguf" && !fs::is_directory(dir, ec)) return load_gguf(model_dir);  // (missing: its error)
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
  const fs::path config_path = dir / "tokenizer_config.json";
  if (fs::exists(config_path)) {
    auto text = read_file(config_path);
    if (!text.ok()) return Error{text.error()};
    auto parsed = parse_json<nlohmann::ordered_json>(text.value(), config_path.string());
    if (!parsed) return Error{parsed.error()};
    config = std::move(parsed).value();
    if (!config.is_object()) return err(config_path.string() + ": not a JSON object");
  }

  std::string source;
  std::string origin;
  if (fs::exists(dir / "chat_template.jinja")) {
    auto text = read_file(dir / "chat_template.jinja");
    if (!text.ok()) return Error{text.error()};
    source = std::move(text.value());
    origin = (dir / "chat_template.jinja").string();
  } else if (config.contains("chat_template")) {
    const auto& ct = config["chat_template"];
    origin = config_path.string() + " chat_template";
    if (ct.is_string()) {
      source = ct.get<std::string>();
    } else if (ct.is_array()) {
      bool found = false;
      for (const auto& e : ct)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string()) {
          source = e["template"].get<std::string>();
          found = true;
        }
      if (!found) return err(origin + ": no template named \"default\"");
    } else {
      return err(origin + ": expected a string or a list of {name, template}");
    }
  } else if (is_gguf_path(model_dir)) {
    return load_gguf(model_dir);  // HF sources beside a GGUF win; without them, its metadata
  } else {
    return err("no chat template in " + model_dir + " (neither chat_template.jinja nor tokenizer_config.json)");
  }

  auto t = from_source(std::move(source));
  if (!t.ok()) return err(origin + ": " + t.error());
  // Special tokens as transformers passes them: strings, or {"content": ...} objects; unset ones omitted.
  for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token",
                          "mask_token"}) {
    if (!config.contains(key)) continue;
    const auto& v = config[key];
    if (v.is_string()) t.value().special_tokens_[key] = v;
    else if (v.is_object() && v.contains("content") && v["content"].is_string())
      t.value().special_tokens_[key] = v["content"];
  }
  return t;
}

Result<std::string> ChatTemplate::render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                         bool add_generation_prompt, const nlohmann::ordered_json& extra_vars) const {
  if (!body_) return err("chat template not loaded");
  if (!extra_vars.is_null() && !extra_vars.is_object()) return err("template variables must be a JSON object");
  jinja::Vars vars;
  std::string name;  // the variable being converted, for the error
  try {
    name = "messages";
    vars.emplace_back(name, jinja::from_json(messages));
    name = "tools";
    vars.emplace_back(name, jinja::from_json(tools));
    vars.emplace_back("documents", jinja::Value(jinja::None{}));
    vars.emplace_back("add_generation_prompt", jinja::Value(add_generation_prompt));
    for (auto it = special_tokens_.begin(); it != special_tokens_.end(); ++it)
      vars.emplace_back(it.key(), jinja::from_json(it.value()));
    if (extra_vars.is_object())
      for (auto it = extra_vars.begin(); it != extra_vars.end(); ++it) {
        name = it.key();
        vars.emplace_back(name, jinja::from_json(it.value()));  // later entries win
      }
  } catch (const jinja::JinjaError& e) {
    return err("template input '" + name + "': " + e.what());
  }
  return jinja::render(*body_, vars, limits_);
}

}  // namespace qnext
