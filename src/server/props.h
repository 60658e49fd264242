// GET /props: what the chat page (web/) needs to know about the served model before its first
// request: the model id, the context size, generation_config.json's sampling defaults, whether
// the chat template has a thinking switch, and whether /v1 wants an API key. Read-only, and open
// without the key (the page asks for the key only once it knows one is needed).
#pragma once
#include <nlohmann/json.hpp>

#include "server/openai_request.h"
#include "template/chat_template.h"

namespace qnext::server {

struct ThinkingSupport {
  bool switchable = false;  // chat_template_kwargs.enable_thinking changes the prompt (Qwen3 hybrid)
  bool on_by_default = false;  // without the switch: the model reasons (switchable: unless told not to)
};

// Found by rendering a one-message chat with enable_thinking unset, true and false.
ThinkingSupport thinking_support(const ChatTemplate& tpl);

nlohmann::ordered_json props_json(const ApiContext& ctx, bool api_key_required);

}  // namespace qnext::server
