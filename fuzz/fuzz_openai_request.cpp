// HTTP request bodies through parse_chat_request / parse_completion_request, with the real
// tokenizer and the Qwen3-Next Instruct or Thinking template (assets/tokenizer), as `qnext serve`
// runs them. First byte: bit 0 picks the endpoint (chat / completions), bit 1 the template. An
// accepted request must be one the engine can run: a non-empty prompt of in-vocabulary ids that
// leaves room for max_tokens within the context, bounded stop strings, sane sampling values.
// A refused one is a 400 with a message. A constrained output's grammar (from response_format or
// tool_choice) must compile: the converter never writes a grammar the engine cannot run.
#include <cmath>
#include <fstream>
#include <sstream>

#include "fuzz_common.h"
#include "server/openai_request.h"

using namespace qnext;
using namespace qnext::server;

namespace {

constexpr int kCtx = 4096;

std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

ApiContext make_ctx(bool thinking) {
  auto tok = Tokenizer::load(fuzz::assets("tokenizer"));
  if (!tok) fuzz::fail("cannot load assets/tokenizer", tok.error());
  auto tpl = ChatTemplate::from_source(
      read(fuzz::assets(thinking ? "tokenizer/qwen3-next-thinking.jinja" : "tokenizer/qwen3-next-instruct.jinja")));
  if (!tpl) fuzz::fail("cannot parse the chat template", tpl.error());
  SamplingParams d;
  d.temperature = 0.7f;
  d.top_p = 0.8f;
  d.top_k = 20;
  ApiContext c{tok.value(), tpl.value(), "", d, kCtx, 0, "fuzz-model", {}, {}};
  // Output grammars (response_format, forced tool calls) are converted and compiled as the server
  // does; building a masker walks nothing until a step asks for a mask.
  c.grammars = std::make_shared<grammar::GrammarCache>(
      grammar::GrammarVocab::from_tokenizer(c.tok, std::vector<int32_t>{151645, 151643}), 4);
  return c;
}

const ApiContext& ctx(bool thinking) {
  static const ApiContext instruct = make_ctx(false), think = make_ctx(true);
  return thinking ? think : instruct;
}

void check_gen(const GenRequest& g, const ApiContext& c) {
  FUZZ_CHECK(!g.prompt.empty());
  for (int32_t id : g.prompt) FUZZ_CHECK(id >= 0 && size_t(id) < c.tok.vocab_size(), std::to_string(id));
  FUZZ_CHECK(g.max_tokens >= 1 && int64_t(g.prompt.size()) + g.max_tokens <= c.ctx);
  FUZZ_CHECK(g.stop.size() <= 16);
  for (const auto& s : g.stop) FUZZ_CHECK(!s.empty());
  FUZZ_CHECK(g.top_logprobs >= -1 && g.top_logprobs <= 20);
  const SamplingParams& s = g.sampling;
  FUZZ_CHECK(std::isfinite(s.temperature) && s.temperature >= 0);
  FUZZ_CHECK(s.top_p > 0 && s.top_p <= 1 && s.min_p >= 0 && s.min_p <= 1 && s.top_k >= 0);
  FUZZ_CHECK(std::isfinite(s.repetition_penalty) && s.repetition_penalty > 0);
  FUZZ_CHECK(std::fabs(s.presence_penalty) <= 2 && std::fabs(s.frequency_penalty) <= 2);
  for (int at : g.snapshot_at) FUZZ_CHECK(at > 0 && size_t(at) < g.prompt.size());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)ctx(false);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool completion = data[0] & 1;
  const ApiContext& c = ctx(data[0] & 2);
  const std::string_view body = fuzz::as_text(data + 1, size - 1);
  if (completion) {
    auto r = parse_completion_request(body, c);
    if (!r) {
      FUZZ_CHECK(r.error().status == 400 && !r.error().message.empty());
      return 0;
    }
    check_gen(r->gen, c);
    FUZZ_CHECK(r->logprobs >= -1 && r->logprobs <= 5);
  } else {
    auto r = parse_chat_request(body, c);
    if (!r) {
      FUZZ_CHECK(r.error().status == 400 && !r.error().message.empty());
      FUZZ_CHECK(!r.error().message.starts_with("output grammar:"), r.error().message);
      return 0;
    }
    check_gen(r->gen, c);
    FUZZ_CHECK(!r->prompt_text.empty());
  }
  return 0;
}
