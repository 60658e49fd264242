#include "server/metrics.h"

#include <cstdio>

namespace qnext::server {

void ServerMetrics::count_request(int status) {
  std::lock_guard lock(mu_);
  ++by_status_[status];
}

std::map<int, uint64_t> ServerMetrics::requests_by_status() const {
  std::lock_guard lock(mu_);
  return by_status_;
}

namespace {

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const char* name, double value, const std::string& labels = "") {
  char buf[64];
  // Integers print exactly (counters can pass 2^31); rates keep a few decimals.
  if (value == double(uint64_t(value)) && value < 1e18)
    std::snprintf(buf, sizeof buf, "%llu", (unsigned long long)value);
  else
    std::snprintf(buf, sizeof buf, "%.6g", value);
  out += name;
  if (!labels.empty()) out += "{" + labels + "}";
  out += ' ';
  out += buf;
  out += '\n';
}

void metric(std::string& out, const char* name, const char* type, const char* help, double value) {
  family(out, name, type, help);
  sample(out, name, value);
}

}  // namespace

std::string render_metrics(const std::map<int, uint64_t>& requests_by_status, const EngineSnapshot& e) {
  std::string out;
  family(out, "qnext_requests_total", "counter", "HTTP requests answered, by status code.");
  for (auto [code, n] : requests_by_status) sample(out, "qnext_requests_total", double(n), "code=\"" + std::to_string(code) + "\"");
  metric(out, "qnext_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", double(e.prompt_tokens));
  metric(out, "qnext_prefilled_tokens_total", "counter", "Prompt tokens actually prefilled (not restored from the cache).",
         double(e.prefilled_tokens));
  metric(out, "qnext_completion_tokens_total", "counter", "Generated tokens.", double(e.completion_tokens));
  metric(out, "qnext_requests_finished_total", "counter", "Engine requests that finished.", double(e.requests_finished));
  metric(out, "qnext_requests_cancelled_total", "counter", "Engine requests cancelled (client gone or shutdown).",
         double(e.requests_cancelled));
  metric(out, "qnext_engine_steps_total", "counter", "Batched forward steps.", double(e.steps));
  metric(out, "qnext_queue_depth", "gauge", "Requests waiting for a sequence slot.", e.queued);
  metric(out, "qnext_running_sequences", "gauge", "Sequences being prefilled or decoded.", e.running);
  metric(out, "qnext_parallel_max", "gauge", "Most sequences running at once (--parallel).", e.parallel);
  metric(out, "qnext_context_size", "gauge", "Most positions per sequence.", e.ctx);
  metric(out, "qnext_decode_tokens_per_second", "gauge", "Recent decode rate over all sequences.", e.decode_tok_s);
  metric(out, "qnext_cache_hits_total", "counter", "Prompts that started from a cached state.", double(e.cache_hits));
  metric(out, "qnext_mtp_steps_total", "counter", "Speculative (MTP) steps of lone sequences.", double(e.mtp_steps));
  metric(out, "qnext_mtp_drafts_total", "counter", "Tokens drafted by the MTP head.", double(e.mtp_proposed));
  metric(out, "qnext_mtp_accepted_total", "counter", "Drafted tokens the main model accepted.", double(e.mtp_accepted));
  metric(out, "qnext_cache_misses_total", "counter", "Prompts with no cached prefix.", double(e.cache_misses));
  metric(out, "qnext_cache_hit_tokens_total", "counter", "Prompt tokens restored from the state cache.",
         double(e.cached_tokens));
  metric(out, "qnext_cache_bytes", "gauge", "Bytes held by state-cache snapshots.", double(e.cache_bytes));
  metric(out, "qnext_cache_budget_bytes", "gauge", "State-cache budget (--cache-mb).", double(e.cache_budget));
  metric(out, "qnext_cache_entries", "gauge", "State-cache snapshots.", double(e.cache_entries));
  metric(out, "qnext_cache_evictions_total", "counter", "State-cache snapshots evicted.", double(e.cache_evictions));
  return out;
}

}  // namespace qnext::server
