// Parsing what a Qwen3(-Next) model generates: `<think>…</think>` reasoning, the answer, and
// `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>` blocks.
// The Thinking template pre-fills `<think>\n` in the prompt, so generated text may hold only
// `reasoning</think>answer`. Reasoning and content have their surrounding newlines removed
// (the inverse of how the templates render them); tool-call blocks are cut out of the content.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace qnext {

struct ToolCall {
  std::string name;
  nlohmann::ordered_json arguments;  // usually an object; a string if the model wrote non-JSON text
  std::string raw;                   // the text between <tool_call> and </tool_call>
  std::string error;                 // empty if the call parsed; else why it did not (name/arguments unset)
  bool ok() const { return error.empty(); }
};

struct ChatOutput {
  bool has_reasoning = false;  // a <think> section was present (or pre-filled and closed)
  std::string reasoning;
  std::string content;  // the answer, without tool-call blocks
  std::vector<ToolCall> tool_calls;
};

// Parses a complete generation. A `</think>` anywhere means what precedes it is reasoning, even
// without an opening `<think>` (pre-filled by the prompt). reasoning_open says the prompt ended
// inside <think> (e.g. the Thinking template): then text with no `</think>` at all is reasoning
// that was cut off, not an answer.
ChatOutput parse_chat_output(std::string_view text, bool reasoning_open = false);

// Incremental version for streaming: feed() decoded text as it arrives and get back what is now
// certain; tags split across chunks are held back until complete. The concatenation of all the
// deltas (plus finish()) equals parse_chat_output() of the whole text when reasoning_open is set
// correctly (a stream cannot look ahead for a `</think>`).
class ChatOutputStream {
 public:
  struct Delta {
    std::string reasoning;
    std::string content;
    std::vector<ToolCall> tool_calls;
    bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
  };

  explicit ChatOutputStream(bool reasoning_open = false) : reasoning_open_(reasoning_open) {}
  Delta feed(std::string_view text);
  Delta finish();  // end of generation: flushes held text; an unclosed tool call becomes an error entry
  bool has_reasoning() const { return has_reasoning_; }

 private:
  enum class State { Start, Reasoning, Content, ToolCall };
  // Newlines at the start of a section are dropped; trailing ones are held until more text follows.
  struct Channel {
    bool started = false;
    std::string held;
  };
  void run(Delta& d, bool final);
  static void emit(Channel& ch, std::string_view text, std::string& out);

  bool reasoning_open_;
  bool has_reasoning_ = false;
  State state_ = State::Start;
  std::string buf_;
  Channel reasoning_, content_;
};

// Parses the inside of one <tool_call> block.
ToolCall parse_tool_call(std::string_view inner);

}  // namespace qnext
