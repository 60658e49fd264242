#include "runtime/generator.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "runtime/stop_strings.h"

namespace qnext {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::Eos: return "eos";
    case StopReason::StopString: return "stop string";
    case StopReason::MaxTokens: return "max tokens";
    case StopReason::Grammar: return "grammar complete";
  }
  return "?";
}

std::vector<int32_t> collect_eos_ids(const Config& config, const Tokenizer& tok, const GenerationConfig& gen) {
  std::vector<int32_t> ids(config.eos_token_ids.begin(), config.eos_token_ids.end());
  if (tok.eos_id() >= 0) ids.push_back(tok.eos_id());
  ids.insert(ids.end(), gen.eos_token_ids.begin(), gen.eos_token_ids.end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

Generator::Generator(Model& model, Tokenizer tok, SamplingParams sampling, std::vector<int32_t> eos_ids)
    : model_(model), tok_(std::move(tok)), sampler_(sampling), eos_(std::move(eos_ids)), state_(model.new_state()) {}

bool Generator::is_eos(int32_t id) const { return std::find(eos_.begin(), eos_.end(), id) != eos_.end(); }

void Generator::set_logit_hook(LogitHook hook) {
  hook_ = std::move(hook);
  if (spec_) spec_->set_logit_hook(hook_);
}

Status Generator::enable_mtp(SpecOptions opt) {
  if (!model_.has_mtp()) return err("the model has no MTP weights (mtp.*): --mtp needs them");
  spec_ = std::make_unique<SpeculativeDecoder>(model_, opt);
  spec_->set_logit_hook(hook_);
  reset();
  return Ok{};
}

void Generator::reset() {
  if (spec_) spec_->reset();
  state_.reset();
  tokens_.clear();
  logits_.clear();
}

Result<int> Generator::set_prompt(std::span<const int32_t> prompt) {
  const int vocab = model_.config().vocab_size;
  for (int32_t id : prompt)
    if (id < 0 || id >= vocab) return err("token id " + std::to_string(id) + " is outside the vocabulary");
  const bool extends = tokens_.size() <= prompt.size() && std::equal(tokens_.begin(), tokens_.end(), prompt.begin());
  if (!extends) {
    reset();
    ++resets_;
    if (cache_ && !spec_) {
      const int n = cache_->restore(prompt, state_, &logits_);
      tokens_.assign(prompt.begin(), prompt.begin() + n);
    }
  }
  const auto rest = prompt.subspan(tokens_.size());
  if (rest.empty()) {
    // Same ids as the state: the logits after them are still at hand.
    if (logits_.empty()) return err("empty prompt");
    return 0;
  }
  ForwardOptions opt;
  model_.forward(state_, rest, opt, spec_ ? &hidden_ : nullptr, &logits_);
  if (spec_) spec_->fed(hidden_);
  tokens_.insert(tokens_.end(), rest.begin(), rest.end());
  if (cache_) cache_->put(tokens_, state_, logits_);
  return int(rest.size());
}

Result<GenerationResult> Generator::generate(std::span<const int32_t> prompt, const GenerateOptions& opt,
                                             const TextCallback& on_text) {
  GenerationResult r;
  r.prompt_tokens = int(prompt.size());
  const int resets_before = resets_;
  auto t0 = Clock::now();
  auto fed = set_prompt(prompt);
  if (!fed) return err(fed.error());
  r.prefilled_tokens = fed.value();
  r.state_reset = resets_ != resets_before;
  r.prefill_s = seconds_since(t0);

  auto t1 = Clock::now();
  IncrementalDecoder decoder(tok_);
  StopStringMatcher stops(opt.stop_strings);
  auto emit = [&](const std::string& s) {
    if (s.empty()) return;
    r.text += s;
    if (on_text) on_text(s);
  };
  std::vector<int32_t> history = tokens_;  // penalties see the whole conversation
  const int V = model_.config().vocab_size;
  // Takes a sampled token; true when generation ends with it.
  auto take = [&](int32_t t) {
    r.ids.push_back(t);
    history.push_back(t);
    if (!opt.ignore_eos && is_eos(t)) {
      r.stop = StopReason::Eos;
      return true;
    }
    emit(stops.feed(decoder.push(t)));
    if (stops.stopped()) {
      r.stop = StopReason::StopString;
      return true;
    }
    return int(r.ids.size()) >= opt.max_tokens;
  };
  if (opt.max_tokens <= 0) {
    r.decode_s = seconds_since(t1);
    return r;
  }
  std::optional<grammar::GrammarConstraint> constraint;
  if (grammar_) constraint.emplace(grammar_);
  // The next token from logits_: the hook, the grammar's mask, then the sampler. -1 when the
  // grammar allows nothing (complete, and no EOS id to end with).
  auto pick = [&]() -> int32_t {
    scratch_.assign(logits_.begin(), logits_.begin() + V);
    if (hook_) hook_(scratch_);
    if (constraint && constraint->apply(scratch_) == 0) return -1;
    const int32_t t = sampler_.sample(scratch_, history);
    // Refused only past the matcher's ambiguity bounds (grammar.h): the output ends there.
    if (constraint && !constraint->accept(t)) return -1;
    return t;
  };
  int32_t next = pick();
  bool done = next < 0 || take(next);
  if (next < 0) r.stop = StopReason::Grammar;
  while (!done) {
    if (spec_ && !constraint) {
      // One main-model step yields 1..K+1 tokens; the state then holds all but the last.
      spec_->step(state_, tokens_, next, sampler_, history, spec_out_);
      tokens_.push_back(next);
      size_t used = 0;
      while (used < spec_out_.size() && !done) done = take(spec_out_[used++]);
      spec_->keep(state_, int(used));  // a stop inside the step: the state holds only what was taken
      tokens_.insert(tokens_.end(), spec_out_.begin(), spec_out_.begin() + ptrdiff_t(used) - 1);
      next = spec_out_[used - 1];
      logits_ = spec_->logits();
      continue;
    }
    ForwardOptions fo;
    model_.forward(state_, std::span<const int32_t>(&next, 1), fo, nullptr, &logits_);
    tokens_.push_back(next);
    next = pick();
    if (next < 0) {
      r.stop = StopReason::Grammar;
      break;
    }
    done = take(next);
  }
  if (r.stop != StopReason::StopString) {
    emit(stops.feed(decoder.flush()));
    if (stops.stopped())
      r.stop = StopReason::StopString;
    else
      emit(stops.flush());
  }
  r.decode_s = seconds_since(t1);
  return r;
}

}  // namespace qnext
