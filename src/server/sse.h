// Server-sent events framing for the streaming endpoints: `data: <payload>\n\n` per event and
// the OpenAI terminator `data: [DONE]\n\n`.
#pragma once
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace qnext::server {

// One event; a payload with newlines becomes several `data:` lines (the client joins them with \n).
std::string sse_event(std::string_view payload);
// One event holding a JSON object on a single line (invalid UTF-8 replaced by U+FFFD).
std::string sse_json(const nlohmann::ordered_json& j);
// The end of an OpenAI stream.
inline std::string sse_done() { return "data: [DONE]\n\n"; }

// JSON text for the wire: compact, and never throws on invalid UTF-8 (replaced by U+FFFD).
std::string dump_json(const nlohmann::ordered_json& j);

}  // namespace qnext::server
