// Model output (think / answer / tool calls) through parse_chat_output, and the same text streamed
// through ChatOutputStream in chunks chosen by the input: the deltas must add up to the one-shot
// parse, as chat_output.h promises. First byte: bit 0 = reasoning_open, the rest seeds the chunking.
#include <string>

#include "fuzz_common.h"
#include "tokenizer/chat_output.h"

using namespace qnext;

static std::string calls_str(const std::vector<ToolCall>& calls) {
  std::string s;
  for (const auto& c : calls) s += c.raw + "\x1f" + c.name + "\x1f" + c.error + "\x1f" + c.arguments.dump() + "\x1e";
  return s;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool reasoning_open = data[0] & 1;
  uint32_t rng = data[0] >> 1;
  const std::string_view text = fuzz::as_text(data + 1, size - 1);

  const ChatOutput whole = parse_chat_output(text, reasoning_open);

  ChatOutputStream s(reasoning_open || text.find("</think>") != std::string_view::npos);
  std::string reasoning, content;
  std::vector<ToolCall> calls;
  auto add = [&](ChatOutputStream::Delta d) {
    reasoning += d.reasoning;
    content += d.content;
    for (auto& c : d.tool_calls) calls.push_back(std::move(c));
  };
  for (size_t pos = 0; pos < text.size();) {
    rng = rng * 1103515245u + 12345u;
    const size_t n = 1 + (rng >> 16) % 13;
    add(s.feed(text.substr(pos, n)));
    pos += n;
  }
  add(s.finish());
  FUZZ_CHECK(s.has_reasoning() == whole.has_reasoning);
  FUZZ_CHECK(reasoning == whole.reasoning, reasoning + " vs " + whole.reasoning);
  FUZZ_CHECK(content == whole.content, content + " vs " + whole.content);
  FUZZ_CHECK(calls_str(calls) == calls_str(whole.tool_calls));
  return 0;
}
