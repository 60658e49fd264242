// A multi-turn chat on top of a Generator: keeps the message history, renders it with the
// model's chat template each turn, and feeds the model only what it has not seen yet.
#pragma once
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/generator.h"
#include "tokenizer/chat_output.h"
#include "template/chat_template.h"

namespace qnext {

// How a turn's prompt was matched against the ids already in the state.
enum class PromptReuse {
  TokenPrefix,  // the tokenized rendering extends the state's ids: only the rest is fed
  TextPrefix,   // the rendering extends the state's text (re-tokenizing the model's own output
                // gave other ids): the state's ids are kept, the new text is tokenized and fed
  Rebuilt,      // neither (e.g. the template dropped old <think> blocks): everything re-fed
};
const char* prompt_reuse_name(PromptReuse r);

struct ChatTurn {
  GenerationResult gen;
  ChatOutput output;  // reasoning / content / tool calls parsed from gen.text
  PromptReuse reuse = PromptReuse::TokenPrefix;
};

class ChatSession {
 public:
  using DeltaCallback = std::function<void(const ChatOutputStream::Delta&)>;

  // template_vars: extra template variables (e.g. {"enable_thinking": false}).
  ChatSession(Generator& gen, ChatTemplate tpl, std::string system_prompt,
              nlohmann::ordered_json template_vars = nlohmann::ordered_json::object());

  // Adds the user message, generates the answer (streamed through on_delta) and stores the
  // answer's content as the assistant message, as Hugging Face does.
  Result<ChatTurn> send(const std::string& user_text, const GenerateOptions& opt, const DeltaCallback& on_delta = {});

  // Renders the history (plus the generation prompt) to ids, reusing the state's ids where it can.
  Result<std::vector<int32_t>> prompt_ids(PromptReuse* how);

  void reset();  // forgets the history and the state
  const nlohmann::ordered_json& messages() const { return messages_; }

 private:
  Generator& gen_;
  ChatTemplate tpl_;
  std::string system_;
  nlohmann::ordered_json vars_;
  nlohmann::ordered_json messages_;
};

}  // namespace qnext
