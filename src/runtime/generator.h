// Text generation for one conversation: owns the sequence state, feeds prompts (only the part
// the state has not seen yet), then samples token by token and streams the decoded text.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"
#include "model/qwen3_next.h"
#include "model/state.h"
#include "runtime/grammar_mask.h"
#include "runtime/sampling.h"
#include "runtime/speculative.h"
#include "runtime/state_cache.h"
#include "tokenizer/tokenizer.h"

namespace qnext {

struct GenerateOptions {
  int max_tokens = 256;
  std::vector<std::string> stop_strings;  // matched on decoded text; never emitted
  bool ignore_eos = false;                // keep going past EOS ids (benchmarks)
};

// Grammar: the grammar is complete and the model has no EOS id to end with.
enum class StopReason { Eos, StopString, MaxTokens, Grammar };
const char* stop_reason_name(StopReason r);

struct GenerationResult {
  std::vector<int32_t> ids;  // generated ids, including the EOS id that ended it
  std::string text;          // the emitted text: no EOS, nothing from a stop string on
  StopReason stop = StopReason::MaxTokens;
  int prompt_tokens = 0;     // length of the whole prompt
  int prefilled_tokens = 0;  // of those, fed now (the rest was already in the state)
  bool state_reset = false;  // the prompt did not extend the state, so it was rebuilt
  double prefill_s = 0, decode_s = 0;
  double prefill_tok_s() const { return prefill_s > 0 ? prefilled_tokens / prefill_s : 0; }
  double decode_tok_s() const { return decode_s > 0 ? ids.size() / decode_s : 0; }
};

// EOS ids of a model: config.json ∪ tokenizer_config.json ∪ generation_config.json.
std::vector<int32_t> collect_eos_ids(const Config& config, const Tokenizer& tok, const GenerationConfig& gen);

class Generator {
 public:
  using TextCallback = std::function<void(std::string_view)>;
  // Changes logits in place before sampling (tests force tokens with it).
  using LogitHook = std::function<void(std::span<float>)>;

  Generator(Model& model, Tokenizer tok, SamplingParams sampling, std::vector<int32_t> eos_ids);

  // Makes the state hold exactly `prompt`. If the ids already fed are a prefix of it, only the
  // remainder is fed; otherwise the state is reset and everything is fed. Returns the count fed.
  Result<int> set_prompt(std::span<const int32_t> prompt);

  // set_prompt, then samples until EOS, a stop string or max_tokens. The last sampled token is
  // not fed (nothing needs its logits), so tokens() ends before it; a next prompt that contains
  // it feeds it then.
  Result<GenerationResult> generate(std::span<const int32_t> prompt, const GenerateOptions& opt,
                                    const TextCallback& on_text = {});

  void reset();
  // With a cache, a prompt that does not extend the state starts from the longest cached prefix
  // (e.g. a Thinking chat whose template drops old <think> blocks resumes at the last prompt),
  // and each prompt fed is snapshotted. The cache outlives the generator; null: none.
  void set_state_cache(StateCache* cache) { cache_ = cache; }
  void set_sampling(const SamplingParams& p) { sampler_ = Sampler(p); }
  void set_logit_hook(LogitHook hook);
  // Constrained decoding: each generate() from here on samples only what the grammar allows
  // (from its start, EOS only where it may end), without MTP drafts. Null: unconstrained.
  void set_grammar(std::shared_ptr<grammar::TokenMasker> masker) { grammar_ = std::move(masker); }
  // MTP speculative decoding (see speculative.h): the same tokens (greedy) or the same
  // distribution (sampling), fewer main-model steps. Needs a model with mtp.* weights; while on,
  // prompts are always fed (not restored from the state cache, which keeps no hidden states).
  Status enable_mtp(SpecOptions opt);
  SpeculativeDecoder* speculative() { return spec_.get(); }

  const std::vector<int32_t>& tokens() const { return tokens_; }  // the ids in the state
  const std::vector<float>& last_logits() const { return logits_; }  // after tokens().back()
  int resets() const { return resets_; }  // prompts that forced a rebuild
  const Tokenizer& tokenizer() const { return tok_; }
  const std::vector<int32_t>& eos_ids() const { return eos_; }
  Model& model() { return model_; }

 private:
  bool is_eos(int32_t id) const;

  Model& model_;
  Tokenizer tok_;
  Sampler sampler_;
  std::vector<int32_t> eos_;
  SequenceState state_;
  std::vector<int32_t> tokens_;
  std::vector<float> logits_, scratch_;
  LogitHook hook_;
  std::shared_ptr<grammar::TokenMasker> grammar_;
  std::unique_ptr<SpeculativeDecoder> spec_;
  std::vector<float> hidden_;      // [T, H] of a prompt fed with MTP on
  std::vector<int32_t> spec_out_;  // one speculative step's tokens
  StateCache* cache_ = nullptr;
  int resets_ = 0;
};

}  // namespace qnext
