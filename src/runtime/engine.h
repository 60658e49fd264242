// The serving engine: one thread owns the model and advances every running sequence together
// (continuous batching); other threads only submit requests and read their events.
//
// Each step takes the next token of every decoding sequence plus prompt chunks of new ones under
// a token budget, runs them as one batched forward (each weight read once for all of them),
// samples each sequence with its own sampler and RNG, and posts what it produced to the
// request's handle. Prompts start from the longest cached prefix (runtime/state_cache.h).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/result.h"
#include "model/qwen3_next.h"
#include "runtime/grammar_mask.h"
#include "runtime/sampling.h"
#include "runtime/speculative.h"
#include "runtime/state_cache.h"
#include "tokenizer/tokenizer.h"

namespace qnext {

struct EngineOptions {
  int parallel = 4;          // most sequences running at once
  int batch_tokens = 512;    // most tokens per step (decode tokens + prompt chunks)
  int queue = 64;            // most requests waiting for a slot; beyond: rejected (HTTP 503)
  int ctx = 0;               // most positions per sequence (prompt + generated); 0: the model's
  size_t cache_bytes = size_t(1) << 30;  // state cache budget (--cache-mb)
  int snapshot_every = 1024;  // prompt positions between state-cache snapshots
  // MTP speculative decoding while one sequence runs alone (a lone chat, the usual local case):
  // -1 off, 0 adaptive K, 1..kMaxDrafts fixed K. With other sequences running, steps are batched.
  // Requests that ask for logprobs decode without drafts.
  int mtp = -1;
  SpeculativeDecoder::DraftHook mtp_draft_hook;  // tests: decides the drafts (see SpeculativeDecoder)
};

struct GenRequest {
  std::vector<int32_t> prompt;     // at least one id
  SamplingParams sampling;
  int max_tokens = 256;            // >= 1
  std::vector<std::string> stop;   // stop strings: never emitted, not even in part
  bool ignore_eos = false;
  int top_logprobs = -1;           // -1: no logprobs; 0..20: the chosen token's plus this many alternatives
  // Prompt positions worth a state-cache snapshot besides the periodic ones, e.g. where the
  // newest chat message starts: the next request that shares the conversation up to there
  // restores it instead of prefilling.
  std::vector<int> snapshot_at;
  // Constrained decoding: every sampled token obeys this grammar (EOS only where it may end).
  // The masker may be shared by requests with the same grammar; only the engine thread uses it
  // once submitted. Such requests decode without MTP drafts.
  std::shared_ptr<grammar::TokenMasker> grammar;
  // With a grammar: it starts after this token is sampled (e.g. </think> when the prompt opens a
  // reasoning block, so the model reasons freely and the answer obeys). -1: from the first token.
  int32_t grammar_after = -1;
};

enum class FinishReason { None, Stop, Length, Cancelled, Error };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error"

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;  // log softmax of the model's raw logits (before penalties and temperature)
  std::vector<std::pair<int32_t, float>> top;  // [top_logprobs] most likely ids, best first
};

// What a request's reader receives, in order. The concatenation of every event's text is the
// completion (EOS and stop strings excluded); tokens are the sampled ids that made it.
struct GenEvent {
  std::string text;
  std::vector<TokenLogprob> tokens;  // one per sampled token (logprob fields set when asked)
  bool done = false;                 // the last event of the request
  FinishReason finish = FinishReason::None;
  std::string error;                 // when finish == Error
  // Set on the last event:
  int prompt_tokens = 0, completion_tokens = 0;
  int cached_tokens = 0;             // prompt tokens restored from the state cache
  double queue_s = 0, prefill_s = 0, decode_s = 0;  // waiting, first token, the rest
};

// Shared by the engine and the request's reader. The reader may cancel at any time; the
// engine drops the sequence at its next step.
class RequestHandle {
 public:
  // Waits up to timeout_ms for events; moves all that arrived into out. False on timeout.
  bool wait(std::vector<GenEvent>& out, int timeout_ms);
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }
  uint64_t id() const { return id_; }

  // Engine side.
  explicit RequestHandle(uint64_t id) : id_(id) {}
  void post(GenEvent e);
  const std::chrono::steady_clock::time_point submitted = std::chrono::steady_clock::now();

 private:
  uint64_t id_;
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<GenEvent> events_;
};

// Counters for /metrics; read at any time.
struct EngineStats {
  std::atomic<uint64_t> prompt_tokens{0}, completion_tokens{0}, prefilled_tokens{0};
  std::atomic<uint64_t> cache_hits{0}, cache_misses{0}, cached_tokens{0};
  std::atomic<uint64_t> steps{0}, requests_finished{0}, requests_cancelled{0};
  std::atomic<int> queued{0}, running{0};
  std::atomic<double> decode_tok_s{0};  // recent decode rate (tokens of all sequences per second)
  std::atomic<uint64_t> mtp_steps{0}, mtp_proposed{0}, mtp_accepted{0};  // speculative steps and their drafts
};

class Engine {
 public:
  Engine(Model& model, Tokenizer tok, std::vector<int32_t> eos_ids, EngineOptions opt);
  ~Engine();  // stops the engine thread; unfinished requests end with FinishReason::Cancelled
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request. Errors: invalid request (ids outside the vocabulary, empty prompt, prompt +
  // max_tokens over ctx) or a full queue (queue_full() is then true). Never blocks on the model.
  Result<std::shared_ptr<RequestHandle>> submit(GenRequest req);
  bool queue_full() const;

  int ctx() const { return opt_.ctx; }
  const EngineOptions& options() const { return opt_; }
  const EngineStats& stats() const { return stats_; }
  const StateCache& cache() const { return cache_; }  // sizes only; read from other threads
  const Tokenizer& tokenizer() const { return tok_; }
  const Model& model() const { return model_; }

 private:
  struct Sequence;
  void run();
  void admit();
  void step();
  void sample(Sequence& s);  // picks s's next token from s.logits and posts it
  // Posts sampled token id (with logprobs from `logits` when asked and given); returns why the
  // sequence ends with it, or None (then id is s's next token to feed).
  FinishReason take(Sequence& s, int32_t id, const std::vector<float>* logits);
  void speculative_step(Sequence& s);  // a lone sequence: MTP drafts, one verify forward
  void finish(Sequence& s, FinishReason why, std::string error = {});

  Model& model_;
  Tokenizer tok_;
  std::vector<int32_t> eos_;
  EngineOptions opt_;
  EngineStats stats_;
  StateCache cache_;

  mutable std::mutex mu_;  // guards waiting_ and stop_
  std::condition_variable cv_;
  std::deque<std::pair<GenRequest, std::shared_ptr<RequestHandle>>> waiting_;
  bool stop_ = false;
  uint64_t next_id_ = 1;

  std::vector<std::unique_ptr<Sequence>> running_;  // engine thread only
  std::vector<SequenceState> free_states_;          // states of finished sequences, reused
  std::vector<BatchEntry> batch_;                   // the step's forward call
  std::vector<int> chunk_ends_;                     // [running] prompt position each chunk ends at (0: none)
  std::thread thread_;
};

}  // namespace qnext
