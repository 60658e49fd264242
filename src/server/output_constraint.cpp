#include "server/output_constraint.h"

#include "runtime/json_schema.h"

namespace qnext::server {

using json = nlohmann::ordered_json;

namespace {

ApiResult<std::string> tool_call_grammar(const ToolForcing& f) {
  // One JSON object per call: {"name": <a tool's name>, "arguments": <its parameters>}.
  json calls = json::array();
  for (size_t i = 0; i < f.tools.size(); ++i) {
    const json& fn = f.tools[i]["function"];
    json args = fn.contains("parameters") && fn["parameters"].is_object() ? fn["parameters"] : json{{"type", "object"}};
    calls.push_back({{"type", "object"},
                     {"properties", {{"name", {{"const", fn["name"]}}}, {"arguments", args}}},
                     {"required", {"name", "arguments"}},
                     {"additionalProperties", false}});
  }
  json schema = calls.size() == 1 ? calls[0] : json{{"anyOf", calls}};
  auto g = json_schema_to_grammar(schema, "call-json");
  if (!g) return bad_param("tools", "tool parameters: " + g.error());
  std::string root = f.one_call ? "root ::= call\n" : "root ::= call ( \"\\n\" call )*\n";
  return root + "call ::= \"<tool_call>\\n\" call-json \"\\n</tool_call>\"\n" + g.value();
}

}  // namespace

ApiResult<std::string> output_grammar(const json& request, const ToolForcing& tools) {
  std::string format = "text";
  const json* rf = nullptr;
  if (auto it = request.find("response_format"); it != request.end() && it->is_object()) {
    rf = &*it;
    format = rf->value("type", "text");
  }
  if (format != "text" && tools.forced)
    return bad_param("response_format", "'response_format' " + format +
                                            " and a forced tool call ('tool_choice') cannot both constrain the output");
  if (tools.forced) return tool_call_grammar(tools);
  if (format == "json_object") return json_object_grammar();
  if (format == "json_schema") {
    auto g = json_schema_to_grammar((*rf)["json_schema"]["schema"]);
    if (!g) return bad_param("response_format.json_schema.schema", g.error());
    return g.value();
  }
  return std::string();
}

}  // namespace qnext::server
