// The forward pass's scratch buffers (model-internal: qwen3_next.cpp and moe_schedule.cpp).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/matmul.h"
#include "model/qwen3_next.h"

namespace qnext {

// Scratch buffers reused across calls (grown, never shrunk), so steady decoding does not allocate.
struct Model::Workspace {
  std::vector<float> x, normed, mixed, out, ffn;  // [T, H] residual stream and helpers
  std::vector<float> hidden, mtp_x;               // [T, H] final-normed hidden; the MTP layer's stream
  std::vector<float> proj, proj2;                 // projections: [T, width]
  std::vector<float> conv_out, z, gb, core;       // DeltaNet: [T, C], [T, Hv Dv], [T, 2 Hv], [T, Hv Dv]
  std::vector<float> conv_prev;                   // [K-1, C] a recorded segment's conv window before the call
  std::vector<float> qkv, attn;                   // attention: [T, ...]
  std::vector<float> router;                      // [T, E]
  std::vector<int> expert_ids;                    // [T, k]
  std::vector<float> expert_w;                    // [T, k]
  std::vector<const MlpWeights*> expert_weights;  // [E] the routed experts' weights of this call
  std::vector<int> fetch_ids;                     // distinct experts of this call
  std::vector<const MlpWeights*> fetched;         // their weights, as the expert source gave them
  std::vector<uint8_t> fetched_ready, expert_ready;  // whether resident now; [E] the same by expert
  std::vector<Product> pending_products;          // products over experts whose bytes are arriving
  std::vector<std::vector<std::pair<int, float>>> routed;  // [E] tokens routed to each expert
  std::vector<float> gathered, gate_up, act, down;  // MoE per-expert batches
  std::vector<int> solo_experts;                  // experts with 1..solo_max_tokens_ tokens
  std::vector<size_t> run_cut;                    // [runs + 1] where each thread's run of them starts
  std::vector<float> solo_scratch;                // [runs, kSoloMaxTokens * (2 H + 3 I)]
  std::vector<float> run_sums;                    // [runs - 1, T, H]
  std::vector<float> delta_scratch;               // [threads, delta_rule_scratch_floats]
  std::vector<float> cos_sin;                     // [T, rotary_dim]
  std::vector<Product> products;                  // a group of products run as one job
  std::vector<int> expert_slot;                   // [E] an expert's place in step_experts, -1 if unused
  std::vector<std::pair<int, int>> step_experts;  // (expert, tokens) of a decode step, in first-use order
  std::vector<int> expert_first_row, expert_fill;  // [experts + 1] row ranges of their batches; fill count
  std::vector<int> pair_row;                      // [T, k] row of each (token, expert) pair in those batches
  std::vector<Segment> segs;                      // [sequences] of the call, for the current layer
  std::vector<std::pair<int, int>> attn_blocks;   // (segment, first row) of each attention block
  std::vector<float> last_rows;                   // [sequences, H] rows whose logits are wanted
  std::vector<float> batch_logits;                // [sequences, V]
};

inline float* grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace qnext
