// Qwen3-Next: the forward pass. See qwen3_next.cpp, which reads like the architecture.
#pragma once
#include <algorithm>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/expert_peers.h"
#include "model/expert_source.h"
#include "model/state.h"
#include "model/weights.h"

namespace qnext {

// Which form of the gated delta rule a call uses. Both are exact; Auto takes recurrent for one
// token, and for many whichever the ISA runs faster (delta_rule_prefers_recurrent: recurrent on
// AVX2 and AVX-512, chunked on the scalar kernels).
enum class DeltaRuleMode { Auto, Chunked, Recurrent };

// The default prompt slice: 1024 tokens give each of 512 experts ~20 tokens, enough for its
// products to run as GEMMs (kGemmMinTokens, kVnniGemmMinTokens). 2048 was no faster on either the
// AVX2 float GEMM or the VNNI int8 one (q8 slice, pp2048 side by side: within noise) and its
// workspace is twice the size (peak RSS of the q8 slice at pp2048 9.30 -> 9.06 GiB).
int default_prompt_slice();

struct ForwardOptions {
  DeltaRuleMode delta_mode = DeltaRuleMode::Auto;
  bool all_logits = false;            // logits for every row, else the last row only
  bool want_logits = true;
  std::vector<float>* residuals = nullptr;  // when set: [L+1, T, H] embedding then each layer's output
  // When set: every DeltaNet layer's conv window and recurrent state after each of the T tokens
  // ([num_layers, T] states, see DeltaNetHistory), so SequenceState::rewind can keep any prefix
  // (speculative verification). The call goes through in one piece, token by token in the delta
  // rule (the recurrent form, whatever delta_mode says).
  DeltaNetHistory* gdn_history = nullptr;
  // Longer prompts go through in slices of this many tokens (a multiple of the delta-rule chunk),
  // so the workspace stays the size of one slice (default_prompt_slice()).
  int max_tokens_per_call = default_prompt_slice();
};

// One sequence's part of a batched forward: its state and the ids it feeds next.
struct BatchEntry {
  SequenceState* state;
  std::span<const int32_t> ids;          // fed at positions state->pos..
  std::vector<float>* logits = nullptr;  // [V] after the last id; null when not needed
  std::vector<float>* hidden = nullptr;  // [T, H] every id's row after the final norm (the MTP head's input)
};

// The rows of one sequence inside a batched call: rows [row0, row0 + T) of the [rows, H] stream,
// at positions start_pos.., over this layer's state of that sequence.
struct Segment {
  int row0 = 0, T = 0, start_pos = 0;
  DeltaNetState* gdn = nullptr;  // DeltaNet layers
  KvCache* kv = nullptr;         // attention layers
  DeltaNetState* history = nullptr;  // DeltaNet layers, when recording: [T] the state after each row
};

class Model {
 public:
  // recipe: quantize float weights while loading (`--quantize q8`); None keeps them as stored.
  // share: under expert parallelism, the weights this process computes with (the recipe quantizes
  // only those; the rest stay mapped and untouched).
  static Result<std::unique_ptr<Model>> load(const std::string& dir, QuantRecipe recipe = QuantRecipe::None,
                                             const WeightShare& share = {});

  const Config& config() const { return config_; }
  const Weights& weights() const { return weights_; }
  bool has_mtp() const { return weights_.mtp.has_value(); }
  const std::string& dir() const { return dir_; }

  // The element type of the KV caches of states made by new_state(): F32 (default, exact) or F16.
  void set_kv_type(DType t) { kv_type_ = t; }
  DType kv_type() const { return kv_type_; }
  SequenceState new_state() const { return SequenceState(config_, kv_type_); }

  // Prefill MoE: an expert with more tokens than this splits each product across threads; one
  // with fewer runs whole on one thread. Both give the same sums up to float rounding (tested).
  static constexpr int kSoloMaxTokens = 256;
  // Up to this many tokens (decoding, a few sequences at once), the MoE runs every expert's
  // products as one group per stage instead (moe_few_tokens).
  static constexpr int kMoeGroupMaxTokens = 16;
  void set_solo_expert_max_tokens(int n) { solo_max_tokens_ = std::clamp(n, 0, kSoloMaxTokens); }

  // Feeds ids at positions state.pos.. and advances the state.
  // hidden: [T, H] after the final norm (may be null); logits: [T or 1, V] (may be null).
  void forward(SequenceState& state, std::span<const int32_t> ids, const ForwardOptions& opt,
               std::vector<float>* hidden, std::vector<float>* logits);

  // Advances several sequences at once: the tokens of all of them go through every weight matrix
  // together (one read of each matrix per call), while conv, delta rule and attention run per
  // sequence on its own state. Each sequence gets the logits a forward() of its ids alone gives,
  // up to float rounding of the shared products. No slicing: the caller bounds the tokens.
  void forward_batch(std::span<const BatchEntry> batch, DeltaRuleMode mode = DeltaRuleMode::Auto);

  // The MTP head at slots state.mtp_pos..: slot t combines main hidden[t] (after the final norm)
  // with next_ids[t], the token that follows hidden[t]'s position; logits[t] predict the token after.
  // mtp_hidden: [T, H] after mtp.norm (may be null); logits: [T, V].
  void mtp_forward(SequenceState& state, std::span<const int32_t> next_ids, const float* hidden,
                   std::vector<float>* mtp_hidden, std::vector<float>* logits);

  // Routed experts from `source` (an expert cache) instead of the memory-mapped weights; null
  // goes back to those. Results are the same either way.
  void set_expert_source(std::unique_ptr<ExpertSource> source);
  const ExpertSource* expert_source() const { return expert_source_.get(); }
  ExpertSource* expert_source() { return expert_source_.get(); }
  // With an expert source, when decoding: after each layer, apply the next layer's router to the
  // residual stream as it is and hand the experts it picks to the source as a prefetch, so their
  // reads overlap the next layer's token mixer. Changes what is resident, never the results.
  void set_expert_prefetch(bool on) { expert_prefetch_ = on; }

  // Expert parallelism (model/expert_peers.h): routed experts other processes hold are computed
  // there; null computes every expert here. Results equal a single process's up to the order of
  // float sums (theirs are added after this process's own experts and the shared expert).
  void set_expert_peers(std::unique_ptr<ExpertPeers> peers);
  const ExpertPeers* expert_peers() const { return expert_peers_.get(); }
  // What a peer process runs for rank 0: out [T, H] = the sum over pairs (t, j) with ids[t k + j]
  // >= 0 of weights[t k + j] * expert_ids[t k + j](x[t]); no router, no shared expert.
  void routed_experts(const MoeWeights& w, const float* x, int T, std::span<const int> ids,
                      std::span<const float> weights, float* out);

  int64_t parameter_count(bool active_only, bool include_mtp) const;
  size_t weight_bytes() const { return weights_.file_bytes(); }
  // Bytes of weights one decoded token reads (lm_head, projections, router, shared + top-k experts).
  size_t active_weight_bytes() const;

 private:
  struct Workspace;
  Model() = default;

  // Every layer takes the call's rows [T, H] and the segments (sequences) they belong to.
  void decoder_layer(const LayerWeights& w, float* x, int T, std::span<const Segment> segs, DeltaRuleMode mode);
  void gated_delta_net(const DeltaNetWeights& w, const float* x, int T, std::span<const Segment> segs,
                       DeltaRuleMode mode, float* out);
  void gated_attention(const AttentionWeights& w, const float* x, int T, std::span<const Segment> segs, float* out);
  // Sets ws_->segs for layer l (l < 0: the MTP layer) of the batch's sequences.
  std::span<const Segment> layer_segments(std::span<const BatchEntry> batch, int layer);
  void sparse_moe(const MoeWeights& w, const float* x, int T, float* out);
  // Sets ws_->expert_weights[e] for every expert the call's routing picked (ws_->expert_ids).
  void resolve_routed_experts(const MoeWeights& w, int pairs);
  // The prefetch of set_expert_prefetch, after layer `next - 1`; x: [T, H] the residual stream.
  void prefetch_experts(int next, const float* x, int T);
  // The experts of ws_->expert_ids (pairs of id -1 skipped) over x [T, H] into out, plus the
  // shared expert when `shared`.
  void expert_mixture(const MoeWeights& w, const float* x, int T, const float* weight, bool shared, float* out);
  void moe_few_tokens(const MoeWeights& w, const float* x, int T, const float* weight, bool shared, float* out);
  void solo_experts(const MoeWeights& w, const float* x, int T, float* out);
  void mlp(const MlpWeights& w, const float* x, int T, float* out);
  void rope_table(int pos, float* cos_sin) const;
  void project(const float* x, int T, std::initializer_list<std::pair<const Matrix*, float*>> outputs);

  Config config_;
  Weights weights_;
  std::string dir_;
  DType kv_type_ = DType::F32;
  int solo_max_tokens_ = kSoloMaxTokens;
  std::vector<double> inv_freq_;  // [rotary_dim / 2]
  float rope_mscale_ = 1.0f;      // YaRN attention factor on the rotated dims
  std::unique_ptr<Workspace> ws_;
  std::unique_ptr<ExpertSource> expert_source_;  // null: the memory-mapped experts
  std::unique_ptr<ExpertPeers> expert_peers_;    // null: every expert computed here
  bool expert_prefetch_ = false;

 public:
  ~Model();
};

}  // namespace qnext
