// The Qwen3-Next forward pass, float32 activations over BF16/F16/F32 weights.
//
//   x = embed(ids)
//   for each layer:                       (3 Gated DeltaNet layers, then 1 gated attention layer, repeated)
//     x += token_mixer(rmsnorm(x))        DeltaNet: conv + delta rule;  attention: GQA with KV cache
//     x += moe(rmsnorm(x))                512 experts, top 10, plus a sigmoid-gated shared expert
//   logits = lm_head(rmsnorm(x))
//
// All RMSNorms but the DeltaNet output norm are zero-centered: the loader stored them as (1 + w).
#include "model/qwen3_next.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/conv.h"
#include "kernels/delta_rule.h"
#include "kernels/matmul.h"
#include "kernels/moe.h"
#include "kernels/norm.h"
#include "kernels/quant.h"
#include "kernels/rope.h"
#include "model/workspace.h"

namespace qnext {

Model::~Model() = default;

Result<std::unique_ptr<Model>> Model::load(const std::string& dir, QuantRecipe recipe, const WeightShare& share) {
  std::optional<Result<Config>> config;
  std::optional<Result<Weights>> weights;
  if (is_gguf_path(dir)) {  // llama.cpp's single file
    auto gguf = GgufCheckpoint::open(dir);
    if (!gguf) return err(gguf.error());
    config = Config::from_gguf(gguf.value());
    if (!*config) return err(config->error());
    weights = Weights::load_gguf(std::move(gguf.value()), config->value(), recipe, share);
  } else {  // a Hugging Face directory
    config = Config::load(dir);
    if (!*config) return err(config->error());
    weights = Weights::load(dir, config->value(), recipe, share);
  }
  if (!*weights) return err(weights->error());
  std::unique_ptr<Model> m(new Model());
  m->config_ = std::move(config->value());
  m->weights_ = std::move(weights->value());
  m->dir_ = dir;
  m->ws_ = std::make_unique<Workspace>();

  // RoPE frequencies, with YaRN's blend between plain and interpolated ones when configured.
  const Config& c = m->config_;
  const int rot = c.rotary_dim, half = rot / 2;
  m->inv_freq_.resize(size_t(half));
  for (int i = 0; i < half; ++i) m->inv_freq_[size_t(i)] = 1.0 / std::pow(c.rope_theta, double(2 * i) / rot);
  if (c.rope_scaling.yarn) {
    const RopeScaling& y = c.rope_scaling;
    const double s = y.factor, L0 = y.original_max_position;
    auto turn_index = [&](double n) { return rot * std::log(L0 / (2 * M_PI * n)) / (2 * std::log(c.rope_theta)); };
    double lo = turn_index(y.beta_fast), hi = turn_index(y.beta_slow);
    if (y.truncate) lo = std::floor(lo), hi = std::ceil(hi);
    lo = std::max(lo, 0.0);
    hi = std::min(hi, double(rot - 1));
    if (lo == hi) hi += 0.001;
    for (int i = 0; i < half; ++i) {
      const double w = std::clamp((i - lo) / (hi - lo), 0.0, 1.0);
      const double b = m->inv_freq_[size_t(i)];
      m->inv_freq_[size_t(i)] = b * (1 - w) + (b / s) * w;
    }
    auto g = [](double scale, double coef) { return scale <= 1 ? 1.0 : 0.1 * coef * std::log(scale) + 1.0; };
    double factor = y.attention_factor;
    if (factor == 0) factor = (y.mscale != 0 && y.mscale_all_dim != 0) ? g(s, y.mscale) / g(s, y.mscale_all_dim) : g(s, 1);
    m->rope_mscale_ = float(factor);
  }
  return m;
}

void Model::rope_table(int pos, float* cos_sin) const {
  const int half = config_.rotary_dim / 2;
  for (int i = 0; i < half; ++i) {
    const double angle = double(pos) * inv_freq_[size_t(i)];
    cos_sin[i] = float(std::cos(angle)) * rope_mscale_;
    cos_sin[half + i] = float(std::sin(angle)) * rope_mscale_;
  }
}

// Several projections of the same input x [T, cols]: one job for few tokens, else one each.
void Model::project(const float* x, int T, std::initializer_list<std::pair<const Matrix*, float*>> outputs) {
  if (T > kGroupMaxTokens) {
    for (const auto& [w, y] : outputs) matmul(*w, x, T, y);
    return;
  }
  auto& group = ws_->products;
  group.clear();
  for (const auto& [w, y] : outputs) group.push_back({w, x, T, y});
  matmul_group(group.data(), group.size());
}

// ---------------------------------------------------------------------------------------------
// Gated DeltaNet (linear attention with a constant-size state)

void Model::gated_delta_net(const DeltaNetWeights& w, const float* x, int T, std::span<const Segment> segs,
                            DeltaRuleMode mode, float* out) {
  const Config& c = config_;
  const int Hk = c.linear_num_key_heads, Hv = c.linear_num_value_heads;
  const int Dk = c.linear_key_head_dim, Dv = c.linear_value_head_dim, r = Hv / Hk;
  const int C = c.linear_qkv_dim();
  const int group = 2 * Dk + 2 * r * Dv;  // one key head's slice of in_proj_qkvz
  Workspace& ws = *ws_;

  float* mixed = grow(ws.mixed, size_t(T) * C);  // [T, C] the conv's channels [q all heads | k all | v all]
  float* z = grow(ws.z, size_t(T) * Hv * Dv);    // [T, Hv, Dv] output gate
  float* ba = grow(ws.proj2, size_t(T) * Hk * 2 * r);   // [T, Hk, (b | a)]
  if (w.in_proj_qkvz.data) {
    float* qkvz = grow(ws.proj, size_t(T) * Hk * group);  // [T, Hk, (q | k | v | z)]
    project(x, T, {{&w.in_proj_qkvz, qkvz}, {&w.in_proj_ba, ba}});
    // Regroup per key head into the conv's channel order.
    for (int t = 0; t < T; ++t) {
      float* m = mixed + size_t(t) * C;
      for (int h = 0; h < Hk; ++h) {
        const float* src = qkvz + (size_t(t) * Hk + h) * group;
        std::copy_n(src, Dk, m + h * Dk);
        std::copy_n(src + Dk, Dk, m + Hk * Dk + h * Dk);
        std::copy_n(src + 2 * Dk, r * Dv, m + 2 * Hk * Dk + h * r * Dv);
        std::copy_n(src + 2 * Dk + r * Dv, r * Dv, z + size_t(t) * Hv * Dv + h * r * Dv);
      }
    }
  } else {
    project(x, T, {{&w.in_proj_qkv, mixed}, {&w.in_proj_z, z}, {&w.in_proj_ba, ba}});
  }

  float* g = grow(ws.gb, size_t(T) * 2 * Hv);    // [T, Hv] log decay, then [T, Hv] beta
  float* beta = g + size_t(T) * Hv;
  for (int t = 0; t < T; ++t) {
    for (int h = 0; h < Hk; ++h) {
      const float* b_a = ba + (size_t(t) * Hk + h) * 2 * r;
      for (int i = 0; i < r; ++i) {
        const int v = h * r + i;
        const float a = b_a[r + i] + w.dt_bias[size_t(v)];
        const float softplus = std::max(a, 0.0f) + std::log1p(std::exp(-std::fabs(a)));
        g[size_t(t) * Hv + v] = w.A[size_t(v)] * softplus;
        beta[size_t(t) * Hv + v] = sigmoid(b_a[i]);
      }
    }
  }

  // Causal depthwise conv + SiLU over each sequence's window, then L2-normed q (scaled by Dk^-1/2) and k.
  float* conv = grow(ws.conv_out, size_t(T) * C);  // [T, C]
  const int W = c.linear_conv_kernel - 1;           // conv window rows
  for (const Segment& s : segs) {
    float* prev = s.history ? grow(ws.conv_prev, size_t(W) * C) : nullptr;  // [W, C]
    if (prev) std::copy_n(s.gdn->conv.data(), size_t(W) * C, prev);
    conv1d_silu(mixed + size_t(s.row0) * C, s.T, C, w.conv.data(), c.linear_conv_kernel, s.gdn->conv.data(),
                conv + size_t(s.row0) * C);
    // Recording: the window after row t is the last W rows of [prev; rows 0..t].
    for (int t = 0; prev && t < s.T; ++t)
      for (int j = 0; j < W; ++j) {
        const int idx = t + 1 + j;  // into [prev; rows]
        const float* src = idx < W ? prev + size_t(idx) * C : mixed + size_t(s.row0 + idx - W) * C;
        std::copy_n(src, C, s.history[t].conv.data() + size_t(j) * C);
      }
  }
  const float q_scale = 1.0f / std::sqrt(float(Dk));
  global_pool().parallel_for(size_t(T), [&](size_t t0, size_t t1, int) {
    for (size_t t = t0; t < t1; ++t)
      for (int h = 0; h < 2 * Hk; ++h) {
        float* v = conv + t * C + size_t(h) * Dk;
        l2_normalize(v, Dk, 1e-6f);
        if (h < Hk)
          for (int d = 0; d < Dk; ++d) v[d] *= q_scale;
      }
  });

  // The gated delta rule, one (sequence, value head) per task; value head v reads key head v / r.
  // Each task then takes its rows through the gated RMSNorm (on both threads, not after them).
  float* core = grow(ws.core, size_t(T) * Hv * Dv);  // [T, Hv, Dv]
  const size_t scratch_n = delta_rule_scratch_floats(Dk, Dv);
  float* scratch = grow(ws.delta_scratch, scratch_n * size_t(global_pool().size()));
  global_pool().parallel_tasks(segs.size() * size_t(Hv), [&](size_t i, int thread) {
    const Segment& s = segs[i / size_t(Hv)];
    const size_t v = i % size_t(Hv), kh = v / size_t(r), row = size_t(s.row0);
    DeltaRuleHead head{conv + row * C + kh * Dk,
                       conv + row * C + size_t(Hk) * Dk + kh * Dk,
                       conv + row * C + size_t(2 * Hk) * Dk + v * Dv,
                       g + row * Hv + v,
                       beta + row * Hv + v,
                       size_t(C),
                       size_t(C),
                       size_t(Hv),
                       core + row * Hv * Dv + v * Dv,
                       size_t(Hv) * Dv};
    float* S = s.gdn->recurrent.data() + v * size_t(Dk) * Dv;
    const auto gated_norm = [&] {
      for (size_t t = row; t < row + size_t(s.T); ++t) {
        float* o = core + (t * Hv + v) * Dv;
        rms_norm_gated(o, z + (t * Hv + v) * Dv, w.norm.data(), Dv, c.rms_norm_eps, o);
      }
    };
    if (s.history) {  // one token at a time, keeping the state after each
      for (int t = 0; t < s.T; ++t) {
        DeltaRuleHead one = head;
        one.q += size_t(t) * one.qk_stride;
        one.k += size_t(t) * one.qk_stride;
        one.v += size_t(t) * one.v_stride;
        one.g += size_t(t) * one.gb_stride;
        one.beta += size_t(t) * one.gb_stride;
        one.out += size_t(t) * one.out_stride;
        delta_rule_recurrent(one, 1, Dk, Dv, S);
        std::copy_n(S, size_t(Dk) * Dv, s.history[t].recurrent.data() + v * size_t(Dk) * Dv);
      }
      gated_norm();
      return;
    }
    DeltaRuleMode m = mode;
    if (m == DeltaRuleMode::Auto)
      m = s.T > 1 && !delta_rule_prefers_recurrent() ? DeltaRuleMode::Chunked : DeltaRuleMode::Recurrent;
    if (m == DeltaRuleMode::Chunked) delta_rule_chunked(head, s.T, Dk, Dv, S, scratch + size_t(thread) * scratch_n);
    else delta_rule_recurrent(head, s.T, Dk, Dv, S);
    gated_norm();
  });
  matmul(w.out_proj, core, T, out);
}

// ---------------------------------------------------------------------------------------------
// Gated full attention (GQA, partial RoPE, sigmoid output gate)

void Model::gated_attention(const AttentionWeights& w, const float* x, int T, std::span<const Segment> segs,
                            float* out) {
  const Config& c = config_;
  const int D = c.head_dim, nq = c.num_q_heads, nkv = c.num_kv_heads, rot = c.rotary_dim;
  Workspace& ws = *ws_;
  float* qg = grow(ws.proj, size_t(T) * nq * 2 * D);  // [T, nq, (query D | gate D)]
  float* k = grow(ws.qkv, size_t(T) * 2 * nkv * D);   // [T, nkv, D] keys, then values
  float* v = k + size_t(T) * nkv * D;
  project(x, T, {{&w.q_proj, qg}, {&w.k_proj, k}, {&w.v_proj, v}});

  float* cos_sin = grow(ws.cos_sin, size_t(T) * std::max(rot, 1));
  for (const Segment& s : segs)
    for (int t = 0; t < s.T; ++t) rope_table(s.start_pos + t, cos_sin + size_t(s.row0 + t) * rot);

  // q/k norms then RoPE; keys and values go into each sequence's cache at their positions.
  for (const Segment& s : segs) {
    KvCache& kv = *s.kv;
    kv.ensure_capacity(s.start_pos + s.T);
    for (int t = s.row0; t < s.row0 + s.T; ++t) {
      const float* cs = cos_sin + size_t(t) * rot;
      for (int h = 0; h < nq; ++h) {
        float* q = qg + (size_t(t) * nq + h) * 2 * D;
        rms_norm(q, w.q_norm.data(), D, c.rms_norm_eps, q);
        rope_apply(q, rot, cs);
      }
      float* kt = k + size_t(t) * nkv * D;
      for (int h = 0; h < nkv; ++h) {
        rms_norm(kt + size_t(h) * D, w.k_norm.data(), D, c.rms_norm_eps, kt + size_t(h) * D);
        rope_apply(kt + size_t(h) * D, rot, cs);
      }
      kv.store(s.start_pos + t - s.row0, kt, v + size_t(t) * nkv * D);
    }
    kv.len = s.start_pos + s.T;
  }

  // Causal attention: query t sees its sequence's positions 0..pos(t). A task takes a block of one
  // sequence's tokens times the query heads sharing one key/value head (at most kMaxBlockQueries
  // queries), so each cached key and value row is read once per block. Then the sigmoid gate.
  float* att = grow(ws.attn, size_t(T) * nq * D);  // [T, nq, D]
  const float scale = 1.0f / std::sqrt(float(D));
  const int group = nq / nkv, sub = std::min(group, kMaxBlockQueries), subs = (group + sub - 1) / sub;
  const int block = std::max(1, kMaxBlockQueries / sub);
  auto& blocks = ws.attn_blocks;  // (segment, first row)
  blocks.clear();
  for (size_t j = 0; j < segs.size(); ++j)
    for (int t = segs[j].row0; t < segs[j].row0 + segs[j].T; t += block) blocks.push_back({int(j), t});
  global_pool().parallel_tasks(blocks.size() * nkv * subs, [&](size_t i, int) {
    const auto [si, t0] = blocks[i / size_t(nkv * subs)];
    const Segment& s = segs[size_t(si)];
    const int g = int(i % size_t(nkv * subs)) / subs, part = int(i % size_t(subs));
    const int h0 = g * group + part * sub, G = std::min(sub, group - part * sub);
    const int t1 = std::min(s.row0 + s.T, t0 + block);
    const KvCache& kv = *s.kv;
    const float* q[kMaxBlockQueries] = {};
    float* o[kMaxBlockQueries] = {};
    int n_keys[kMaxBlockQueries] = {};
    int n = 0;
    for (int t = t0; t < t1; ++t)
      for (int h = h0; h < h0 + G; ++h, ++n) {
        q[n] = qg + (size_t(t) * nq + h) * 2 * D;
        o[n] = att + (size_t(t) * nq + h) * D;
        n_keys[n] = s.start_pos + (t - s.row0) + 1;
      }
    const KvHead head{kv.k.data() + kv.head_offset(g), kv.v.data() + kv.head_offset(g), size_t(D), kv.type};
    attention_queries(q, n_keys, n, head, D, scale, o);
    for (int j = 0; j < n; ++j) {
      const float* gate = q[j] + D;
      for (int d = 0; d < D; ++d) o[j][d] *= sigmoid(gate[d]);
    }
  });
  matmul(w.o_proj, att, T, out);
}

// ---------------------------------------------------------------------------------------------
// Feed-forward: SwiGLU MLP and the sparse mixture of experts (how the experts' products are
// spread over the threads, expert_mixture, is in moe_schedule.cpp)

void Model::mlp(const MlpWeights& w, const float* x, int T, float* out) {
  Workspace& ws = *ws_;
  const int I = int(w.gate.rows);
  float* gate = grow(ws.gate_up, size_t(T) * 2 * I);  // [T, I] gate, then [T, I] up
  float* up = gate + size_t(T) * I;
  float* act = grow(ws.act, size_t(T) * I);  // [T, I]
  project(x, T, {{&w.gate, gate}, {&w.up, up}});
  swiglu(gate, up, T * I, act);
  matmul(w.down, act, T, out);
}

void Model::sparse_moe(const MoeWeights& w, const float* x, int T, float* out) {
  const Config& c = config_;
  const int E = c.num_experts, k = c.num_experts_per_tok;
  Workspace& ws = *ws_;
  float* logits = grow(ws.router, size_t(T) * E);  // [T, E]
  matmul(w.router, x, T, logits);
  if (ws.expert_ids.size() < size_t(T) * k) ws.expert_ids.resize(size_t(T) * k);
  float* weight = grow(ws.expert_w, size_t(T) * k);  // [T, k]
  for (int t = 0; t < T; ++t)
    route_top_k(logits + size_t(t) * E, E, k, c.norm_topk_prob, ws.expert_ids.data() + size_t(t) * k,
                weight + size_t(t) * k);
  // With peers, the pairs of their experts go out now and come back after this process's own.
  const std::span<int> ids(ws.expert_ids.data(), size_t(T) * k);
  if (expert_peers_) expert_peers_->send(w, x, T, ids, {weight, size_t(T) * k});
  expert_mixture(w, x, T, weight, true, out);
  if (expert_peers_) expert_peers_->add_replies(out);
}

void Model::routed_experts(const MoeWeights& w, const float* x, int T, std::span<const int> ids,
                           std::span<const float> weights, float* out) {
  Workspace& ws = *ws_;
  ws.expert_ids.assign(ids.begin(), ids.end());
  expert_mixture(w, x, T, weights.data(), false, out);
}

// ---------------------------------------------------------------------------------------------
// The decoder layer and the model

void Model::decoder_layer(const LayerWeights& w, float* x, int T, std::span<const Segment> segs, DeltaRuleMode mode) {
  const int H = config_.hidden_size;
  const float eps = config_.rms_norm_eps;
  Workspace& ws = *ws_;
  float* normed = grow(ws.normed, size_t(T) * H);
  float* mixed_out = grow(ws.out, size_t(T) * H);
  for (int t = 0; t < T; ++t) rms_norm(x + size_t(t) * H, w.input_norm.data(), H, eps, normed + size_t(t) * H);
  if (w.type == LayerType::LinearAttention) gated_delta_net(w.gdn, normed, T, segs, mode, mixed_out);
  else gated_attention(w.attn, normed, T, segs, mixed_out);
  for (size_t i = 0; i < size_t(T) * H; ++i) x[i] += mixed_out[i];

  for (int t = 0; t < T; ++t) rms_norm(x + size_t(t) * H, w.post_attention_norm.data(), H, eps, normed + size_t(t) * H);
  float* ffn = grow(ws.ffn, size_t(T) * H);
  if (w.is_moe) sparse_moe(w.moe, normed, T, ffn);
  else mlp(w.mlp, normed, T, ffn);
  for (size_t i = 0; i < size_t(T) * H; ++i) x[i] += ffn[i];
}

int default_prompt_slice() { return 1024; }

void Model::forward(SequenceState& st, std::span<const int32_t> ids, const ForwardOptions& opt,
                    std::vector<float>* hidden, std::vector<float>* logits) {
  const Config& c = config_;
  const int T = int(ids.size()), H = c.hidden_size;
  if (T == 0) return;
  // Long prompts go through in slices, so the workspace (every projection of every token of the
  // call) stays the size of one slice. Slices are whole delta-rule chunks: the result is the same.
  const int slice = std::max(kDeltaChunk, opt.max_tokens_per_call / kDeltaChunk * kDeltaChunk);
  if (T > slice && !opt.residuals && !opt.gdn_history) {
    std::vector<float> h, l;
    if (hidden) hidden->clear();
    if (logits) logits->clear();
    for (int s = 0; s < T; s += slice) {
      const int n = std::min(slice, T - s);
      const bool last = s + n == T;
      ForwardOptions part = opt;
      part.want_logits = opt.want_logits && (opt.all_logits || last);
      forward(st, ids.subspan(size_t(s), size_t(n)), part, hidden ? &h : nullptr, logits ? &l : nullptr);
      if (hidden) hidden->insert(hidden->end(), h.begin(), h.end());
      if (logits && part.want_logits) logits->insert(logits->end(), l.begin(), l.end());
    }
    return;
  }
  float* x = grow(ws_->x, size_t(T) * H);  // [T, H] the residual stream
  for (int t = 0; t < T; ++t) matrix_row_to_f32(weights_.embed, ids[size_t(t)], x + size_t(t) * H);
  if (opt.residuals) opt.residuals->assign(x, x + size_t(T) * H);

  const BatchEntry one{&st, ids, nullptr};
  if (opt.gdn_history) {
    opt.gdn_history->prepare(c, T);
    opt.gdn_history->start_pos = st.pos;
  }
  for (int l = 0; l < c.num_layers; ++l) {
    std::span<const Segment> segs = layer_segments({&one, 1}, l);
    if (opt.gdn_history && c.layer_types[size_t(l)] == LayerType::LinearAttention)
      ws_->segs[0].history = opt.gdn_history->layer(l);
    decoder_layer(weights_.layers[size_t(l)], x, T, segs, opt.delta_mode);
    prefetch_experts(l + 1, x, T);
    if (opt.residuals) opt.residuals->insert(opt.residuals->end(), x, x + size_t(T) * H);
  }
  st.pos += T;

  float* h = hidden ? (hidden->resize(size_t(T) * H), hidden->data()) : grow(ws_->hidden, size_t(T) * H);  // [T, H]
  for (int t = 0; t < T; ++t) rms_norm(x + size_t(t) * H, weights_.final_norm.data(), H, c.rms_norm_eps, h + size_t(t) * H);
  if (logits && opt.want_logits) {
    const int rows = opt.all_logits ? T : 1;
    logits->resize(size_t(rows) * c.vocab_size);
    matmul(weights_.lm_head, h + size_t(T - rows) * H, rows, logits->data());
  }
}

std::span<const Segment> Model::layer_segments(std::span<const BatchEntry> batch, int l) {
  auto& segs = ws_->segs;
  segs.clear();
  int row = 0;
  for (const BatchEntry& b : batch) {
    SequenceState& st = *b.state;
    segs.push_back({row, int(b.ids.size()), st.pos, &st.gdn[size_t(l)], &st.kv[size_t(l)]});
    row += int(b.ids.size());
  }
  return segs;
}

void Model::forward_batch(std::span<const BatchEntry> batch, DeltaRuleMode mode) {
  const Config& c = config_;
  const int H = c.hidden_size, V = c.vocab_size;
  int T = 0;
  for (const BatchEntry& b : batch) T += int(b.ids.size());
  if (T == 0) return;
  float* x = grow(ws_->x, size_t(T) * H);  // [T, H] the residual stream of every sequence's rows
  int row = 0;
  for (const BatchEntry& b : batch)
    for (int32_t id : b.ids) matrix_row_to_f32(weights_.embed, id, x + size_t(row++) * H);

  for (int l = 0; l < c.num_layers; ++l) {
    decoder_layer(weights_.layers[size_t(l)], x, T, layer_segments(batch, l), mode);
    prefetch_experts(l + 1, x, T);
  }

  // The final norm and lm_head on the last row of each sequence that wants logits, in one product.
  float* last = grow(ws_->last_rows, batch.size() * H);  // [wanted, H]
  int wanted = 0;
  row = 0;
  for (const BatchEntry& b : batch) {
    const int T_b = int(b.ids.size());
    if (b.hidden) {
      b.hidden->resize(size_t(T_b) * H);
      for (int t = 0; t < T_b; ++t)
        rms_norm(x + size_t(row + t) * H, weights_.final_norm.data(), H, c.rms_norm_eps, b.hidden->data() + size_t(t) * H);
    }
    row += T_b;
    b.state->pos += T_b;
    if (b.logits && !b.ids.empty())
      rms_norm(x + size_t(row - 1) * H, weights_.final_norm.data(), H, c.rms_norm_eps, last + size_t(wanted++) * H);
  }
  if (wanted == 0) return;
  float* logits = grow(ws_->batch_logits, size_t(wanted) * V);  // [wanted, V]
  matmul(weights_.lm_head, last, wanted, logits);
  int j = 0;
  for (const BatchEntry& b : batch)
    if (b.logits && !b.ids.empty()) {
      b.logits->assign(logits + size_t(j) * V, logits + size_t(j + 1) * V);
      ++j;
    }
}

void Model::mtp_forward(SequenceState& st, std::span<const int32_t> next_ids, const float* hidden,
                        std::vector<float>* mtp_hidden, std::vector<float>* logits) {
  const Config& c = config_;
  const MtpWeights& m = *weights_.mtp;
  const int T = int(next_ids.size()), H = c.hidden_size;
  if (T == 0) return;
  // x = fc(concat[norm(embed(next token)), norm(main hidden)])
  float* cat = grow(ws_->gathered, size_t(T) * 2 * H);  // [T, 2H]
  float* emb = grow(ws_->normed, size_t(H));
  for (int t = 0; t < T; ++t) {
    matrix_row_to_f32(weights_.embed, next_ids[size_t(t)], emb);
    rms_norm(emb, m.pre_fc_norm_embedding.data(), H, c.rms_norm_eps, cat + size_t(t) * 2 * H);
    rms_norm(hidden + size_t(t) * H, m.pre_fc_norm_hidden.data(), H, c.rms_norm_eps, cat + size_t(t) * 2 * H + H);
  }
  float* x = grow(ws_->mtp_x, size_t(T) * H);  // [T, H]; not ws.x, which the caller's hidden may alias
  matmul(m.fc, cat, T, x);
  const Segment seg{0, T, st.mtp_pos, nullptr, &st.mtp_kv};
  decoder_layer(m.layer, x, T, {&seg, 1}, DeltaRuleMode::Auto);
  st.mtp_pos += T;

  float* h = mtp_hidden ? (mtp_hidden->resize(size_t(T) * H), mtp_hidden->data()) : grow(ws_->hidden, size_t(T) * H);
  for (int t = 0; t < T; ++t) rms_norm(x + size_t(t) * H, m.norm.data(), H, c.rms_norm_eps, h + size_t(t) * H);
  if (logits) {
    logits->resize(size_t(T) * c.vocab_size);
    matmul(weights_.lm_head, h, T, logits->data());
  }
}

size_t Model::active_weight_bytes() const {
  auto mlp_bytes = [](const MlpWeights& w) { return w.gate.bytes() + w.up.bytes() + w.down.bytes(); };
  size_t n = weights_.lm_head.bytes() + weights_.embed.bytes() / size_t(config_.vocab_size);
  for (const auto& l : weights_.layers) {
    if (l.type == LayerType::FullAttention)
      n += l.attn.q_proj.bytes() + l.attn.k_proj.bytes() + l.attn.v_proj.bytes() + l.attn.o_proj.bytes();
    else
      n += l.gdn.in_proj_qkvz.bytes() + l.gdn.in_proj_qkv.bytes() + l.gdn.in_proj_z.bytes() + l.gdn.in_proj_ba.bytes() +
           l.gdn.out_proj.bytes();
    if (l.is_moe) {
      n += l.moe.router.bytes() + size_t(config_.num_experts_per_tok) * mlp_bytes(l.moe.experts[0]);
      if (l.moe.has_shared) n += mlp_bytes(l.moe.shared) + l.moe.shared_gate.bytes();
    } else {
      n += mlp_bytes(l.mlp);
    }
  }
  return n;
}

int64_t Model::parameter_count(bool active_only, bool include_mtp) const {
  auto mat = [](const Matrix& m) { return m.rows * m.cols; };
  auto mlp_params = [&](const MlpWeights& w) { return mat(w.gate) + mat(w.up) + mat(w.down); };
  auto layer_params = [&](const LayerWeights& l) {
    int64_t n = int64_t(l.input_norm.size() + l.post_attention_norm.size());
    if (l.type == LayerType::FullAttention)
      n += mat(l.attn.q_proj) + mat(l.attn.k_proj) + mat(l.attn.v_proj) + mat(l.attn.o_proj) +
           int64_t(l.attn.q_norm.size() + l.attn.k_norm.size());
    else
      n += mat(l.gdn.in_proj_qkvz) + mat(l.gdn.in_proj_qkv) + mat(l.gdn.in_proj_z) + mat(l.gdn.in_proj_ba) +
           mat(l.gdn.out_proj) + int64_t(l.gdn.conv.size() + l.gdn.A.size() + l.gdn.dt_bias.size() + l.gdn.norm.size());
    if (l.is_moe) {
      n += mat(l.moe.router);
      const int64_t per_expert = l.moe.experts.empty() ? 0 : mlp_params(l.moe.experts[0]);
      n += per_expert * (active_only ? config_.num_experts_per_tok : int64_t(l.moe.experts.size()));
      if (l.moe.has_shared) n += mlp_params(l.moe.shared) + mat(l.moe.shared_gate);
    } else {
      n += mlp_params(l.mlp);
    }
    return n;
  };
  int64_t n = mat(weights_.embed) + int64_t(weights_.final_norm.size());
  if (weights_.lm_head.data != weights_.embed.data) n += mat(weights_.lm_head);
  for (const auto& l : weights_.layers) n += layer_params(l);
  if (include_mtp && weights_.mtp) {
    const auto& m = *weights_.mtp;
    n += mat(m.fc) + int64_t(m.pre_fc_norm_embedding.size() + m.pre_fc_norm_hidden.size() + m.norm.size()) +
         layer_params(m.layer);
  }
  return n;
}

}  // namespace qnext
