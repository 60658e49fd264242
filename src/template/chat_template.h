// Chat templates: renders a conversation to the prompt text the way Hugging Face's
// apply_chat_template does (jinja2 with trim_blocks, lstrip_blocks, loop controls, and the
// globals raise_exception / strftime_now).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"
#include "template/jinja_limits.h"

namespace qnext {

namespace jinja {
struct Stmt;
}

class ChatTemplate {
 public:
  // Parses the template; syntax errors (and unknown filters/tests) are reported with their line.
  static Result<ChatTemplate> from_source(std::string source);
  // From a model directory: chat_template.jinja if present, else tokenizer_config.json's
  // "chat_template" (a string, or a list of {name, template} from which "default" is used).
  // Special tokens named in tokenizer_config.json (bos_token, eos_token, ...) become variables.
  // A .gguf file, or a directory holding one and neither of those sources, is read with from_gguf.
  static Result<ChatTemplate> load(const std::string& model_dir);
  // From a GGUF file's metadata (GgufMetadata, io/gguf.h): tokenizer.chat_template, with the
  // tokens its bos/eos/unk/pad ids name as variables. `name` (the file) starts every error.
  static Result<ChatTemplate> from_gguf(const std::map<std::string, nlohmann::json>& metadata, const std::string& name);

  // messages: array of {role, content, ...}; tools: array or null; extra_vars: an object of
  // further variables (e.g. {"enable_thinking": false}), which override the defaults.
  Result<std::string> render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                             bool add_generation_prompt,
                             const nlohmann::ordered_json& extra_vars = nlohmann::ordered_json::object()) const;

  const std::string& source() const { return source_; }

  // The budgets of each render (defaults in template/jinja_limits.h); tests lower them.
  void set_limits(const jinja::RenderLimits& limits) { limits_ = limits; }

 private:
  ChatTemplate() = default;
  std::string source_;
  jinja::RenderLimits limits_;
  std::shared_ptr<const std::vector<std::unique_ptr<jinja::Stmt>>> body_;
  nlohmann::ordered_json special_tokens_ = nlohmann::ordered_json::object();
};

}  // namespace qnext
