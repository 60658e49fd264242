// Arbitrary template text through the Jinja engine: ChatTemplate::from_source (lexer, parser,
// name checks) and, when it parses, a render of a fixed conversation with tools, tool calls and
// reasoning, as a model directory's chat template would be run. Renders get smaller budgets than
// the defaults (template/jinja_limits.h) so that hostile templates fail fast; the limits
// themselves are what is exercised. Any error must come back as an error, never a crash or hang.
#include "fuzz_common.h"
#include "template/chat_template.h"

using namespace qnext;
using json = nlohmann::ordered_json;

namespace {

const json& messages() {
  static const json m = json::parse(R"([
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Weather in Paris and Tokyo?"},
    {"role": "assistant", "content": "", "reasoning_content": "Two cities.",
     "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                    {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Tokyo\"}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "18C"},
    {"role": "tool", "content": "25C"},
    {"role": "assistant", "content": "<think>\nok\n</think>\n\nParis 18C, Tokyo 25C."},
    {"role": "user", "content": ["not", "a", "string", 1, null, {"k": [1.5, true]}]}
  ])");
  return m;
}

const json& tools() {
  static const json t = json::parse(R"([{"type": "function", "function": {"name": "get_weather",
    "description": "Weather of a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
    "required": ["city"]}}}])");
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto tpl = ChatTemplate::from_source(std::string(fuzz::as_text(data, size)));
  if (!tpl) {
    FUZZ_CHECK(!tpl.error().empty());
    return 0;
  }
  jinja::RenderLimits limits;
  limits.max_steps = 200'000;
  limits.max_bytes = 32u << 20;
  limits.max_output = 4u << 20;
  tpl->set_limits(limits);
  for (bool add_generation_prompt : {true, false}) {
    auto out = tpl->render(messages(), add_generation_prompt ? tools() : json(), add_generation_prompt,
                           json{{"enable_thinking", add_generation_prompt}});
    if (!out) FUZZ_CHECK(!out.error().empty());
    else FUZZ_CHECK(out->size() <= limits.max_output);
  }
  return 0;
}
