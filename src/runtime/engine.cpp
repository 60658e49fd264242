#include "runtime/engine.h"

#include <optional>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <optional>

#include "kernels/delta_rule.h"
#include "runtime/stop_strings.h"

namespace qnext {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::None: return "none";
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "?";
}

bool RequestHandle::wait(std::vector<GenEvent>& out, int timeout_ms) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return !events_.empty(); })) return false;
  while (!events_.empty()) {
    out.push_back(std::move(events_.front()));
    events_.pop_front();
  }
  return true;
}

void RequestHandle::post(GenEvent e) {
  {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

// A running request: its state, sampler and text pipeline (ids -> UTF-8 -> stop strings).
struct Engine::Sequence {
  std::shared_ptr<RequestHandle> handle;
  GenRequest req;
  SequenceState state;
  Sampler sampler;
  IncrementalDecoder decoder;
  StopStringMatcher stops;
  std::vector<int32_t> history;  // prompt + sampled ids (penalties see both)
  std::vector<float> logits;     // [V] after the last fed token
  int fed = 0;                   // prompt ids in the state
  int cached = 0;                // of those, restored from the cache
  int generated = 0;             // sampled ids, EOS included
  int32_t pending = -1;          // sampled id to feed next step; -1 while prefilling
  std::unique_ptr<SpeculativeDecoder> spec;  // MTP drafting, when on for this request
  std::vector<float> hidden;     // [T, H] the last forward's rows after the final norm (for spec)
  std::vector<int32_t> spec_out;  // a speculative step's tokens
  std::optional<grammar::GrammarConstraint> constraint;  // when the request has a grammar
  bool constraint_waits = false;  // until req.grammar_after is sampled
  std::vector<float> masked;     // [V] the logits with the grammar's mask applied
  Clock::time_point submitted, admitted, first_token;

  Sequence(std::shared_ptr<RequestHandle> h, GenRequest r, SequenceState st, const Tokenizer& tok)
      : handle(std::move(h)),
        req(std::move(r)),
        state(std::move(st)),
        sampler(req.sampling),
        decoder(tok),
        stops(req.stop),
        history(req.prompt) {
    if (req.grammar) constraint.emplace(req.grammar);
    constraint_waits = req.grammar && req.grammar_after >= 0;
  }
  int prompt_len() const { return int(req.prompt.size()); }
};

Engine::Engine(Model& model, Tokenizer tok, std::vector<int32_t> eos_ids, EngineOptions opt)
    : model_(model), tok_(std::move(tok)), eos_(std::move(eos_ids)), opt_(opt), cache_(opt.cache_bytes) {
  const int model_ctx = model_.config().max_position_embeddings;
  if (opt_.ctx <= 0 || (model_ctx > 0 && opt_.ctx > model_ctx)) opt_.ctx = model_ctx > 0 ? model_ctx : 32768;
  opt_.parallel = std::max(1, opt_.parallel);
  opt_.batch_tokens = std::max(opt_.batch_tokens, opt_.parallel + kDeltaChunk);
  opt_.queue = std::max(0, opt_.queue);
  opt_.snapshot_every = std::max(kDeltaChunk, opt_.snapshot_every / kDeltaChunk * kDeltaChunk);
  thread_ = std::thread([this] { run(); });
}

Engine::~Engine() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool Engine::queue_full() const {
  std::lock_guard lock(mu_);
  return int(waiting_.size()) >= opt_.queue;
}

Result<std::shared_ptr<RequestHandle>> Engine::submit(GenRequest req) {
  const int vocab = model_.config().vocab_size;
  if (req.prompt.empty()) return err("the prompt is empty");
  for (int32_t id : req.prompt)
    if (id < 0 || id >= vocab) return err("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                                          std::to_string(vocab - 1) + ")");
  if (req.max_tokens < 1) return err("max_tokens must be at least 1");
  if (int64_t(req.prompt.size()) + req.max_tokens > opt_.ctx)
    return err("the prompt (" + std::to_string(req.prompt.size()) + " tokens) plus max_tokens (" +
               std::to_string(req.max_tokens) + ") exceeds the context of " + std::to_string(opt_.ctx) + " tokens");
  req.top_logprobs = std::min(req.top_logprobs, 20);
  req.sampling.penalty_counts_from = req.prompt.size();
  std::shared_ptr<RequestHandle> handle;
  {
    std::lock_guard lock(mu_);
    if (stop_) return err("the server is shutting down");
    if (int(waiting_.size()) >= opt_.queue) return err("the request queue is full");
    handle = std::make_shared<RequestHandle>(next_id_++);
    waiting_.emplace_back(std::move(req), handle);
    stats_.queued = int(waiting_.size());
  }
  cv_.notify_all();
  return handle;
}

void Engine::run() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !waiting_.empty() || !running_.empty(); });
      if (stop_) break;
    }
    try {
      admit();
      if (!running_.empty()) step();
    } catch (const std::exception& e) {
      // Out of memory growing a KV cache, say: the requests of this step end with the error; the
      // server goes on serving new ones.
      for (auto& seq : running_)
        if (seq->handle) finish(*seq, FinishReason::Error, std::string("engine: ") + e.what());
      running_.clear();
      stats_.running = 0;
    }
  }
  // Shutting down: every request still open ends as cancelled.
  for (auto& s : running_) finish(*s, FinishReason::Cancelled);
  running_.clear();
  std::lock_guard lock(mu_);
  for (auto& [req, handle] : waiting_) {
    GenEvent e;
    e.done = true;
    e.finish = FinishReason::Cancelled;
    handle->post(std::move(e));
  }
  waiting_.clear();
}

// Moves waiting requests into free slots; each starts from the longest cached prefix.
void Engine::admit() {
  while (int(running_.size()) < opt_.parallel) {
    std::pair<GenRequest, std::shared_ptr<RequestHandle>> next;
    {
      std::lock_guard lock(mu_);
      if (waiting_.empty()) break;
      next = std::move(waiting_.front());
      waiting_.pop_front();
      stats_.queued = int(waiting_.size());
    }
    auto& [req, handle] = next;
    SequenceState st = free_states_.empty() ? model_.new_state() : std::move(free_states_.back());
    if (!free_states_.empty()) free_states_.pop_back();
    st.reset();
    auto s = std::make_unique<Sequence>(handle, std::move(req), std::move(st), tok_);
    s->submitted = handle->submitted;
    s->admitted = Clock::now();
    if (handle->cancelled()) {
      finish(*s, FinishReason::Cancelled);
      continue;
    }
    if (opt_.mtp >= 0 && model_.has_mtp() && s->req.top_logprobs < 0 && !s->req.grammar)
      s->spec = std::make_unique<SpeculativeDecoder>(model_, SpecOptions{opt_.mtp, opt_.mtp > 0 ? opt_.mtp : 3});
    if (s->spec && opt_.mtp_draft_hook) s->spec->set_draft_hook(opt_.mtp_draft_hook);
    std::vector<float> mtp_rows;
    s->cached = s->fed = cache_.restore(s->req.prompt, s->state, &s->logits, &mtp_rows);
    if (s->spec && s->cached > 0) {  // the MTP head goes on from the snapshot if it kept its rows
      s->spec->fed(mtp_rows);
      if (!s->spec->in_sync(s->state)) s->spec.reset();
    }
    if (s->cached > 0) {
      ++stats_.cache_hits;
      stats_.cached_tokens += uint64_t(s->cached);
    } else {
      ++stats_.cache_misses;
    }
    // KV room for the prompt and the first tokens up front; beyond that it grows as needed.
    s->state.reserve(s->prompt_len() + std::min(s->req.max_tokens, 4096), s->spec != nullptr);
    stats_.prompt_tokens += uint64_t(s->prompt_len());
    running_.push_back(std::move(s));
    stats_.running = int(running_.size());
    Sequence& r = *running_.back();
    if (r.fed == r.prompt_len()) {  // the whole prompt was cached with its logits
      r.first_token = Clock::now();
      sample(r);
    }
  }
  // Finished during admission (a cached prompt whose first token ended it).
  std::erase_if(running_, [](const std::unique_ptr<Sequence>& s) { return s->handle == nullptr; });
  stats_.running = int(running_.size());
}

// The prompt position where s's next chunk ends, given the tokens left in this step's budget:
// at most the budget, cut at the next requested snapshot, and a whole number of delta-rule
// chunks unless it is the prompt's end.
static int chunk_end(const GenRequest& req, int fed, int budget, int snapshot_every) {
  const int len = int(req.prompt.size());
  int end = std::min(len, fed + budget);
  const int periodic = (fed / snapshot_every + 1) * snapshot_every;
  if (periodic < end) end = periodic;
  for (int p : req.snapshot_at)
    if (p > fed && p < end) end = p;
  if (end < len && end == fed + budget) {
    const int aligned = end / kDeltaChunk * kDeltaChunk;
    if (aligned > fed) end = aligned;
  }
  return end;
}

void Engine::step() {
  const auto t0 = Clock::now();
  for (auto& s : running_)
    if (s->handle->cancelled()) finish(*s, FinishReason::Cancelled);
  std::erase_if(running_, [](const std::unique_ptr<Sequence>& s) { return s->handle == nullptr; });
  stats_.running = int(running_.size());
  if (running_.empty()) return;

  if (running_.size() == 1) {
    Sequence& s = *running_[0];
    if (s.spec && s.pending >= 0 && s.state.pos + kMaxDrafts + 2 < opt_.ctx && s.spec->in_sync(s.state)) {
      speculative_step(s);
      std::erase_if(running_, [](const std::unique_ptr<Sequence>& q) { return q->handle == nullptr; });
      stats_.running = int(running_.size());
      return;
    }
  }

  // Every decoding sequence's next token, then prompt chunks (oldest first) under the budget.
  batch_.clear();
  std::vector<int>& ends = chunk_ends_;
  ends.assign(running_.size(), 0);
  int budget = opt_.batch_tokens, decoding = 0;
  for (auto& s : running_)
    if (s->pending >= 0) {
      batch_.push_back({&s->state, {&s->pending, 1}, &s->logits, s->spec ? &s->hidden : nullptr});
      --budget;
      ++decoding;
    }
  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    Sequence& s = *running_[i];
    if (s.pending >= 0 || s.fed == s.prompt_len()) continue;
    ends[i] = chunk_end(s.req, s.fed, budget, opt_.snapshot_every);
    const int n = ends[i] - s.fed;
    const bool last = ends[i] == s.prompt_len();
    batch_.push_back({&s.state, std::span<const int32_t>(s.req.prompt).subspan(size_t(s.fed), size_t(n)),
                      last ? &s.logits : nullptr, s.spec ? &s.hidden : nullptr});
    budget -= n;
  }
  model_.forward_batch(batch_);
  ++stats_.steps;

  for (size_t i = 0; i < running_.size(); ++i) {
    Sequence& s = *running_[i];
    if (s.spec && (s.pending >= 0 || ends[i] > 0)) {  // the MTP head keeps up with what was fed
      s.spec->fed(s.hidden);
      if (!s.spec->in_sync(s.state)) s.spec.reset();  // e.g. restored from a snapshot without its rows
    }
    if (s.pending >= 0) {
      s.pending = -1;
      sample(s);
      continue;
    }
    if (ends[i] == 0) continue;
    stats_.prefilled_tokens += uint64_t(ends[i] - s.fed);
    s.fed = ends[i];
    const bool done = s.fed == s.prompt_len();
    const bool wanted = done || s.fed % opt_.snapshot_every == 0 ||
                        std::find(s.req.snapshot_at.begin(), s.req.snapshot_at.end(), s.fed) != s.req.snapshot_at.end();
    const auto prefix = std::span<const int32_t>(s.req.prompt).first(size_t(s.fed));
    if (s.spec) s.spec->catch_up(s.state, prefix);  // one row left pending: snapshots keep it
    if (wanted)
      cache_.put(prefix, s.state, done ? std::span<const float>(s.logits) : std::span<const float>(), tok_.decode(prefix),
                 s.spec ? s.spec->pending_rows() : std::span<const float>());
    if (done) {
      s.first_token = Clock::now();
      sample(s);
    }
  }
  std::erase_if(running_, [](const std::unique_ptr<Sequence>& s) { return s->handle == nullptr; });
  stats_.running = int(running_.size());

  if (decoding > 0) {  // recent decode rate, smoothed over ~10 steps
    const double rate = decoding / std::max(1e-9, seconds_between(t0, Clock::now()));
    const double old = stats_.decode_tok_s.load();
    stats_.decode_tok_s = old == 0 ? rate : 0.9 * old + 0.1 * rate;
  }
}

// Log-probabilities of the raw logits: the chosen id's and the n most likely.
static TokenLogprob logprobs_of(std::span<const float> logits, int32_t id, int n) {
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float x : logits) sum += std::exp(double(x) - mx);
  const double lse = mx + std::log(sum);
  TokenLogprob t;
  t.id = id;
  t.logprob = float(logits[size_t(id)] - lse);
  if (n > 0) {
    std::vector<int32_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    n = std::min<int>(n, int(order.size()));
    std::partial_sort(order.begin(), order.begin() + n, order.end(), [&](int32_t a, int32_t b) {
      return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
    });
    for (int j = 0; j < n; ++j) t.top.push_back({order[size_t(j)], float(logits[size_t(order[size_t(j)])] - lse)});
  }
  return t;
}

void Engine::sample(Sequence& s) {
  const int V = model_.config().vocab_size;
  int32_t id;
  if (s.constraint && !s.constraint_waits) {
    // The mask goes first, so penalties, temperature and truncation see only allowed tokens;
    // logprobs stay those of the model's own logits.
    s.masked.assign(s.logits.begin(), s.logits.begin() + V);
    if (s.constraint->apply(s.masked) == 0) {  // the grammar is complete and no EOS id exists
      finish(s, FinishReason::Stop);
      return;
    }
    id = s.sampler.sample(s.masked, s.history);
    if (!s.constraint->accept(id)) {  // only past the matcher's ambiguity bounds (grammar.h)
      finish(s, FinishReason::Error, "the output grammar is too ambiguous to follow (kMaxStacks)");
      return;
    }
  } else {
    id = s.sampler.sample({s.logits.data(), size_t(V)}, s.history);
    if (s.constraint_waits && id == s.req.grammar_after) s.constraint_waits = false;
  }
  const FinishReason why = take(s, id, &s.logits);
  if (why != FinishReason::None) finish(s, why);
}

FinishReason Engine::take(Sequence& s, int32_t id, const std::vector<float>* logits) {
  const int V = model_.config().vocab_size;
  ++s.generated;
  ++stats_.completion_tokens;
  const bool eos = !s.req.ignore_eos && std::find(eos_.begin(), eos_.end(), id) != eos_.end();

  GenEvent e;
  if (!eos) {
    TokenLogprob t = s.req.top_logprobs >= 0 && logits
                         ? logprobs_of({logits->data(), size_t(V)}, id, s.req.top_logprobs)
                         : TokenLogprob{id, 0, {}};
    e.tokens.push_back(std::move(t));
    e.text = s.stops.feed(s.decoder.push(id));
  }
  FinishReason why = FinishReason::None;
  if (eos || s.stops.stopped()) why = FinishReason::Stop;
  else if (s.generated >= s.req.max_tokens || s.state.pos + 1 >= opt_.ctx) why = FinishReason::Length;
  if (why != FinishReason::None && !s.stops.stopped()) {  // the end: what the decoder and matcher held
    e.text += s.stops.feed(s.decoder.flush());
    if (s.stops.stopped()) why = FinishReason::Stop;
    else e.text += s.stops.flush();
  }
  if (!e.text.empty() || !e.tokens.empty()) s.handle->post(std::move(e));
  if (why != FinishReason::None) return why;
  s.history.push_back(id);
  s.pending = id;
  return FinishReason::None;
}

// One MTP step of a sequence running alone: K drafts, one forward over [pending, drafts], the
// accepted tokens and the main model's own next one posted in order, the state rolled back to
// what was taken (a stop or max_tokens inside the step ends it early).
void Engine::speculative_step(Sequence& s) {
  const SpecStats before = s.spec->stats();
  const auto fed_ids = std::span<const int32_t>(s.history).first(size_t(s.state.pos));
  s.spec->step(s.state, fed_ids, s.pending, s.sampler, s.history, s.spec_out);
  s.pending = -1;
  size_t used = 0;
  FinishReason why = FinishReason::None;
  while (used < s.spec_out.size() && why == FinishReason::None) why = take(s, s.spec_out[used++], nullptr);
  s.spec->keep(s.state, int(used));  // the state holds every taken token but the last
  s.logits = s.spec->logits();
  ++stats_.steps;
  const SpecStats& after = s.spec->stats();
  stats_.mtp_steps += uint64_t(after.verify_steps - before.verify_steps);
  stats_.mtp_proposed += uint64_t(after.proposed - before.proposed);
  stats_.mtp_accepted += uint64_t(after.accepted - before.accepted);
  if (why != FinishReason::None) finish(s, why);
}

// Posts the last event, snapshots the conversation so far for a follow-up request, and frees
// the slot (the sequence is removed from running_ by the caller: handle becomes null).
void Engine::finish(Sequence& s, FinishReason why, std::string error) {
  const auto now = Clock::now();
  if (why == FinishReason::Stop || why == FinishReason::Length) {
    // The state holds the prompt and every sampled id but the last (never fed).
    const int n = s.state.pos;
    const auto ids = std::span<const int32_t>(s.history).first(size_t(std::min<int>(n, int(s.history.size()))));
    // The MTP head's unconsumed rows go along when few (it catches up lazily while batched).
    const bool rows = s.spec && s.spec->in_sync(s.state) && s.spec->pending_rows().size() <= size_t(64) * model_.config().hidden_size;
    if (n > s.prompt_len() && n <= int(s.history.size()))
      cache_.put(ids, s.state, s.logits, tok_.decode(ids), rows ? s.spec->pending_rows() : std::span<const float>());
  }
  GenEvent e;
  e.done = true;
  e.finish = why;
  e.error = std::move(error);
  e.prompt_tokens = s.prompt_len();
  e.completion_tokens = s.generated;
  e.cached_tokens = s.cached;
  const bool started = s.first_token != Clock::time_point{};
  e.queue_s = seconds_between(s.submitted, s.admitted);
  e.prefill_s = started ? seconds_between(s.admitted, s.first_token) : seconds_between(s.admitted, now);
  e.decode_s = started ? seconds_between(s.first_token, now) : 0;
  s.handle->post(std::move(e));
  s.handle = nullptr;
  ++stats_.requests_finished;
  if (why == FinishReason::Cancelled) ++stats_.requests_cancelled;
  free_states_.push_back(std::move(s.state));
}

}  // namespace qnext
