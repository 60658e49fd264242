// How the mixture of experts runs its products (qwen3_next.cpp's sparse_moe routes the tokens):
// an expert with many tokens splits each product across the threads; experts with few run whole,
// one per task (solo_experts); decoding's few tokens send every expert's products out as two
// groups (moe_few_tokens). With an expert source (the expert cache, an expert's bytes read from
// disk) the routed experts are resolved and prefetched here too.
#include <algorithm>

#include "core/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/moe.h"
#include "kernels/norm.h"
#include "model/qwen3_next.h"
#include "model/workspace.h"

namespace qnext {

// out[token] += weight * y[i] for the i-th (token, weight) of an expert's batch; y: [n, H].
static void add_weighted_rows(const std::vector<std::pair<int, float>>& batch, const float* y, int H, float* out) {
  for (size_t i = 0; i < batch.size(); ++i) {
    float* o = out + size_t(batch[i].first) * H;
    const float s = batch[i].second;
    for (int d = 0; d < H; ++d) o[d] += s * y[i * size_t(H) + d];
  }
}

void Model::expert_mixture(const MoeWeights& w, const float* x, int T, const float* weight, bool shared, float* out) {
  const Config& c = config_;
  const int H = c.hidden_size, E = c.num_experts, k = c.num_experts_per_tok;
  Workspace& ws = *ws_;
  resolve_routed_experts(w, T * k);

  if (T <= kMoeGroupMaxTokens) {
    moe_few_tokens(w, x, T, weight, shared, out);
    return;
  }

  // The shared expert sees every token, scaled by its own sigmoid gate.
  std::fill_n(out, size_t(T) * H, 0.0f);
  if (shared && w.has_shared) {
    mlp(w.shared, x, T, out);
    float* gate = grow(ws.proj2, size_t(T));  // [T, 1]
    matmul(w.shared_gate, x, T, gate);
    for (int t = 0; t < T; ++t) {
      const float s = sigmoid(gate[t]);
      for (int i = 0; i < H; ++i) out[size_t(t) * H + i] *= s;
    }
  }

  if (expert_source_) expert_source_->wait();  // the shared expert ran while the disk read

  // Routed experts: each runs once over the batch of tokens routed to it. An expert with many
  // tokens splits each of its products across threads; the rest run whole on one thread each.
  auto& routed = ws.routed;  // [E] -> (token, weight)
  routed.resize(size_t(E));
  for (auto& r : routed) r.clear();
  for (int t = 0; t < T; ++t)
    for (int j = 0; j < k; ++j)
      if (const int e = ws.expert_ids[size_t(t) * k + j]; e >= 0) routed[size_t(e)].push_back({t, weight[size_t(t) * k + j]});
  auto& solo = ws.solo_experts;  // experts small enough to run on one thread
  solo.clear();
  for (int e = 0; e < E; ++e) {
    const auto& batch = routed[size_t(e)];
    const int n = int(batch.size());
    if (n == 0) continue;
    if (n <= solo_max_tokens_) {
      solo.push_back(e);
      continue;
    }
    float* in = grow(ws.gathered, size_t(n) * H);  // [n, H]
    for (int i = 0; i < n; ++i) std::copy_n(x + size_t(batch[size_t(i)].first) * H, H, in + size_t(i) * H);
    float* y = grow(ws.down, size_t(n) * H);  // [n, H]
    mlp(*ws.expert_weights[size_t(e)], in, n, y);
    add_weighted_rows(batch, y, H, out);
  }
  solo_experts(w, x, T, out);
}

void Model::set_expert_source(std::unique_ptr<ExpertSource> source) { expert_source_ = std::move(source); }

void Model::set_expert_peers(std::unique_ptr<ExpertPeers> peers) { expert_peers_ = std::move(peers); }

void Model::resolve_routed_experts(const MoeWeights& w, int pairs) {
  Workspace& ws = *ws_;
  const size_t E = w.experts.size();
  ws.expert_weights.resize(E);
  if (!expert_source_) {
    for (size_t e = 0; e < E; ++e) ws.expert_weights[e] = &w.experts[e];
    return;
  }
  // The distinct experts picked, ascending; the cache holds at least one layer's worth.
  auto& ids = ws.fetch_ids;
  ids.clear();
  for (int i = 0; i < pairs; ++i)
    if (ws.expert_ids[size_t(i)] >= 0) ids.push_back(ws.expert_ids[size_t(i)]);  // -1: another process's
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::fill(ws.expert_weights.begin(), ws.expert_weights.end(), nullptr);
  ws.fetched.resize(ids.size());
  ws.fetched_ready.resize(ids.size());
  ws.expert_ready.assign(E, 0);
  expert_source_->fetch(w, ids, ws.fetched, ws.fetched_ready);
  for (size_t i = 0; i < ids.size(); ++i) {
    ws.expert_weights[size_t(ids[i])] = ws.fetched[i];
    ws.expert_ready[size_t(ids[i])] = ws.fetched_ready[i];
  }
}

void Model::prefetch_experts(int next, const float* x, int T) {
  const Config& c = config_;
  if (!expert_source_ || !expert_prefetch_ || T > kMoeGroupMaxTokens || next >= c.num_layers) return;
  const LayerWeights& w = weights_.layers[size_t(next)];
  if (!w.is_moe) return;
  const int H = c.hidden_size, E = c.num_experts, k = c.num_experts_per_tok;
  Workspace& ws = *ws_;
  // The router's input is rmsnorm(x + mixer(x)); the mixer's part is not known yet, so x stands in.
  float* normed = grow(ws.normed, size_t(T) * H);
  for (int t = 0; t < T; ++t) rms_norm(x + size_t(t) * H, w.post_attention_norm.data(), H, c.rms_norm_eps, normed + size_t(t) * H);
  float* logits = grow(ws.router, size_t(T) * E);  // [T, E]
  matmul(w.moe.router, normed, T, logits);
  auto& ids = ws.fetch_ids;
  ids.resize(size_t(T) * k);
  float* weight = grow(ws.expert_w, size_t(T) * k);
  for (int t = 0; t < T; ++t)
    route_top_k(logits + size_t(t) * E, E, k, c.norm_topk_prob, ids.data() + size_t(t) * k, weight + size_t(t) * k);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  expert_source_->prefetch(w.moe, ids);
}

// Experts with few tokens, one whole expert per task: no hand-off per product, and each thread
// packs its own tokens once. The experts are cut into one contiguous run per thread with about
// equal work; run 0 adds into `out`, run g > 0 into its own [T, H] sum, and those sums are added
// in run order, so the result never depends on which thread ran what.
void Model::solo_experts(const MoeWeights& w, const float* x, int T, float* out) {
  const Config& c = config_;
  const int H = c.hidden_size, I = c.moe_intermediate_size;
  Workspace& ws = *ws_;
  const auto& solo = ws.solo_experts;
  if (solo.empty()) return;
  // Work of an expert ~ its tokens, plus a fixed part for converting its weights (~4 tokens' worth).
  constexpr int kFixedCost = 4;
  size_t total = 0;
  for (int e : solo) total += ws.routed[size_t(e)].size() + kFixedCost;
  const int runs = int(std::min<size_t>(size_t(global_pool().size()), solo.size()));
  std::vector<size_t>& cut = ws.run_cut;  // run g: solo[cut[g], cut[g + 1])
  cut.assign(1, 0);
  size_t acc = 0;
  for (size_t i = 0; i < solo.size() && int(cut.size()) < runs; ++i) {
    acc += ws.routed[size_t(solo[i])].size() + kFixedCost;
    if (acc * size_t(runs) >= total * cut.size()) cut.push_back(i + 1);
  }
  while (int(cut.size()) <= runs) cut.push_back(solo.size());
  const size_t per_run = size_t(kSoloMaxTokens) * (2 * size_t(H) + 3 * size_t(I));  // in, gate|up, act, y
  float* scratch = grow(ws.solo_scratch, size_t(runs) * per_run);
  float* sums = grow(ws.run_sums, size_t(runs - 1) * size_t(T) * H);  // [runs - 1, T, H]
  global_pool().parallel_tasks(size_t(runs), [&](size_t g, int) {
    float* target = g == 0 ? out : sums + (g - 1) * size_t(T) * H;
    if (g > 0) std::fill_n(target, size_t(T) * H, 0.0f);
    float* in = scratch + g * per_run;               // [n, H]
    float* gate = in + size_t(kSoloMaxTokens) * H;   // [n, I], then up [n, I]
    float* act = gate + size_t(kSoloMaxTokens) * 2 * I;  // [n, I]
    float* y = act + size_t(kSoloMaxTokens) * I;     // [n, H]
    for (size_t i = cut[g]; i < cut[g + 1]; ++i) {
      const auto& batch = ws.routed[size_t(solo[i])];
      const MlpWeights& m = *ws.expert_weights[size_t(solo[i])];
      const int n = int(batch.size());
      for (int j = 0; j < n; ++j) std::copy_n(x + size_t(batch[size_t(j)].first) * H, H, in + size_t(j) * H);
      float* up = gate + size_t(n) * I;
      matmul_serial(m.gate, in, n, gate);
      matmul_serial(m.up, in, n, up);
      swiglu(gate, up, n * I, act);
      matmul_serial(m.down, act, n, y);
      add_weighted_rows(batch, y, H, target);
    }
  });
  if (runs > 1)
    global_pool().parallel_for(size_t(T), [&](size_t t0, size_t t1, int) {
      for (int g = 1; g < runs; ++g)
        for (size_t t = t0; t < t1; ++t) {
          const float* src = sums + (size_t(g - 1) * size_t(T) + t) * H;
          float* o = out + t * H;
          for (int d = 0; d < H; ++d) o[d] += src[d];
        }
    });
}

// Decoding: each step's experts are small products (a token's 10 experts, its shared expert;
// with a few sequences, each distinct expert over the one or two tokens routed to it). Rather
// than one hand-off per product, or one thread per expert (they do not split evenly over the
// threads), the gate and up products of every expert go out as one group, then the down
// products as another: both threads stay busy to the end of each. Each token then sums its
// experts' outputs in its routing order, then the shared expert's, whatever else is in the batch.
void Model::moe_few_tokens(const MoeWeights& w, const float* x, int T, const float* weight, bool shared, float* out) {
  const Config& c = config_;
  const int H = c.hidden_size, k = c.num_experts_per_tok, I = c.moe_intermediate_size;
  shared = shared && w.has_shared;
  const int Is = shared ? int(w.shared.gate.rows) : 0;
  Workspace& ws = *ws_;
  const int pairs = T * k;

  // Distinct experts in order of first use; pair (t, j) is row pair_row[t k + j] of its expert's batch.
  auto& slot_of = ws.expert_slot;  // [E] -1 when unused in this call
  if (slot_of.size() < size_t(c.num_experts)) slot_of.assign(size_t(c.num_experts), -1);
  auto& experts = ws.step_experts;  // (expert, tokens routed to it)
  experts.clear();
  for (int i = 0; i < pairs; ++i) {
    const int e = ws.expert_ids[size_t(i)];
    if (e < 0) continue;  // another process's expert
    if (slot_of[size_t(e)] < 0) {
      slot_of[size_t(e)] = int(experts.size());
      experts.push_back({e, 0});
    }
    ++experts[size_t(slot_of[size_t(e)])].second;
  }
  auto& first_row = ws.expert_first_row;  // [experts + 1]
  first_row.assign(experts.size() + 1, 0);
  for (size_t s = 0; s < experts.size(); ++s) first_row[s + 1] = first_row[s] + experts[s].second;
  auto& pair_row = ws.pair_row;  // [T k]
  pair_row.resize(size_t(pairs));
  auto& fill = ws.expert_fill;  // rows placed so far per expert
  fill.assign(experts.size(), 0);
  for (int i = 0; i < pairs; ++i) {
    const int e = ws.expert_ids[size_t(i)];
    pair_row[size_t(i)] = e < 0 ? -1 : first_row[size_t(slot_of[size_t(e)])] + fill[size_t(slot_of[size_t(e)])]++;
  }
  for (const auto& [e, n] : experts) slot_of[size_t(e)] = -1;

  float* gathered = grow(ws.gathered, size_t(pairs) * H);             // [pairs, H] inputs of multi-token experts
  float* gate = grow(ws.gate_up, size_t(pairs) * 2 * I + size_t(T) * (2 * size_t(Is) + 1));
  float* up = gate + size_t(pairs) * I;                               // [pairs, I] each
  float* shared_gate_up = up + size_t(pairs) * I;                     // [T, Is] gate, then [T, Is] up
  float* shared_gate = shared_gate_up + size_t(T) * 2 * Is;           // [T] the shared expert's gate logit
  float* act = grow(ws.act, size_t(pairs) * I + size_t(T) * Is);     // [pairs, I], then [T, Is]
  float* results = grow(ws.down, size_t(pairs + T) * H);              // [pairs, H], then [T, H]

  // With an expert cache, the products of experts whose bytes are still arriving wait for a
  // second group: the resident experts and the shared expert compute while the disk reads.
  auto& group = ws.products;
  auto& pending = ws.pending_products;
  group.clear();
  pending.clear();
  for (size_t s = 0; s < experts.size(); ++s) {
    const auto [e, n] = experts[s];
    const MlpWeights& m = *ws.expert_weights[size_t(e)];
    auto& to = expert_source_ && !ws.expert_ready[size_t(e)] ? pending : group;
    const int r0 = first_row[s];
    const float* in = nullptr;
    if (n == 1) {  // its token's row as it is: one quantization serves all that token's experts
      for (int i = 0; i < pairs && !in; ++i)
        if (pair_row[size_t(i)] == r0) in = x + size_t(i / k) * H;
    } else {
      float* g = gathered + size_t(r0) * H;
      for (int i = 0; i < pairs; ++i)
        if (pair_row[size_t(i)] >= r0 && pair_row[size_t(i)] < r0 + n)
          std::copy_n(x + size_t(i / k) * H, H, g + size_t(pair_row[size_t(i)] - r0) * H);
      in = g;
    }
    to.push_back({&m.gate, in, n, gate + size_t(r0) * I});
    to.push_back({&m.up, in, n, up + size_t(r0) * I});
  }
  if (shared) {
    group.push_back({&w.shared.gate, x, T, shared_gate_up});
    group.push_back({&w.shared.up, x, T, shared_gate_up + size_t(T) * Is});
    group.push_back({&w.shared_gate, x, T, shared_gate});
  }
  matmul_group(group.data(), group.size());
  if (expert_source_) {
    expert_source_->wait();
    if (!pending.empty()) matmul_group(pending.data(), pending.size());
  }

  swiglu(gate, up, first_row.back() * I, act);  // the rows of this process's experts
  if (shared) swiglu(shared_gate_up, shared_gate_up + size_t(T) * Is, T * Is, act + size_t(pairs) * I);
  group.clear();
  for (size_t s = 0; s < experts.size(); ++s) {
    const auto [e, n] = experts[s];
    const int r0 = first_row[s];
    group.push_back({&ws.expert_weights[size_t(e)]->down, act + size_t(r0) * I, n, results + size_t(r0) * H});
  }
  if (shared) group.push_back({&w.shared.down, act + size_t(pairs) * I, T, results + size_t(pairs) * H});
  matmul_group(group.data(), group.size());

  for (int t = 0; t < T; ++t) {
    float* o = out + size_t(t) * H;
    std::fill_n(o, H, 0.0f);
    for (int j = 0; j < k; ++j) {
      if (pair_row[size_t(t) * k + j] < 0) continue;  // another process's expert
      const float s = weight[size_t(t) * k + j];
      const float* y = results + size_t(pair_row[size_t(t) * k + j]) * H;
      for (int d = 0; d < H; ++d) o[d] += s * y[d];
    }
    if (shared) {
      const float s = sigmoid(shared_gate[t]);  // the shared expert's sigmoid gate
      const float* y = results + size_t(pairs + t) * H;
      for (int d = 0; d < H; ++d) o[d] += s * y[d];
    }
  }
}

}  // namespace qnext
