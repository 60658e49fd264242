// MTP speculative decoding: the model's own multi-token-prediction head drafts K tokens, the main
// model verifies them in one forward of K+1 tokens, and the tokens that come out are exactly the
// ones plain decoding gives (greedy: token for token; sampling: the same distribution, by the
// speculative-sampling rule with every sampler setting applied to both the draft and the main
// distribution).
//
// Per step, with the state holding tokens 0..n-1 and `next` (token n) sampled but not fed:
//   draft:  MTP slot n-1 = (main hidden h[n-1], next) -> d1; slot n+j-1 = (MTP hidden, d_j) -> d_{j+1}
//   verify: main forward of [next, d1..dK] at positions n..n+K, recording the DeltaNet states
//           after each token; accept drafts while they match (greedy) or pass min(1, p/q)
//   rewind: keep the accepted m+1 tokens: DeltaNet conv/recurrent states from the recording,
//           KV caches and positions cut; the MTP head's chained slots are dropped and refed
//           next step from the main model's hidden states (so its KV cache holds only
//           main-hidden slots, as in plain MTP).
//
// Rollback by recorded per-token DeltaNet states rather than recomputation: recording costs a
// copy of each layer's state per verified token (written while it is hot in cache), while
// recomputing the kept prefix is a second forward pass (all weights again) on every step with a
// rejection. Measured in `qnext bench --mtp` (see README, "Speculative decoding").
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "model/qwen3_next.h"
#include "model/state.h"
#include "runtime/sampling.h"

namespace qnext {

constexpr int kMaxDrafts = 4;

struct SpecOptions {
  int k = 0;      // drafts per step, 1..kMaxDrafts; 0: adaptive, up to max_k
  int max_k = 3;  // the adaptive choice's ceiling
};

struct SpecStats {
  int64_t verify_steps = 0, plain_steps = 0;  // main-model forwards: with drafts, without
  int64_t proposed = 0, accepted = 0;         // drafts
  int64_t tokens = 0;                         // tokens those steps produced
  double verify_s = 0, plain_s = 0, draft_s = 0;
  int64_t k_hist[kMaxDrafts + 1] = {};        // steps run with each K (0: plain)

  int64_t steps() const { return verify_steps + plain_steps; }
  double acceptance() const { return proposed ? double(accepted) / double(proposed) : 0; }
  double tokens_per_step() const { return steps() ? double(tokens) / double(steps()) : 0; }
  // Mean verify forward over mean plain decode forward (0 when either was not seen).
  double verify_cost() const {
    return verify_steps && plain_steps ? (verify_s / double(verify_steps)) / (plain_s / double(plain_steps)) : 0;
  }
  std::string summary() const;  // one line for --verbose
};

class SpeculativeDecoder {
 public:
  // Sees the drafts after the MTP head made them and decides them (tests: an oracle that
  // proposes the true continuation, or one that proposes only wrong tokens); when sampling, the
  // hook's drafts count as drawn from a point mass. context: every token so far (fed ones, then
  // `next`).
  using DraftHook = std::function<void(std::span<const int32_t> context, std::span<int32_t> drafts)>;
  using LogitHook = std::function<void(std::span<float>)>;  // as Generator's, on the main logits

  SpeculativeDecoder(Model& model, SpecOptions opt);

  // Call after each forward the caller makes on the state outside step() (prompts), with the
  // hidden rows [T, H] it returned: the MTP head catches up on them lazily.
  void fed(std::span<const float> hidden);
  // Forget everything (the state was reset or replaced).
  void reset() { pending_.clear(); }
  // The MTP head can draft from this state: the hidden rows it has not consumed yet are at hand.
  bool in_sync(const SequenceState& st) const;
  // When in sync: feeds the MTP head every pending row but the last (the token after each is in
  // fed_ids, every token fed so far), so only one row stays pending (see pending_rows).
  void catch_up(SequenceState& st, std::span<const int32_t> fed_ids);
  // [P, H] main hidden rows of positions st.mtp_pos.. the MTP head has not consumed.
  std::span<const float> pending_rows() const { return pending_; }

  // One step. In: st holds `fed_ids` (every token fed so far), `next` was sampled after them and
  // is not fed. history: the tokens the sampler's penalties see (ending with `next`).
  // Out: `out` = the tokens that follow `next` (accepted drafts, then the main model's own),
  // 1..K+1 of them; st holds fed_ids, next and all of out but its last; logits() is the main
  // model's [V] after st's last token.
  void step(SequenceState& st, std::span<const int32_t> fed_ids, int32_t next, Sampler& sampler,
            std::span<const int32_t> history, std::vector<int32_t>& out);
  // Keeps only the first `n` (1..out.size()) tokens of the last step's out: st then holds
  // fed_ids, next, out[0..n-2] (a stop string or max_tokens ended the output early).
  void keep(SequenceState& st, int n);
  const std::vector<float>& logits() const { return logits_; }

  void set_draft_hook(DraftHook h) { draft_hook_ = std::move(h); }
  void set_logit_hook(LogitHook h) { logit_hook_ = std::move(h); }
  const SpecStats& stats() const { return stats_; }
  int choose_k() const;  // the K the next step will use
  // The K (0..max_k) with the most expected tokens per second: K drafts each accepted with
  // probability alpha give 1 + alpha + ... + alpha^K tokens for verify[K + 1] + K * draft seconds
  // (verify: [kMaxDrafts + 2] by tokens verified, 0 = unmeasured: the byte model's +15% per
  // token guessed), against 1 token per `plain` seconds.
  static int best_k(double alpha, double plain, const double* verify, double draft, int max_k);

 private:
  // Feeds pending hidden rows (all but the last `leave`) to the MTP head; next_ids: their tokens.
  void feed_mtp(SequenceState& st, std::span<const int32_t> next_ids, bool want_logits);
  int32_t accept_or_replace(std::span<float> p_logits, const float* q, int32_t draft, Sampler& s, bool* accepted);

  Model& model_;
  SpecOptions opt_;
  DraftHook draft_hook_;
  LogitHook logit_hook_;
  SpecStats stats_;
  DeltaNetHistory history_;
  std::vector<float> pending_;         // [P, H] main hidden of positions st.mtp_pos..st.pos-1
  std::vector<float> mtp_hidden_, mtp_logits_;  // [rows, H], [rows, V] of the last MTP call
  std::vector<float> q_;               // [K, V] draft distributions
  std::vector<float> row_, p_, resid_;  // [V] main logits row, its distribution, the residual
  std::vector<float> v_hidden_, v_logits_;  // verify: [K+1, H], [K+1, V]
  std::vector<float> logits_;          // [V] after the state's last token
  std::vector<int32_t> ids_, hist_;    // verify ids [K+1]; history with drafts
  int last_tokens_ = 0, last_start_ = 0;  // the last verify: tokens fed, start position
  // Adaptive K: running acceptance and step costs (seconds).
  double alpha_ = 0.7, plain_t_ = 0, draft_t_ = 0;
  double verify_t_[kMaxDrafts + 2] = {};  // by tokens verified (2..K+1)
};

}  // namespace qnext
