// Prometheus text exposition for GET /metrics: HTTP requests by status code (counted here) and
// the engine's counters and gauges (copied into a snapshot, so this file needs no engine).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace qnext::server {

// Engine and state-cache figures at one moment (from EngineStats and Engine::cache()).
struct EngineSnapshot {
  uint64_t prompt_tokens = 0, completion_tokens = 0, prefilled_tokens = 0;
  uint64_t cache_hits = 0, cache_misses = 0, cached_tokens = 0;
  uint64_t steps = 0, requests_finished = 0, requests_cancelled = 0;
  int queued = 0, running = 0;
  double decode_tok_s = 0;
  size_t cache_bytes = 0, cache_entries = 0, cache_budget = 0;
  uint64_t cache_evictions = 0;
  uint64_t mtp_steps = 0, mtp_proposed = 0, mtp_accepted = 0;
  int parallel = 0, ctx = 0;
};

// HTTP-side counters; thread-safe.
class ServerMetrics {
 public:
  void count_request(int status);
  std::map<int, uint64_t> requests_by_status() const;

 private:
  mutable std::mutex mu_;
  std::map<int, uint64_t> by_status_;
};

// The whole /metrics page (text/plain; version=0.0.4).
std::string render_metrics(const std::map<int, uint64_t>& requests_by_status, const EngineSnapshot& e);

}  // namespace qnext::server
