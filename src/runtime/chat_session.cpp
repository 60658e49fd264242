#include "runtime/chat_session.h"

#include <algorithm>

namespace qnext {

using nlohmann::ordered_json;

const char* prompt_reuse_name(PromptReuse r) {
  switch (r) {
    case PromptReuse::TokenPrefix: return "token prefix";
    case PromptReuse::TextPrefix: return "text prefix";
    case PromptReuse::Rebuilt: return "rebuilt";
  }
  return "?";
}

ChatSession::ChatSession(Generator& gen, ChatTemplate tpl, std::string system_prompt, ordered_json template_vars)
    : gen_(gen), tpl_(std::move(tpl)), system_(std::move(system_prompt)), vars_(std::move(template_vars)) {
  reset();
}

void ChatSession::reset() {
  messages_ = ordered_json::array();
  if (!system_.empty()) messages_.push_back({{"role", "system"}, {"content", system_}});
  gen_.reset();
}

Result<std::vector<int32_t>> ChatSession::prompt_ids(PromptReuse* how) {
  auto text = tpl_.render(messages_, ordered_json(), /*add_generation_prompt=*/true, vars_);
  if (!text) return err("chat template: " + text.error());
  const Tokenizer& tok = gen_.tokenizer();
  std::vector<int32_t> ids = tok.encode(text.value());
  const auto& have = gen_.tokens();
  *how = PromptReuse::TokenPrefix;
  if (have.size() <= ids.size() && std::equal(have.begin(), have.end(), ids.begin())) return ids;
  // The state holds the model's own tokens, which need not be how the text tokenizes; if the text
  // still matches, keep those tokens (the model saw them) and tokenize only the new text. The split
  // point never falls inside a character: decode() would have produced U+FFFD and not matched.
  const std::string seen = tok.decode(have);
  if (!have.empty() && text->compare(0, seen.size(), seen) == 0) {
    *how = PromptReuse::TextPrefix;
    std::vector<int32_t> out = have;
    auto rest = tok.encode(std::string_view(text.value()).substr(seen.size()));
    out.insert(out.end(), rest.begin(), rest.end());
    return out;
  }
  *how = PromptReuse::Rebuilt;
  return ids;
}

Result<ChatTurn> ChatSession::send(const std::string& user_text, const GenerateOptions& opt,
                                   const DeltaCallback& on_delta) {
  messages_.push_back({{"role", "user"}, {"content", user_text}});
  ChatTurn turn;
  auto ids = prompt_ids(&turn.reuse);
  if (!ids) {
    messages_.erase(messages_.end() - 1);
    return err(ids.error());
  }
  // The Thinking template opens <think> in the prompt: the output starts inside the reasoning.
  const std::string tail = gen_.tokenizer().decode(std::span<const int32_t>(ids->data(), ids->size()).last(
      std::min<size_t>(ids->size(), 4)));
  const bool reasoning_open = tail.find("<think>") != std::string::npos && tail.find("</think>") == std::string::npos;

  ChatOutputStream stream(reasoning_open);
  auto gen = gen_.generate(ids.value(), opt, [&](std::string_view piece) {
    auto d = stream.feed(piece);
    if (on_delta && !d.empty()) on_delta(d);
  });
  if (!gen) {
    messages_.erase(messages_.end() - 1);
    return err(gen.error());
  }
  if (auto d = stream.finish(); on_delta && !d.empty()) on_delta(d);
  turn.gen = std::move(gen.value());
  turn.output = parse_chat_output(turn.gen.text, reasoning_open);
  messages_.push_back({{"role", "assistant"}, {"content", turn.output.content}});
  return turn;
}

}  // namespace qnext
