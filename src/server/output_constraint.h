// The grammar a chat request's output must obey, from its OpenAI fields: response_format
// {"type": "json_object"} / {"type": "json_schema", "json_schema": {"schema": ...}}, or a forced
// tool call (tool_choice "required" or a named function: the output is one or more
// <tool_call>{"name": ..., "arguments": ...}</tool_call> blocks as the Qwen templates write them,
// the arguments following the tool's parameter schema). No sockets, no engine: testable alone.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "server/api_error.h"

namespace qnext::server {

// The request's tool choice as read_tools resolved it.
struct ToolForcing {
  bool forced = false;      // "required" or a named function
  bool one_call = false;    // a named function: exactly one call
  nlohmann::ordered_json tools;  // the tools the call may use (the named one only, for a named choice)
};

// The grammar text (runtime/grammar.h's syntax), or "" when the output is free; 400 naming the
// field for a schema the converter cannot enforce exactly, or response_format and a forced tool
// call together.
ApiResult<std::string> output_grammar(const nlohmann::ordered_json& request, const ToolForcing& tools);

}  // namespace qnext::server
