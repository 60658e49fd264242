// `qnext bench`: prefill and decode speed like llama-bench, held against the memory-bandwidth
// roofline of this machine (decoding reads every active weight once per token).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.h"
#include "cli/bench_batch.h"
#include "cli/bench_mtp.h"
#include "cli/common.h"
#include "core/bandwidth.h"
#include "core/cpu.h"
#include "core/memory_info.h"
#include "kernels/argmax.h"
#include "model/state.h"
#include "runtime/expert_cache.h"
#include "runtime/expert_parallel.h"
#include "runtime/expert_trace.h"

namespace qnext::cli {

namespace {

struct Stats {
  double median = 0, min = 0, max = 0;
};

Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  Stats s;
  if (v.empty()) return s;
  s.min = v.front();
  s.max = v.back();
  s.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The process's peak resident set (VmHWM), which reset_peak_rss can lower again; getrusage's
// maxrss cannot be reset and would keep the bandwidth probe's buffer.
size_t peak_rss_bytes() {
  if (const size_t bytes = peak_resident_bytes()) return bytes;
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return size_t(u.ru_maxrss) * 1024;
}

// Lowers the peak to what is resident now (Linux: "5" to clear_refs), so that a probe's freed
// buffer does not count as the model's memory. False where the kernel or sandbox refuses.
bool reset_peak_rss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool written = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && written;
}

}  // namespace

void register_bench(CLI::App& app, int& exit_code) {
  struct Opts {
    ModelFlags model;
    int prompt = 512, gen = 128, repeats = 3, depth = 0, ubatch = ForwardOptions{}.max_tokens_per_call;
    bool json = false;
    int mtp = 0, batch = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("bench", "Prefill/decode tokens per second, peak RSS and % of the bandwidth roofline");
  o->model.threads = 2;
  o->model.add_to(cmd);
  cmd->add_option("-p,--prompt", o->prompt, "Prompt tokens to prefill (0 skips)");
  cmd->add_option("-n,--gen", o->gen, "Tokens to decode (0 skips)");
  cmd->add_option("-r,--repeats", o->repeats, "Repeats (median, min, max reported)");
  cmd->add_option("--depth,-d", o->depth, "Tokens already in context before each test");
  cmd->add_option("--ubatch", o->ubatch,
                  "Most tokens per forward call: longer prompts go in slices of this many (workspace memory "
                  "grows with it)")
      ->check(CLI::Range(64, 1 << 20));
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->add_option("--mtp", o->mtp, "Also measure MTP speculative decoding for K = 1..this (verify cost, projected tok/s)")
      ->check(CLI::Range(0, kMaxDrafts));
  cmd->add_option("--batch", o->batch,
                  "Also measure batched decoding: N sequences per forward against one, alternating (serving)")
      ->check(CLI::Range(0, 256));
  cmd->callback([o, &exit_code] {
    exit_code = 1;
    const auto t_load = std::chrono::steady_clock::now();
    auto model = o->model.load_or_report();
    if (!model) return;
    const double load_s = seconds_since(t_load);
    const auto t_fault = std::chrono::steady_clock::now();
    // With an expert cache only the dense weights are paged in; the experts come as decoding asks.
    auto* cache = dynamic_cast<ExpertCache*>(model->expert_source());
    if (cache) cache->record_trace(true);  // to replay against other policies at the end
    if (cache) model->weights().prefault_dense();
    else model->weights().prefault();
    prefault_expert_ranks(*model);  // under mpirun: every rank's share of the experts
    const double prefault_s = seconds_since(t_fault);
    const Config& c = model->config();
    std::mt19937 rng(42);
    auto random_ids = [&](int n) {
      std::vector<int32_t> ids(size_t(std::max(n, 0)));
      for (auto& id : ids) id = int32_t(rng() % uint32_t(std::min(c.vocab_size, 151643)));
      return ids;
    };
    std::vector<float> logits;
    ForwardOptions opt;
    opt.max_tokens_per_call = o->ubatch;
    // The prefill and decode tests' KV caches are sized up front for the depth and the test's
    // tokens, as the server reserves a request's prompt and first tokens (and llama-bench its
    // context): a cache that grew inside a timed decode would charge that one copy to the 64
    // tokens around it.
    auto fresh_state = [&](int tokens) {
      auto st = std::make_unique<SequenceState>(model->new_state());
      st->reserve(o->depth + tokens, false);
      if (o->depth > 0) model->forward(*st, random_ids(o->depth), opt, nullptr, &logits);
      return st;
    };
    // Warm-up: the code paths, and (as llama-bench warms up with the test's prompt) a prompt of
    // the test's length up to one ubatch, which reads every expert. The first prompt after load
    // ran at half the pace of the next ones (BF16 slice, Zen 5 VM: 125 against 231 tok/s), each
    // weight page's first read from the process costing more than later ones, even in the copy.
    {
      SequenceState st = model->new_state();
      model->forward(st, random_ids(std::clamp(o->prompt, 8, o->ubatch)), opt, nullptr, &logits);
      for (int i = 0; i < 4; ++i) model->forward(st, random_ids(1), opt, nullptr, &logits);
    }
    auto decode_rate = [&](SequenceState& st) {  // tok/s over o->gen greedy tokens
      int32_t next = random_ids(1)[0];
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < o->gen; ++i) {
        model->forward(st, std::span<const int32_t>(&next, 1), opt, nullptr, &logits);
        next = int32_t(argmax(logits.data(), int64_t(logits.size())));
      }
      return o->gen / seconds_since(t0);
    };
    // With --depth, every repeat also decodes from an empty state just before, so the cost of
    // depth is a ratio measured side by side (this machine's speed drifts between runs).
    // The roofline's bandwidth is probed right after each decode repeat: on a shared machine the
    // memory's speed drifts, and a probe taken once, at another moment, makes the fraction noise.
    const double bytes_per_token = double(model->active_weight_bytes());
    // Beside the weights, each decoded token reads and writes every DeltaNet layer's state (the
    // real model: 36 layers x 2.1 MiB, ~8% of its q4 weights' bytes): shown as a second fraction.
    const double state_bytes_per_token = 2.0 * double(fixed_state_bytes(model->config()));
    std::vector<double> pp, tg, tg0, depth_ratio, probe, fraction, fraction_with_state;
    std::vector<double> hit_rate, disk_bytes, read_share;  // expert cache, per decode repeat
    ExchangeStats exchange;    // under mpirun: what the decode repeats exchanged, in all
    int64_t decoded = 0;
    size_t rss_peak = 0;       // the model's, without the probe's buffer
    bool peak_resets = true;   // false once clear_refs was refused: later peaks include a probe
    for (int r = 0; r < o->repeats; ++r) {
      if (o->prompt > 0) {
        auto st = fresh_state(o->prompt);
        const auto ids = random_ids(o->prompt);
        const auto t0 = std::chrono::steady_clock::now();
        model->forward(*st, ids, opt, nullptr, &logits);
        pp.push_back(o->prompt / seconds_since(t0));
      }
      if (o->gen > 0) {
        auto st = fresh_state(o->gen);
        if (o->depth > 0) {
          SequenceState empty = model->new_state();
          empty.reserve(o->gen, false);
          tg0.push_back(decode_rate(empty));
        }
        const ExpertSourceStats s0 = cache ? cache->stats() : ExpertSourceStats{};
        const ExchangeStats x0 = expert_exchange_stats(*model);
        tg.push_back(decode_rate(*st));
        const ExchangeStats x1 = expert_exchange_stats(*model);
        exchange.messages += x1.messages - x0.messages, exchange.moe_calls += x1.moe_calls - x0.moe_calls;
        exchange.bytes_sent += x1.bytes_sent - x0.bytes_sent, exchange.bytes_received += x1.bytes_received - x0.bytes_received;
        exchange.wait_seconds += x1.wait_seconds - x0.wait_seconds;
        decoded += o->gen;
        if (peak_resets) rss_peak = std::max(rss_peak, peak_rss_bytes());
        if (cache) {  // the roofline is the disk's (measured once, below), not the memory's
          const ExpertSourceStats s1 = cache->stats();
          hit_rate.push_back(double(s1.hits - s0.hits) / double(std::max<uint64_t>(1, s1.lookups - s0.lookups)));
          disk_bytes.push_back(double(s1.bytes_read - s0.bytes_read) / o->gen);
          read_share.push_back((s1.read_seconds - s0.read_seconds) * tg.back() / o->gen);
          continue;
        }
        probe.push_back(measure_read_bandwidth(o->model.threads, size_t(1) << 30, 2) * 1e9);
        peak_resets = peak_resets && reset_peak_rss();
        fraction.push_back(probe.back() > 0 ? bytes_per_token * tg.back() / probe.back() : 0);
        fraction_with_state.push_back(probe.back() > 0 ? (bytes_per_token + state_bytes_per_token) * tg.back() / probe.back() : 0);
        if (o->depth > 0) depth_ratio.push_back(tg.back() / tg0.back());
      }
    }
    nlohmann::json mtp;
    if (o->mtp > 0 && !model->has_mtp()) {
      std::fprintf(stderr, "error: the model has no MTP weights (mtp.*): --mtp needs them\n");
      return;
    }
    if (o->mtp > 0) mtp = bench_mtp(*model, o->mtp, std::max(8, o->gen / 4), o->json);
    nlohmann::json batched;
    if (o->batch > 0) batched = bench_batch(*model, o->batch, std::max(5, 4 * o->repeats + 1), 2, o->json);
    const Stats p = stats(pp), g = stats(tg), g0 = stats(tg0), ratio = stats(depth_ratio);
    // Without resets the peak from the first probe on includes its buffer: the last clean reading
    // stands (the MTP and batch runs then do not count).
    const size_t rss = peak_resets ? std::max(rss_peak, peak_rss_bytes()) : rss_peak;
    // Each decode repeat probed the bandwidth after it; a prefill-only run (-n 0) has no roofline
    // to measure against, so no probe (its 1 GiB of page faults and reads only cost time).
    const Stats bw = stats(probe), fr = stats(fraction), frs = stats(fraction_with_state);
    const Stats hits = stats(hit_rate), disk = stats(disk_bytes), waits = stats(read_share);
    const double disk_rate = cache && o->gen > 0 ? cache->measure_disk_rate(size_t(1) << 30) : 0;
    // Next-layer prediction (--expert-prefetch), over the whole run: the share of predicted experts
    // the layer used, and of the layer's experts that were predicted.
    const ExpertSourceStats all = cache ? cache->stats() : ExpertSourceStats{};
    const double prefetch_precision = all.predicted ? double(all.predicted_used) / double(all.predicted) : 0;
    const double prefetch_recall = all.lookups_predicted ? double(all.predicted_used) / double(all.lookups_predicted) : 0;
    nlohmann::json policies;  // hit rates of the whole run's lookups replayed, the cache's capacity
    if (cache)
      for (auto policy : {ReplacementPolicy::Lru, ReplacementPolicy::Lfu, ReplacementPolicy::Optimal})
        policies[std::string(policy_name(policy))] = replay_hit_rate(cache->trace(), cache->capacity(), policy);
    const double bandwidth = bw.median;
    const double achieved = bytes_per_token * g.median;
    // Under mpirun: the exchange per decoded token, each rank's resident bytes, and a projection
    // to one rank per machine over 25 Gb/s links: rank 0's own time here (the token's time less
    // its wait for the others) plus, per MoE layer, one round trip (kRoundTrip, TCP on such a link)
    // and the bytes at the link's rate; the other ranks, each on its own memory, compute their
    // equal shares while rank 0 computes its own.
    const int ranks = parallel_world().size;
    nlohmann::json parallel;
    if (ranks > 1 && decoded > 0 && g.median > 0) {
      constexpr double kLink = 25e9 / 8, kRoundTrip = 50e-6;
      const double per = 1.0 / double(decoded);
      const double bytes = double(exchange.bytes_sent + exchange.bytes_received) * per;
      const double rounds = double(exchange.moe_calls) * per, wait = exchange.wait_seconds * per;
      const double own = std::max(0.0, 1.0 / g.median - wait);
      const double projected = 1.0 / (own + rounds * kRoundTrip + bytes / kLink);
      const auto resident = expert_ranks_resident_bytes(*model);
      parallel = {{"ranks", ranks},
                  {"messages_per_token", double(exchange.messages) * per},
                  {"exchange_bytes_per_token", bytes},
                  {"exchange_rounds_per_token", rounds},
                  {"exchange_wait_s_per_token", wait},
                  {"rank_resident_bytes", resident},
                  {"projected_decode_tok_s_25gbps", projected}};
    }
    if (o->json) {
      nlohmann::json j = {{"model", o->model.dir},
                          {"isa", std::string(isa_name(active_isa()))},
                          {"activations", std::string(activations_name())},
                          {"kv_type", o->model.kv_type},
                          {"threads", o->model.threads},
                          {"depth", o->depth},
                          {"ubatch", o->ubatch},
                          {"prompt_tokens", o->prompt},
                          {"gen_tokens", o->gen},
                          {"repeats", o->repeats},
                          {"load_s", load_s},
                          {"prefault_s", prefault_s},
                          {"prefill_tok_s", p.median},
                          {"prefill_tok_s_min", p.min},
                          {"prefill_tok_s_max", p.max},
                          {"decode_tok_s", g.median},
                          {"decode_tok_s_min", g.min},
                          {"decode_tok_s_max", g.max},
                          {"decode_tok_s_depth0", g0.median},    // --depth only: the same decode from empty
                          {"decode_depth_ratio", ratio.median},  // median over repeats of tg(depth) / tg(0)
                          {"peak_rss_bytes", rss},
                          {"weights_bytes", model->weight_bytes()},
                          {"bytes_per_token", bytes_per_token},
                          {"measured_bandwidth_gb_s", bandwidth / 1e9},
                          {"achieved_gb_s", achieved / 1e9},
                          {"roofline_tok_s", bandwidth / bytes_per_token},
                          {"measured_bandwidth_gb_s_min", bw.min / 1e9},
                          {"measured_bandwidth_gb_s_max", bw.max / 1e9},
                          {"roofline_fraction", fr.median},  // median over repeats of tg x bytes / that repeat's probe
                          {"roofline_fraction_min", fr.min},
                          {"roofline_fraction_max", fr.max},
                          {"state_bytes_per_token", state_bytes_per_token},  // the DeltaNet states, read and written
                          {"roofline_fraction_with_state", frs.median}};
      if (cache)
        j["expert_cache"] = {{"slots", cache->capacity()},
                             {"experts", cache->plan().expert_count},
                             {"cache_bytes", size_t(cache->capacity()) * cache->plan().slot_bytes},
                             {"dense_bytes", cache->plan().dense_bytes},
                             {"direct_reads", cache->direct_reads()},
                             {"hit_rate", hits.median},
                             {"disk_bytes_per_token", disk.median},
                             {"read_wait_fraction", waits.median},
                             {"disk_read_gb_s", disk_rate / 1e9},
                             {"disk_roofline_tok_s", disk.median > 0 ? disk_rate / disk.median : 0},
                             {"replayed_hit_rates", policies},
                             {"prefetch_precision", prefetch_precision},
                             {"prefetch_recall", prefetch_recall}};
      if (o->mtp > 0) j["mtp"] = mtp;
      if (o->batch > 0) j["batch"] = batched;
      if (!parallel.is_null()) j["expert_parallel"] = parallel;
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("model %s | isa %s | activations %s | threads %d | depth %d | kv %s | load %.2f s | page-in %.2f s\n",
                  o->model.dir.c_str(), std::string(isa_name(active_isa())).c_str(),
                  std::string(activations_name()).c_str(), o->model.threads, o->depth,
                  o->model.kv_type.c_str(), load_s, prefault_s);
      std::printf("%-10s %12s %12s %12s\n", "test", "median t/s", "min", "max");
      if (o->prompt > 0) std::printf("pp%-8d %12.2f %12.2f %12.2f\n", o->prompt, p.median, p.min, p.max);
      if (o->gen > 0) std::printf("tg%-8d %12.2f %12.2f %12.2f\n", o->gen, g.median, g.min, g.max);
      if (o->gen > 0 && o->depth > 0)
        std::printf("tg%-8d %12.2f %12.2f %12.2f   at depth 0, alternating with the above: ratio %.3f\n", o->gen,
                    g0.median, g0.min, g0.max, ratio.median);
      std::printf("peak RSS %s (weights %s)\n", human_bytes(double(rss)).c_str(), human_bytes(double(model->weight_bytes())).c_str());
      if (cache)
        std::printf("expert cache: %d of %d experts (%s, reads %s); decoding: hit rate %.1f%% (%.1f-%.1f), %s read "
                    "per token, waiting on reads %.0f%% of the time;\n"
                    "          disk read rate probed %.2f GB/s -> at most %.2f tok/s from disk\n",
                    cache->capacity(), cache->plan().expert_count,
                    human_bytes(double(size_t(cache->capacity()) * cache->plan().slot_bytes)).c_str(),
                    cache->direct_reads() ? "direct" : "through the page cache", 100 * hits.median, 100 * hits.min,
                    100 * hits.max, human_bytes(disk.median).c_str(), 100 * waits.median, disk_rate / 1e9,
                    disk.median > 0 ? disk_rate / disk.median : 0.0);
      if (cache && all.predicted > 0)
        std::printf("          next-layer prediction: %.1f%% of predicted experts used, %.1f%% of used experts predicted, "
                    "%llu read ahead\n",
                    100 * prefetch_precision, 100 * prefetch_recall, (unsigned long long)all.prefetched);
      if (cache)
        std::printf("          the run's %zu lookups replayed at this capacity: hit rate LRU %.1f%%, LFU %.1f%%, optimal "
                    "(Belady) %.1f%%\n",
                    cache->trace().size(), 100 * policies["LRU"].get<double>(), 100 * policies["LFU"].get<double>(),
                    100 * policies["optimal"].get<double>());
      if (!cache && o->gen > 0)
        std::printf("roofline: %s of weights per decoded token; read bandwidth probed after each decode %.2f GB/s"
                    " (%.2f-%.2f) -> at most %.2f tok/s;\n"
                    "          achieved %.2f GB/s; per repeat against its own probe %.1f%% of the limit (%.1f-%.1f%%)\n",
                    human_bytes(bytes_per_token).c_str(), bandwidth / 1e9, bw.min / 1e9, bw.max / 1e9,
                    bandwidth / bytes_per_token, achieved / 1e9, 100 * fr.median, 100 * fr.min, 100 * fr.max);
      if (!cache && o->gen > 0 && state_bytes_per_token > 0)
        std::printf("          counting the recurrent state read and written too (%s a token): %.1f%% (%.1f-%.1f%%)\n",
                    human_bytes(state_bytes_per_token).c_str(), 100 * frs.median, 100 * frs.min, 100 * frs.max);
      if (!parallel.is_null()) {
        std::string resident;
        for (size_t r = 0; r < parallel["rank_resident_bytes"].size(); ++r)
          resident += (r ? ", " : "") + human_bytes(parallel["rank_resident_bytes"][r].get<double>());
        std::printf("expert parallel: %d ranks; per decoded token %.0f messages, %s exchanged in %.0f rounds, rank 0 "
                    "waited %.2f ms of %.2f;\n"
                    "          resident per rank: %s; projected one rank per machine over 25 Gb/s (50 us per round "
                    "trip): %.2f tok/s\n",
                    ranks, parallel["messages_per_token"].get<double>(),
                    human_bytes(parallel["exchange_bytes_per_token"].get<double>()).c_str(),
                    parallel["exchange_rounds_per_token"].get<double>(),
                    1e3 * parallel["exchange_wait_s_per_token"].get<double>(), 1e3 / g.median, resident.c_str(),
                    parallel["projected_decode_tok_s_25gbps"].get<double>());
      }
    }
    exit_code = 0;
  });
}

}  // namespace qnext::cli
