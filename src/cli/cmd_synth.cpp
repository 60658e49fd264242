// `qnext synth`: a random-weight checkpoint in the exact Hugging Face layout, for benchmarks.
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/thread_pool.h"
#include "model/synth.h"

namespace qnext::cli {

void register_synth(CLI::App& app, int& exit_code) {
  struct Opts {
    std::string preset = "qwen3-next-80b-a3b", out;
    int layers = 0, experts = 0, threads = 0;
    uint64_t seed = 1;
    double shard_gb = 2.0;
    bool no_mtp = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("synth", "Write a random-weight Qwen3-Next checkpoint (HF layout, BF16, sharded)");
  cmd->add_option("--preset", o->preset, "qwen3-next-80b-a3b (real dims) or tiny");
  cmd->add_option("--layers", o->layers, "Number of layers (default: the preset's)");
  cmd->add_option("--experts", o->experts, "Number of routed experts (default: the preset's)");
  cmd->add_option("--seed", o->seed, "Random seed");
  cmd->add_option("--out,-o", o->out, "Output directory")->required();
  cmd->add_option("--shard-gb", o->shard_gb, "Approximate shard size in GB");
  cmd->add_flag("--no-mtp", o->no_mtp, "Leave out the mtp.* tensors");
  cmd->add_option("--threads,-t", o->threads, "Threads (default: all cores)");
  cmd->callback([o, &exit_code] {
    exit_code = 1;
    auto preset = preset_config(o->preset);
    if (!preset) {
      std::fprintf(stderr, "error: %s\n", preset.error().c_str());
      return;
    }
    Config c = preset.value();
    if (o->layers > 0) {
      c.num_layers = o->layers;
      c.layer_types.clear();
      for (int i = 0; i < c.num_layers; ++i)
        c.layer_types.push_back((i + 1) % 4 ? LayerType::LinearAttention : LayerType::FullAttention);
    }
    if (o->experts > 0) {
      c.num_experts = o->experts;
      c.num_experts_per_tok = std::min(c.num_experts_per_tok, c.num_experts);
    }
    if (o->threads > 0) set_num_threads(o->threads);
    auto start = std::chrono::steady_clock::now();
    ProgressBar bar;
    Status st = synthesize_checkpoint(c, o->seed, o->out, !o->no_mtp, size_t(o->shard_gb * 1e9),
                                      [&](size_t done, size_t total) { bar.update(done, total); });
    bar.finish();
    if (!st) {
      std::fprintf(stderr, "error: %s\n", st.error().c_str());
      return;
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "wrote %s (%d layers, %d experts) in %.1f s\n", o->out.c_str(), c.num_layers, c.num_experts, secs);
    exit_code = 0;
  });
}

}  // namespace qnext::cli
