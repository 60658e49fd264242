#include "server/props.h"

#include <cstdio>
#include <cstdlib>

namespace qnext::server {

using json = nlohmann::ordered_json;

namespace {

// Sampling values are floats: 0.7f would print as 0.699999988079071, which the page would show.
double shown(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", double(v));
  return std::strtod(buf, nullptr);
}

}  // namespace

ThinkingSupport thinking_support(const ChatTemplate& tpl) {
  const json chat = json::array({json{{"role", "user"}, {"content", "Hi"}}});
  auto plain = tpl.render(chat, nullptr, true);
  auto on = tpl.render(chat, nullptr, true, json{{"enable_thinking", true}});
  auto off = tpl.render(chat, nullptr, true, json{{"enable_thinking", false}});
  ThinkingSupport t;
  if (!plain) return t;
  t.switchable = on && off && on.value() != off.value();
  t.on_by_default = t.switchable ? (on.value() == plain.value()) : prompt_opens_reasoning(plain.value());
  return t;
}

json props_json(const ApiContext& ctx, bool api_key_required) {
  const SamplingParams& d = ctx.defaults;
  const ThinkingSupport t = ctx.tpl ? thinking_support(*ctx.tpl) : ThinkingSupport{};
  return json{
      {"model", ctx.model_id},
      {"context_size", ctx.ctx},
      {"api_key_required", api_key_required},
      {"chat_template", ctx.tpl.has_value()},
      {"thinking", {{"switchable", t.switchable}, {"on_by_default", t.on_by_default}}},
      {"default_sampling",
       {{"temperature", shown(d.temperature)},
        {"top_p", shown(d.top_p)},
        {"top_k", d.top_k},
        {"min_p", shown(d.min_p)},
        {"presence_penalty", shown(d.presence_penalty)},
        {"frequency_penalty", shown(d.frequency_penalty)},
        {"repetition_penalty", shown(d.repetition_penalty)}}},
  };
}

}  // namespace qnext::server
