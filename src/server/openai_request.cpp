#include "server/openai_request.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "io/json_parse.h"
#include "server/output_constraint.h"

namespace qnext::server {

using json = nlohmann::ordered_json;

namespace {

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "a number";
  }
}

// Reads optional fields of one JSON object; null counts as absent (clients send null for "not
// given"). The first problem is kept in err, named by its parameter path.
class Fields {
 public:
  explicit Fields(const json& obj, std::string prefix = "") : obj_(obj), prefix_(std::move(prefix)) {}

  std::optional<ApiError> err;

  const json* get(const char* key) const {
    auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }
  std::string name(const char* key) const { return prefix_ + key; }

  void fail(const char* key, const std::string& msg) {
    if (!err) err = bad_param(name(key), msg);
  }
  void wrong_type(const char* key, const char* want, const json& v) {
    fail(key, "'" + name(key) + "' must be " + want + ", not " + type_name(v));
  }

  // A number in [lo, hi] (lo excluded when lo_open); true when given and valid.
  bool number(const char* key, double& out, double lo, double hi, bool lo_open = false) {
    const json* v = get(key);
    if (!v) return false;
    if (!v->is_number()) return wrong_type(key, "a number", *v), false;
    double x = v->get<double>();
    if (!std::isfinite(x) || x < lo || x > hi || (lo_open && x == lo)) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "'%s' must be in %s%g, %g], got %g", name(key).c_str(), lo_open ? "(" : "[",
                    lo, hi, x);
      return fail(key, buf), false;
    }
    out = x;
    return true;
  }
  bool number(const char* key, float& out, double lo, double hi, bool lo_open = false) {
    double x;
    if (!number(key, x, lo, hi, lo_open)) return false;
    out = float(x);
    return true;
  }

  // An integer in [lo, hi]; 5.0 counts as 5.
  bool integer(const char* key, int64_t& out, int64_t lo, int64_t hi) {
    const json* v = get(key);
    if (!v) return false;
    int64_t x;
    if (v->is_number_integer()) {
      x = v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MAX : v->get<int64_t>();
    } else if (v->is_number_float() && std::nearbyint(v->get<double>()) == v->get<double>() &&
               std::fabs(v->get<double>()) < 9e18) {
      x = int64_t(v->get<double>());
    } else {
      return wrong_type(key, "an integer", *v), false;
    }
    if (x < lo || x > hi) {
      std::string range = hi == INT64_MAX ? ">= " + std::to_string(lo)
                                          : "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
      return fail(key, "'" + name(key) + "' must be " + range + ", got " + std::to_string(x)), false;
    }
    out = x;
    return true;
  }
  bool integer(const char* key, int& out, int lo, int hi) {
    int64_t x;
    if (!integer(key, x, lo, hi)) return false;
    out = int(x);
    return true;
  }

  bool boolean(const char* key, bool& out) {
    const json* v = get(key);
    if (!v) return false;
    if (!v->is_boolean()) return wrong_type(key, "a boolean", *v), false;
    out = v->get<bool>();
    return true;
  }

  bool string(const char* key, std::string& out) {
    const json* v = get(key);
    if (!v) return false;
    if (!v->is_string()) return wrong_type(key, "a string", *v), false;
    out = v->get<std::string>();
    return true;
  }

  // An object (or absent); returns it or null.
  const json* object(const char* key) {
    const json* v = get(key);
    if (v && !v->is_object()) return wrong_type(key, "an object", *v), nullptr;
    return v;
  }

 private:
  const json& obj_;
  std::string prefix_;
};

ApiResult<json> parse_body(std::string_view body) {
  auto j = parse_json<json>(body, "request body");
  if (!j) return ApiError{400, j.error(), "invalid_request_error", "", ""};
  if (!j->is_object()) return ApiError{400, "request body must be a JSON object", "invalid_request_error", "", ""};
  return std::move(j).value();
}

constexpr size_t kMaxStopStrings = 16, kMaxStopBytes = 4096;

// The fields both endpoints share: sampling, n, stop, max tokens, stream options. The prompt
// length is known by then, so max_tokens is checked against the context here too.
struct Common {
  bool stream = false, include_usage = false;
};

std::optional<ApiError> read_common(Fields& f, const ApiContext& ctx, int prompt_len, const char* prompt_param,
                                    GenRequest& g, Common& c) {
  SamplingParams& s = g.sampling;
  s = ctx.defaults;
  f.number("temperature", s.temperature, 0, 1e6);
  f.number("top_p", s.top_p, 0, 1, /*lo_open=*/true);
  int top_k = s.top_k;
  if (f.integer("top_k", top_k, -1, INT32_MAX)) s.top_k = std::max(top_k, 0);  // -1 (vLLM) and 0: off
  f.number("min_p", s.min_p, 0, 1);
  f.number("presence_penalty", s.presence_penalty, -2, 2);
  f.number("frequency_penalty", s.frequency_penalty, -2, 2);
  f.number("repetition_penalty", s.repetition_penalty, 0, 1e6, /*lo_open=*/true);
  int64_t seed;
  s.seed = f.integer("seed", seed, INT64_MIN, INT64_MAX) ? uint64_t(seed) : random_seed();
  int n = 1;
  if (f.integer("n", n, 1, INT32_MAX) && n != 1) f.fail("n", "only n = 1 is supported");
  f.boolean("ignore_eos", g.ignore_eos);

  if (const json* stop = f.get("stop")) {
    if (stop->is_string()) {
      g.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const auto& x : *stop) {
        if (!x.is_string()) {
          f.fail("stop", "'stop' must be a string or an array of strings");
          break;
        }
        g.stop.push_back(x.get<std::string>());
      }
    } else {
      f.wrong_type("stop", "a string or an array of strings", *stop);
    }
    std::erase(g.stop, std::string());  // an empty stop string would end every request at once
    // The engine checks every stop string after every token: bounded, so one request cannot slow
    // down everybody's decoding.
    size_t bytes = 0;
    for (const auto& x : g.stop) bytes += x.size();
    if (g.stop.size() > kMaxStopStrings || bytes > kMaxStopBytes)
      f.fail("stop", "at most " + std::to_string(kMaxStopStrings) + " stop strings of " + std::to_string(kMaxStopBytes) +
                         " bytes in all");
  }

  f.boolean("stream", c.stream);
  if (const json* so = f.object("stream_options")) {
    Fields sf(*so, "stream_options.");
    sf.boolean("include_usage", c.include_usage);
    if (sf.err && !f.err) f.err = sf.err;
  }
  if (f.err) return f.err;

  // Context: the prompt must leave room for at least one token; max_tokens defaults to the rest.
  if (prompt_len >= ctx.ctx) {
    return ApiError{400,
                    "This model's maximum context length is " + std::to_string(ctx.ctx) +
                        " tokens. However, your prompt has " + std::to_string(prompt_len) + " tokens.",
                    "invalid_request_error", prompt_param, "context_length_exceeded"};
  }
  int64_t max_tokens = ctx.ctx - prompt_len;
  const char* max_key = f.get("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  // Compared as a difference: prompt_len + max_tokens overflows for max_tokens near INT64_MAX.
  if (f.integer(max_key, max_tokens, 1, INT64_MAX) && max_tokens > ctx.ctx - prompt_len) {
    const bool sum_fits = max_tokens <= INT64_MAX - prompt_len;
    return ApiError{400,
                    "This model's maximum context length is " + std::to_string(ctx.ctx) + " tokens. However, you requested " +
                        (sum_fits ? std::to_string(prompt_len + max_tokens) : std::string("more than ") + std::to_string(INT64_MAX)) +
                        " tokens (" + std::to_string(prompt_len) +
                        " in the prompt, " + std::to_string(max_tokens) + " in the completion).",
                    "invalid_request_error", max_key, "context_length_exceeded"};
  }
  if (f.err) return f.err;
  g.max_tokens = int(max_tokens);
  return std::nullopt;
}

// A message's content as the template's string: a string, or the text of an array of parts.
ApiResult<json> flatten_content(const json& content, const std::string& param) {
  if (content.is_string()) return content;
  if (!content.is_array()) return bad_param(param, "'" + param + "' must be a string or an array of content parts");
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    std::string p = param + "[" + std::to_string(i) + "]";
    if (!part.is_object()) return bad_param(p, "'" + p + "' must be an object");
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) return bad_param(p + ".type", "'" + p + ".type' must be a string");
    if (*type != "text") {
      return bad_param(p + ".type", "content part type '" + type->get<std::string>() +
                                        "' is not supported (only 'text')");
    }
    auto t = part.find("text");
    if (t == part.end() || !t->is_string()) return bad_param(p + ".text", "'" + p + ".text' must be a string");
    if (i > 0) text += '\n';  // parts joined by newlines, as vLLM does
    text += t->get<std::string>();
  }
  return json(text);
}

// Validates `tools` and picks those the template shows under `tool_choice`.
struct ToolSetup {
  json tools;  // null when the prompt gets none
  bool parse = false;
  bool forced = false;    // "required" or a named function: the output is constrained to tool calls
  bool one_call = false;  // a named function
};

ApiResult<ToolSetup> read_tools(const json& req) {
  ToolSetup out;
  const json* tools = nullptr;
  if (auto it = req.find("tools"); it != req.end() && !it->is_null()) {
    if (!it->is_array()) return bad_param("tools", "'tools' must be an array");
    tools = &*it;
  }
  std::vector<std::string> names;
  if (tools) {
    for (size_t i = 0; i < tools->size(); ++i) {
      const json& t = (*tools)[i];
      std::string p = "tools[" + std::to_string(i) + "]";
      if (!t.is_object()) return bad_param(p, "'" + p + "' must be an object");
      auto type = t.find("type");
      if (type == t.end() || *type != "function") return bad_param(p + ".type", "'" + p + ".type' must be \"function\"");
      auto fn = t.find("function");
      if (fn == t.end() || !fn->is_object()) return bad_param(p + ".function", "'" + p + ".function' must be an object");
      auto name = fn->find("name");
      if (name == fn->end() || !name->is_string() || name->get<std::string>().empty())
        return bad_param(p + ".function.name", "'" + p + ".function.name' must be a non-empty string");
      if (auto d = fn->find("description"); d != fn->end() && !d->is_null() && !d->is_string())
        return bad_param(p + ".function.description", "'" + p + ".function.description' must be a string");
      if (auto pa = fn->find("parameters"); pa != fn->end() && !pa->is_null() && !pa->is_object())
        return bad_param(p + ".function.parameters", "'" + p + ".function.parameters' must be an object");
      names.push_back(name->get<std::string>());
    }
  }
  const bool have_tools = tools && !tools->empty();

  std::string choice = have_tools ? "auto" : "none";
  std::string named;
  if (auto it = req.find("tool_choice"); it != req.end() && !it->is_null()) {
    if (it->is_string()) {
      choice = it->get<std::string>();
      if (choice != "auto" && choice != "none" && choice != "required")
        return bad_param("tool_choice", "'tool_choice' must be \"auto\", \"none\", \"required\" or a function");
    } else if (it->is_object()) {
      auto fn = it->find("function");
      auto type = it->find("type");
      if (type == it->end() || *type != "function" || fn == it->end() || !fn->is_object() || !fn->contains("name") ||
          !(*fn)["name"].is_string())
        return bad_param("tool_choice", "'tool_choice' must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
      choice = "function";
      named = (*fn)["name"].get<std::string>();
    } else {
      return bad_param("tool_choice", "'tool_choice' must be a string or an object");
    }
  }
  if ((choice == "required" || choice == "function") && !have_tools)
    return bad_param("tool_choice", "'tool_choice' " + (named.empty() ? choice : "'" + named + "'") +
                                        " needs a non-empty 'tools'");
  if (choice == "function" && std::find(names.begin(), names.end(), named) == names.end())
    return bad_param("tool_choice", "tool_choice names function '" + named + "', which is not in 'tools'");

  if (!have_tools || choice == "none") return out;  // rendered without tools, output not parsed
  out.parse = true;
  out.forced = choice == "required" || choice == "function";
  out.one_call = choice == "function";
  if (choice == "function") {  // show the model only the tool it must call
    out.tools = json::array();
    for (const auto& t : *tools)
      if (t["function"]["name"] == named) out.tools.push_back(t);
  } else {
    out.tools = *tools;
  }
  return out;
}

std::optional<ApiError> check_response_format(Fields& f) {
  const json* rf = f.object("response_format");
  if (!rf) return f.err;
  auto type = rf->find("type");
  if (type == rf->end() || !type->is_string() ||
      (*type != "text" && *type != "json_object" && *type != "json_schema"))
    return bad_param("response_format.type", "'response_format.type' must be \"text\", \"json_object\" or \"json_schema\"");
  if (*type == "json_schema") {
    auto js = rf->find("json_schema");
    if (js == rf->end() || !js->is_object())
      return bad_param("response_format.json_schema", "'response_format.json_schema' must be an object");
    auto schema = js->find("schema");
    if (schema == js->end() || !schema->is_object())
      return bad_param("response_format.json_schema.schema", "'response_format.json_schema.schema' must be an object");
    if (auto name = js->find("name"); name != js->end() && !name->is_string())
      return bad_param("response_format.json_schema.name", "'response_format.json_schema.name' must be a string");
  }
  return std::nullopt;
}

// response_format or a forced tool call: the grammar the output obeys (after the reasoning block
// when the prompt opens one, as vLLM's reasoning parsers do).
std::optional<ApiError> constrain_output(const json& req, const ToolSetup& tools, const ApiContext& ctx, ChatRequest& out) {
  auto text = output_grammar(req, ToolForcing{tools.forced, tools.one_call, tools.tools});
  if (!text) return text.error();
  if (text->empty()) return std::nullopt;
  if (!ctx.grammars)
    return ApiError{400, "this server does not constrain outputs (no grammar support configured)", "invalid_request_error",
                    tools.forced ? "tool_choice" : "response_format", ""};
  auto masker = ctx.grammars->get(*text);
  if (!masker)
    return ApiError{400, "output grammar: " + masker.error(), "invalid_request_error",
                    tools.forced ? "tool_choice" : "response_format", ""};
  out.gen.grammar = masker.value();
  if (out.reasoning_open)
    if (auto end = ctx.tok.token_id("</think>")) out.gen.grammar_after = *end;
  return std::nullopt;
}

int vocab_of(const ApiContext& ctx) { return ctx.vocab > 0 ? ctx.vocab : int(ctx.tok.vocab_size()); }

}  // namespace

bool prompt_opens_reasoning(std::string_view prompt) {
  size_t open = prompt.rfind("<think>");
  return open != std::string_view::npos && prompt.find("</think>", open) == std::string_view::npos;
}

ApiResult<json> convert_messages(const json& messages) {
  if (!messages.is_array()) return bad_param("messages", "'messages' must be an array");
  if (messages.empty()) return bad_param("messages", "'messages' must not be empty");
  json out = json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string p = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return bad_param(p, "'" + p + "' must be an object");
    auto role_it = m.find("role");
    if (role_it == m.end() || !role_it->is_string()) return bad_param(p + ".role", "'" + p + ".role' must be a string");
    std::string role = role_it->get<std::string>();
    if (role == "developer") role = "system";  // OpenAI's newer name for the system role
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
      return bad_param(p + ".role", "'" + p + ".role' must be system, user, assistant or tool, not '" + role + "'");

    json msg = json::object();
    msg["role"] = role;
    auto content = m.find("content");
    const bool has_content = content != m.end() && !content->is_null();
    const bool has_calls = role == "assistant" && m.contains("tool_calls") && !m["tool_calls"].is_null();
    if (has_content) {
      auto text = flatten_content(*content, p + ".content");
      if (!text) return text.error();
      msg["content"] = std::move(text.value());
    } else if (role == "assistant") {
      msg["content"] = "";  // allowed when the assistant only called tools
    } else {
      return bad_param(p + ".content", "'" + p + ".content' is required for role '" + role + "'");
    }
    if (auto name = m.find("name"); name != m.end() && !name->is_null()) {
      if (!name->is_string()) return bad_param(p + ".name", "'" + p + ".name' must be a string");
      msg["name"] = *name;
    }
    if (role == "assistant") {
      if (auto r = m.find("reasoning_content"); r != m.end() && r->is_string()) msg["reasoning_content"] = *r;
    }
    if (role == "tool") {
      if (auto id = m.find("tool_call_id"); id != m.end() && !id->is_null()) {
        if (!id->is_string()) return bad_param(p + ".tool_call_id", "'" + p + ".tool_call_id' must be a string");
        msg["tool_call_id"] = *id;
      }
    }
    if (has_calls) {
      const json& calls = m["tool_calls"];
      if (!calls.is_array()) return bad_param(p + ".tool_calls", "'" + p + ".tool_calls' must be an array");
      json conv = json::array();
      for (size_t k = 0; k < calls.size(); ++k) {
        const json& c = calls[k];
        const std::string cp = p + ".tool_calls[" + std::to_string(k) + "]";
        if (!c.is_object() || !c.contains("function") || !c["function"].is_object())
          return bad_param(cp + ".function", "'" + cp + ".function' must be an object");
        const json& fn = c["function"];
        if (!fn.contains("name") || !fn["name"].is_string())
          return bad_param(cp + ".function.name", "'" + cp + ".function.name' must be a string");
        json args = json::object();
        if (auto a = fn.find("arguments"); a != fn.end() && !a->is_null()) {
          if (a->is_string()) {  // OpenAI sends arguments as JSON text; the template wants the object
            // Parsed with the body's nesting limit: the text is from the client just the same.
            auto parsed = parse_json<json>(a->get<std::string>(), "'" + cp + ".function.arguments'");
            if (!parsed) {
              const bool deep = parsed.error().find("nested deeper") != std::string::npos;
              return bad_param(cp + ".function.arguments",
                               deep ? parsed.error() : "'" + cp + ".function.arguments' is not valid JSON");
            }
            args = std::move(parsed).value();
          } else if (a->is_object()) {
            args = *a;
          } else {
            return bad_param(cp + ".function.arguments", "'" + cp + ".function.arguments' must be a JSON string");
          }
        }
        json call = json::object();
        if (auto id = c.find("id"); id != c.end() && id->is_string()) call["id"] = *id;
        call["type"] = "function";
        call["function"] = json{{"name", fn["name"]}, {"arguments", std::move(args)}};
        conv.push_back(std::move(call));
      }
      msg["tool_calls"] = std::move(conv);
    }
    out.push_back(std::move(msg));
  }
  return out;
}

// The ids of `text` whose first reused.text_len bytes are the cached ids reused.ids.
static std::vector<int32_t> encode_after(const Tokenizer& tok, const StateCache::TextPrefix& reused,
                                         std::string_view text) {
  std::vector<int32_t> ids = reused.ids;
  const auto rest = tok.encode(text.substr(reused.text_len));
  ids.insert(ids.end(), rest.begin(), rest.end());
  return ids;
}

// Where the newest message starts in the prompt ids, when the conversation before it renders to a
// prefix of the prompt: the engine snapshots the state there, so the next request that shares the
// conversation up to that message (a regenerated answer, another question after the same system
// prompt or document) restores it instead of prefilling it. Empty when it is not a clean prefix.
static std::vector<int> newest_message_start(const ApiContext& ctx, const json& messages, const json& tools,
                                             const json& vars, const StateCache::TextPrefix& reused,
                                             const std::string& prompt_text, const std::vector<int32_t>& prompt) {
  if (messages.size() < 2) return {};
  const json earlier(messages.begin(), messages.end() - 1);
  auto text = ctx.tpl->render(earlier, tools, /*add_generation_prompt=*/false, vars);
  if (!text || text->empty() || !prompt_text.starts_with(text.value()) || text->size() < reused.text_len) return {};
  const auto ids = encode_after(ctx.tok, reused, text.value());
  if (ids.empty() || ids.size() >= prompt.size() || !std::equal(ids.begin(), ids.end(), prompt.begin())) return {};
  return {int(ids.size())};
}

ApiResult<ChatRequest> parse_chat_request(std::string_view body, const ApiContext& ctx) {
  try {
    auto parsed = parse_body(body);
    if (!parsed) return parsed.error();
    const json& req = parsed.value();
    if (!req.contains("messages")) return bad_param("messages", "'messages' is required");
    auto messages = convert_messages(req["messages"]);
    if (!messages) return messages.error();
    auto tools = read_tools(req);
    if (!tools) return tools.error();

    ChatRequest out;
    out.parse_tools = tools->parse;
    Fields f(req);
    if (auto e = check_response_format(f)) return *e;
    f.boolean("logprobs", out.logprobs);
    if (f.integer("top_logprobs", out.top_logprobs, 0, 20) && !out.logprobs)
      f.fail("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    json vars = json::object();
    if (const json* kw = f.object("chat_template_kwargs")) vars = *kw;  // vLLM's extension, e.g. enable_thinking
    if (f.err) return *f.err;

    if (!ctx.tpl) return ApiError{400, "the model has no chat template: " + ctx.tpl_error, "invalid_request_error", "", ""};
    auto prompt = ctx.tpl->render(messages.value(), tools->tools, /*add_generation_prompt=*/true, vars);
    if (!prompt) return ApiError{400, "chat template: " + prompt.error(), "invalid_request_error", "messages", ""};
    out.prompt_text = std::move(prompt.value());
    out.reasoning_open = prompt_opens_reasoning(out.prompt_text);
    const StateCache::TextPrefix reused = ctx.cached_prefix ? ctx.cached_prefix(out.prompt_text) : StateCache::TextPrefix{};
    out.gen.prompt = encode_after(ctx.tok, reused, out.prompt_text);
    if (out.gen.prompt.empty()) return bad_param("messages", "the rendered prompt is empty");
    out.gen.snapshot_at = newest_message_start(ctx, messages.value(), tools->tools, vars, reused, out.prompt_text,
                                               out.gen.prompt);

    Common c;
    if (auto e = read_common(f, ctx, int(out.gen.prompt.size()), "messages", out.gen, c)) return *e;
    out.stream = c.stream;
    out.include_usage = c.include_usage;
    out.gen.top_logprobs = out.logprobs ? out.top_logprobs : -1;
    if (auto e = constrain_output(req, *tools, ctx, out)) return *e;
    return out;
  } catch (const nlohmann::json::exception& e) {  // a shape the checks above missed: still the client's fault
    return ApiError{400, std::string("invalid request: ") + e.what(), "invalid_request_error", "", ""};
  }
}

ApiResult<CompletionRequest> parse_completion_request(std::string_view body, const ApiContext& ctx) {
  try {
    auto parsed = parse_body(body);
    if (!parsed) return parsed.error();
    const json& req = parsed.value();
    CompletionRequest out;

    // prompt: "text", [ids], ["text"] or [[ids]]; one prompt only.
    auto it = req.find("prompt");
    if (it == req.end() || it->is_null()) return bad_param("prompt", "'prompt' is required");
    json prompt = *it;
    if (prompt.is_array() && prompt.size() == 1 && (prompt[0].is_string() || prompt[0].is_array())) prompt = prompt[0];
    if (prompt.is_string()) {
      out.prompt_text = prompt.get<std::string>();
      out.gen.prompt = ctx.tok.encode(out.prompt_text);
    } else if (prompt.is_array()) {
      const int vocab = vocab_of(ctx);
      for (const auto& x : prompt) {
        if (x.is_string() || x.is_array()) return bad_param("prompt", "only one prompt per request is supported");
        if (!x.is_number_integer()) return bad_param("prompt", "'prompt' must be a string or an array of token ids");
        int64_t id = x.is_number_unsigned() ? int64_t(std::min<uint64_t>(x.get<uint64_t>(), INT64_MAX)) : x.get<int64_t>();
        if (id < 0 || id >= vocab)
          return bad_param("prompt", "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                         std::to_string(vocab) + ")");
        out.gen.prompt.push_back(int32_t(id));
      }
      out.prompt_text = ctx.tok.decode(out.gen.prompt);
    } else {
      return bad_param("prompt", "'prompt' must be a string or an array of token ids");
    }
    if (out.gen.prompt.empty()) return bad_param("prompt", "'prompt' must not be empty");

    Fields f(req);
    f.boolean("echo", out.echo);
    f.integer("logprobs", out.logprobs, 0, 5);
    int best_of = 1;
    if (f.integer("best_of", best_of, 1, INT32_MAX) && best_of != 1) f.fail("best_of", "only best_of = 1 is supported");
    if (f.err) return *f.err;
    Common c;
    if (auto e = read_common(f, ctx, int(out.gen.prompt.size()), "prompt", out.gen, c)) return *e;
    out.stream = c.stream;
    out.include_usage = c.include_usage;
    out.gen.top_logprobs = out.logprobs;  // -1 when not asked
    return out;
  } catch (const nlohmann::json::exception& e) {
    return ApiError{400, std::string("invalid request: ") + e.what(), "invalid_request_error", "", ""};
  }
}

}  // namespace qnext::server
