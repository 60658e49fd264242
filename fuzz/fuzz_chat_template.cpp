// Arbitrary messages / tools / variables rendered into the real Qwen3-Next chat templates
// (assets/tokenizer), as the server and the CLI do. First byte: the template (0 Instruct,
// 1 Thinking, 2 the hybrid Qwen3 one); the rest is a JSON document
//   {"messages": [...], "tools": [...] or null, "add_generation_prompt": bool, "vars": {...}}
// parsed with the server's depth limit. Whatever the values' types, the render must succeed or
// fail with a message.
#include <fstream>
#include <sstream>

#include "fuzz_common.h"
#include "io/json_parse.h"
#include "template/chat_template.h"

using namespace qnext;
using json = nlohmann::ordered_json;

namespace {

ChatTemplate load(const char* file) {
  std::ifstream f(fuzz::assets(file), std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  auto t = ChatTemplate::from_source(ss.str());
  if (!t) fuzz::fail(file, t.error());
  return std::move(t).value();
}

const ChatTemplate& tpl(uint8_t which) {
  static const ChatTemplate t[3] = {load("tokenizer/qwen3-next-instruct.jinja"), load("tokenizer/qwen3-next-thinking.jinja"),
                                    load("tokenizer/qwen3-hybrid.jinja")};
  return t[which % 3];
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)tpl(0);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const ChatTemplate& t = tpl(data[0]);
  auto doc = parse_json<json>(fuzz::as_text(data + 1, size - 1), "fuzz input");
  if (!doc || !doc->is_object()) return 0;
  const json& d = doc.value();
  const json messages = d.contains("messages") ? d["messages"] : json::array();
  const json tools = d.contains("tools") ? d["tools"] : json();
  const bool add = d.contains("add_generation_prompt") && d["add_generation_prompt"].is_boolean() &&
                   d["add_generation_prompt"].get<bool>();
  const json vars = d.contains("vars") && d["vars"].is_object() ? d["vars"] : json::object();
  auto out = t.render(messages, tools, add, vars);
  if (!out) FUZZ_CHECK(!out.error().empty());
  return 0;
}
