// `qnext bench-serve`: what continuous batching and the state cache buy, measured on the serving
// engine itself (no HTTP): total decode tok/s of N concurrent streams against one stream, and
// the time to first token of a request whose prefix is cached against the same request cold.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.h"
#include "cli/common.h"
#include "runtime/engine.h"

namespace qnext::cli {

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

struct StreamTimes {
  Clock::time_point first, done;
  std::vector<Clock::time_point> tokens;  // arrival of each token
  GenEvent last;
};

// Reads every handle's events until all are done, stamping each token's arrival.
std::vector<StreamTimes> drain_all(std::vector<std::shared_ptr<RequestHandle>>& hs) {
  std::vector<StreamTimes> out(hs.size());
  std::vector<bool> finished(hs.size(), false);
  size_t left = hs.size();
  std::vector<GenEvent> events;
  while (left > 0)
    for (size_t i = 0; i < hs.size(); ++i) {
      if (finished[i]) continue;
      events.clear();
      if (!hs[i]->wait(events, 1)) continue;
      const auto now = Clock::now();
      for (auto& e : events) {
        for (size_t t = 0; t < e.tokens.size(); ++t) {
          if (out[i].tokens.empty()) out[i].first = now;
          out[i].tokens.push_back(now);
        }
        if (e.done) {
          out[i].done = now;
          out[i].last = e;
          finished[i] = true;
          --left;
        }
      }
    }
  return out;
}

// Tokens of all streams per second while every stream was decoding: from the last stream's
// first token to the first stream's end.
double steady_decode_rate(const std::vector<StreamTimes>& s) {
  Clock::time_point from = s[0].first, to = s[0].done;
  for (const auto& x : s) {
    from = std::max(from, x.first);
    to = std::min(to, x.done);
  }
  const double secs = std::chrono::duration<double>(to - from).count();
  if (secs <= 0) return 0;
  size_t n = 0;
  for (const auto& x : s)
    for (auto t : x.tokens) n += t > from && t <= to;
  return double(n) / secs;
}

}  // namespace

void register_bench_serve(CLI::App& app, int& exit_code) {
  struct Opts {
    ModelFlags model;
    std::string tokenizer;
    int streams = 8, gen = 64, repeats = 3, prefix = 2000, prompt = 32;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("bench-serve", "Serving engine: N streams' decode tok/s vs one, cached-prefix TTFT");
  o->model.threads = 2;
  o->model.add_to(cmd);
  cmd->add_option("--tokenizer", o->tokenizer, "Directory with tokenizer.json (default: the model's)");
  cmd->add_option("--streams", o->streams, "Concurrent streams")->check(CLI::Range(1, 256));
  cmd->add_option("-n,--gen", o->gen, "Tokens each stream decodes")->check(CLI::Range(2, 1 << 16));
  cmd->add_option("-p,--prompt", o->prompt, "Prompt tokens of each stream")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--prefix", o->prefix, "Tokens of the shared prefix in the cache test")->check(CLI::Range(64, 1 << 20));
  cmd->add_option("-r,--repeats", o->repeats, "Repeats (medians reported)")->check(CLI::Range(1, 100));
  cmd->add_flag("--json", o->json, "Print one JSON object");
  cmd->callback([o, &exit_code] {
    exit_code = 1;
    auto model = o->model.load_or_report();
    if (!model) return;
    model->weights().prefault();
    auto tok = Tokenizer::load(o->tokenizer.empty() ? o->model.dir : o->tokenizer);
    if (!tok) {
      std::fprintf(stderr, "error: %s (pass --tokenizer DIR)\n", tok.error().c_str());
      return;
    }
    const int vocab = std::min(model->config().vocab_size, 151643);
    std::mt19937 rng(42);
    auto random_ids = [&](int n) {
      std::vector<int32_t> ids(static_cast<size_t>(n));
      for (auto& id : ids) id = int32_t(rng() % uint32_t(vocab));
      return ids;
    };
    auto request = [&](std::vector<int32_t> prompt, int max_tokens) {
      GenRequest r;
      r.prompt = std::move(prompt);
      r.max_tokens = max_tokens;
      r.sampling.temperature = 0;
      r.ignore_eos = true;
      return r;
    };

    EngineOptions eo;
    eo.parallel = o->streams;
    Engine engine(*model, tok.value(), {}, eo);
    auto run_streams = [&](int n) {
      std::vector<std::shared_ptr<RequestHandle>> hs;
      for (int i = 0; i < n; ++i) hs.push_back(engine.submit(request(random_ids(o->prompt), o->gen)).value());
      return steady_decode_rate(drain_all(hs));
    };
    std::vector<double> one, many, cold_ttft, warm_ttft;
    for (int r = 0; r < o->repeats; ++r) {  // side by side in each repeat
      one.push_back(run_streams(1));
      many.push_back(run_streams(o->streams));
      // Two requests share `prefix` tokens (say a long system prompt) and differ after it; the
      // first asks for a snapshot where the shared part ends, as the server does at the start of
      // a conversation's newest message.
      auto shared = random_ids(o->prefix);
      auto a = shared, b = shared;
      for (int32_t id : random_ids(24)) a.push_back(id);
      for (int32_t id : random_ids(24)) b.push_back(id);
      auto ra = request(a, 1);
      ra.snapshot_at = {o->prefix};
      std::vector<std::shared_ptr<RequestHandle>> h1{engine.submit(ra).value()};
      const auto first = drain_all(h1)[0].last;
      std::vector<std::shared_ptr<RequestHandle>> h2{engine.submit(request(b, 1)).value()};
      const auto second = drain_all(h2)[0].last;
      if (second.cached_tokens != o->prefix)
        std::fprintf(stderr, "warning: the second request restored %d tokens, not %d\n", second.cached_tokens, o->prefix);
      cold_ttft.push_back(first.queue_s + first.prefill_s);
      warm_ttft.push_back(second.queue_s + second.prefill_s);
    }
    std::vector<double> batch_ratio, ttft_ratio;
    for (int r = 0; r < o->repeats; ++r) {
      batch_ratio.push_back(many[size_t(r)] / one[size_t(r)]);
      ttft_ratio.push_back(cold_ttft[size_t(r)] / warm_ttft[size_t(r)]);
    }
    nlohmann::ordered_json j;
    j["model"] = o->model.dir;
    j["threads"] = o->model.threads;
    j["streams"] = o->streams;
    j["decode_tok_s_1"] = median(one);
    j["decode_tok_s_n"] = median(many);
    j["batch_speedup"] = median(batch_ratio);
    j["prefix_tokens"] = o->prefix;
    j["ttft_cold_s"] = median(cold_ttft);
    j["ttft_cached_s"] = median(warm_ttft);
    j["ttft_speedup"] = median(ttft_ratio);
    if (o->json) {
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("decode, 1 stream:   %8.1f tok/s\n", median(one));
      std::printf("decode, %d streams: %8.1f tok/s total  (x%.2f, median of per-repeat ratios)\n", o->streams,
                  median(many), median(batch_ratio));
      std::printf("first token, %d-token prefix cold: %.3f s, cached: %.3f s  (x%.1f)\n", o->prefix,
                  median(cold_ttft), median(warm_ttft), median(ttft_ratio));
    }
    exit_code = 0;
  });
}

}  // namespace qnext::cli
