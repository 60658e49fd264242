#include "runtime/speculative.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

namespace qnext {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
// Running means of step costs and the acceptance rate: recent steps weigh most.
void ema(double& avg, double x, double w) { avg = avg == 0 ? x : avg + w * (x - avg); }
}  // namespace

std::string SpecStats::summary() const {
  char buf[512];
  const double vms = verify_steps ? 1e3 * verify_s / double(verify_steps) : 0;
  const double pms = plain_steps ? 1e3 * plain_s / double(plain_steps) : 0;
  const double dms = proposed ? 1e3 * draft_s / double(proposed) : 0;
  std::snprintf(buf, sizeof buf,
                "[mtp: %lld drafts proposed, %lld accepted (%.1f%%); %.2f tokens per main step over %lld steps "
                "(%lld verify, %lld plain); verify %.2f ms, plain decode %.2f ms (verify cost %s), draft %.2f ms; "
                "K used 0/1/2/3/4: %lld/%lld/%lld/%lld/%lld]",
                (long long)proposed, (long long)accepted, 100 * acceptance(), tokens_per_step(), (long long)steps(),
                (long long)verify_steps, (long long)plain_steps, vms, pms,
                verify_cost() > 0 ? (std::to_string(verify_cost()).substr(0, 4) + "x").c_str() : "n/a", dms,
                (long long)k_hist[0], (long long)k_hist[1], (long long)k_hist[2], (long long)k_hist[3],
                (long long)k_hist[4]);
  return buf;
}

SpeculativeDecoder::SpeculativeDecoder(Model& model, SpecOptions opt) : model_(model), opt_(opt) {
  opt_.k = std::clamp(opt_.k, 0, kMaxDrafts);
  opt_.max_k = std::clamp(opt_.max_k, 1, kMaxDrafts);
}

void SpeculativeDecoder::fed(std::span<const float> hidden) { pending_.insert(pending_.end(), hidden.begin(), hidden.end()); }

bool SpeculativeDecoder::in_sync(const SequenceState& st) const {
  const size_t H = size_t(model_.config().hidden_size);
  return model_.has_mtp() && st.pos > 0 && size_t(st.mtp_pos) * H + pending_.size() == size_t(st.pos) * H;
}

void SpeculativeDecoder::catch_up(SequenceState& st, std::span<const int32_t> fed_ids) {
  if (!in_sync(st) || st.pos - st.mtp_pos < 2 || int(fed_ids.size()) != st.pos) return;
  feed_mtp(st, fed_ids.subspan(size_t(st.mtp_pos) + 1), false);
}

int SpeculativeDecoder::choose_k() const {
  if (!model_.has_mtp()) return 0;
  if (opt_.k > 0) return opt_.k;
  if (plain_t_ == 0) return 0;  // one plain step first: the unit every cost is measured in
  int best = best_k(alpha_, plain_t_, verify_t_, draft_t_, opt_.max_k);
  // Drafting does not pay now; still probe with one draft now and then, so the acceptance
  // estimate follows the text.
  if (best == 0 && stats_.steps() % 16 == 15) best = 1;
  return best;
}

int SpeculativeDecoder::best_k(double alpha, double plain, const double* verify, double draft, int max_k) {
  int best = 0;
  double best_rate = 1.0 / plain;
  double expected = 1.0, a = 1.0;
  for (int K = 1; K <= std::min(max_k, kMaxDrafts); ++K) {
    a *= alpha;
    expected += a;
    const double v = verify[K + 1] > 0 ? verify[K + 1] : plain * (1.0 + 0.15 * K);
    const double d = draft > 0 ? draft : 0.1 * plain;
    const double rate = expected / (v + K * d);
    if (rate > best_rate) best = K, best_rate = rate;
  }
  return best;
}

void SpeculativeDecoder::feed_mtp(SequenceState& st, std::span<const int32_t> next_ids, bool want_logits) {
  const int H = model_.config().hidden_size;
  const int P = int(next_ids.size());
  if (P == 0) return;
  const int head = want_logits ? P - 1 : P;  // rows fed without logits
  constexpr int kChunk = 1024;
  for (int r = 0; r < head; r += kChunk) {
    const int n = std::min(kChunk, head - r);
    model_.mtp_forward(st, next_ids.subspan(size_t(r), size_t(n)), pending_.data() + size_t(r) * H, nullptr, nullptr);
  }
  if (want_logits)
    model_.mtp_forward(st, next_ids.subspan(size_t(P - 1)), pending_.data() + size_t(P - 1) * H, &mtp_hidden_,
                       &mtp_logits_);
  pending_.erase(pending_.begin(), pending_.begin() + ptrdiff_t(P) * H);
}

int32_t SpeculativeDecoder::accept_or_replace(std::span<float> p_logits, const float* q, int32_t draft, Sampler& s,
                                              bool* accepted) {
  if (s.greedy()) {
    const int32_t t = s.sample(p_logits, hist_);
    *accepted = t == draft;
    return t;
  }
  // Accept d with probability min(1, p(d) / q(d)), else draw from normalize(max(0, p - q)).
  s.distribution(p_logits, hist_, p_);
  const float qd = q[draft], pd = p_[size_t(draft)];
  if (qd > 0 && s.uniform01() * double(qd) < double(pd)) {
    *accepted = true;
    return draft;
  }
  *accepted = false;
  resid_.resize(p_.size());
  for (size_t i = 0; i < p_.size(); ++i) resid_[i] = std::max(0.0f, p_[i] - q[i]);
  const int32_t t = s.draw(resid_);
  return t >= 0 ? t : s.draw(p_);  // p == q: the residual is empty, and p itself is the answer
}

void SpeculativeDecoder::step(SequenceState& st, std::span<const int32_t> fed_ids, int32_t next, Sampler& sampler,
                              std::span<const int32_t> history, std::vector<int32_t>& out) {
  const int H = model_.config().hidden_size, V = model_.config().vocab_size;
  const int n = st.pos;
  const bool sync = in_sync(st);
  const int K = sync ? choose_k() : 0;
  out.clear();
  ++stats_.k_hist[K];
  if (K == 0) {  // a plain decode step
    const auto t0 = Clock::now();
    ForwardOptions fo;
    model_.forward(st, std::span<const int32_t>(&next, 1), fo, &v_hidden_, &logits_);
    const double dt = seconds_since(t0);
    if (sync) fed(std::span<const float>(v_hidden_.data(), size_t(H)));
    else pending_.clear();
    row_.assign(logits_.begin(), logits_.begin() + V);
    if (logit_hook_) logit_hook_(row_);
    out.push_back(sampler.sample(row_, history));
    last_tokens_ = 0;
    ++stats_.plain_steps;
    stats_.plain_s += dt;
    ++stats_.tokens;
    ema(plain_t_, dt, 0.1);
    return;
  }

  // Draft: the MTP head catches up on the main hidden states it has not seen (the last one with
  // `next`), then chains on its own hidden state and drafts.
  ids_.assign(fed_ids.begin() + st.mtp_pos + 1, fed_ids.end());
  ids_.push_back(next);
  feed_mtp(st, std::span<const int32_t>(ids_).first(ids_.size() - 1), false);  // catching up (prompts, plain steps)
  const auto t0 = Clock::now();  // the drafting proper: the last hidden state with `next`, then the chain
  feed_mtp(st, std::span<const int32_t>(ids_).last(1), true);
  hist_.assign(history.begin(), history.end());
  int32_t drafts[kMaxDrafts];
  if (!sampler.greedy()) q_.resize(size_t(K) * V);
  for (int j = 0; j < K; ++j) {
    if (j > 0) {
      v_hidden_.assign(mtp_hidden_.begin(), mtp_hidden_.end());  // the input; mtp_hidden_ is the output
      model_.mtp_forward(st, std::span<const int32_t>(&drafts[j - 1], 1), v_hidden_.data(), &mtp_hidden_,
                         &mtp_logits_);
    }
    if (sampler.greedy()) {
      drafts[j] = sampler.sample(mtp_logits_, hist_);
    } else {
      std::span<float> q(q_.data() + size_t(j) * V, size_t(V));
      sampler.distribution(mtp_logits_, hist_, p_);
      std::copy(p_.begin(), p_.end(), q.begin());
      drafts[j] = sampler.draw(q);
    }
    hist_.push_back(drafts[j]);
  }
  st.rewind_mtp(n);  // the chained slots go; next step refeeds them from the main hidden states
  if (draft_hook_) {
    ids_.assign(fed_ids.begin(), fed_ids.end());
    ids_.push_back(next);
    draft_hook_(ids_, std::span<int32_t>(drafts, size_t(K)));
    // The hook decides the drafts, so they come from a point mass, even one that happens to equal
    // what the head drew (keeping the head's q for those would bias the accept rule).
    for (int j = 0; j < K && !sampler.greedy(); ++j) {
      std::fill_n(q_.data() + size_t(j) * V, V, 0.0f);
      q_[size_t(j) * V + size_t(drafts[j])] = 1.0f;
    }
  }
  const double draft_dt = seconds_since(t0);

  // Verify [next, d1..dK] in one forward, recording the DeltaNet states after each token. The
  // recurrent form is the one plain decoding uses, so each row is what decoding it alone gives.
  const auto t1 = Clock::now();
  ids_.assign(1, next);
  ids_.insert(ids_.end(), drafts, drafts + K);
  ForwardOptions fo;
  fo.all_logits = true;
  fo.delta_mode = DeltaRuleMode::Recurrent;
  fo.gdn_history = &history_;
  model_.forward(st, ids_, fo, &v_hidden_, &v_logits_);
  const double verify_dt = seconds_since(t1);

  hist_.assign(history.begin(), history.end());
  int m = 0;  // drafts accepted
  for (int j = 0; j <= K; ++j) {
    row_.assign(v_logits_.begin() + ptrdiff_t(j) * V, v_logits_.begin() + ptrdiff_t(j + 1) * V);
    if (logit_hook_) logit_hook_(row_);
    if (j == K) {  // every draft accepted: the main model's own next token
      out.push_back(sampler.sample(row_, hist_));
      break;
    }
    bool ok = false;
    const int32_t t =
        accept_or_replace(row_, sampler.greedy() ? nullptr : q_.data() + size_t(j) * V, drafts[j], sampler, &ok);
    out.push_back(t);
    if (!ok) break;
    hist_.push_back(t);
    ++m;
  }
  last_start_ = n;
  last_tokens_ = K + 1;
  keep(st, m + 1);

  ++stats_.verify_steps;
  stats_.proposed += K;
  stats_.accepted += m;
  stats_.tokens += m + 1;
  stats_.verify_s += verify_dt;
  stats_.draft_s += draft_dt;
  ema(verify_t_[K + 1], verify_dt, 0.1);
  ema(draft_t_, draft_dt / K, 0.1);
  const int trials = m < K ? m + 1 : K;  // drafts that were checked: up to the first rejection
  for (int i = 0; i < trials; ++i) alpha_ += 0.05 * ((i < m ? 1.0 : 0.0) - alpha_);
}

void SpeculativeDecoder::keep(SequenceState& st, int n) {
  if (last_tokens_ == 0) return;  // a plain step: its one token is all there is
  const int H = model_.config().hidden_size, V = model_.config().vocab_size;
  n = std::clamp(n, 1, last_tokens_);
  st.rewind(history_, n);
  logits_.assign(v_logits_.begin() + ptrdiff_t(n - 1) * V, v_logits_.begin() + ptrdiff_t(n) * V);
  pending_.assign(v_hidden_.begin(), v_hidden_.begin() + ptrdiff_t(n) * H);  // positions n0..n0+n-1
}

}  // namespace qnext
