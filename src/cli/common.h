// Helpers shared by the subcommands: token-id lists, loading a model with a clear error.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "runtime/speculative.h"

#include "core/result.h"
#include "model/qwen3_next.h"

namespace qnext::cli {

// "1,2,3" -> ids
Result<std::vector<int32_t>> parse_ids(const std::string& text);
// A JSON list of ids in a file.
Result<std::vector<int32_t>> read_ids_file(const std::string& path);
// Checks every id is in [0, vocab).
Status check_ids(const std::vector<int32_t>& ids, int vocab);

// Sets the thread count (0 = all cores) and loads the model; prints the error and returns null on failure.
// quantize: "" or q8 / q4 / q4-mixed, applied while loading; kv_type: "f32", "f16" or "q8_0", the KV cache's
// element type in the states the model makes.
// mem_budget: "auto" (what the machine has available, less a margin), GB, or "off"; a model larger
// than the budget keeps its routed experts in an expert cache (runtime/expert_cache.h).
// expert_prefetch: with an expert cache, read the next layer's predicted experts ahead.
// mmap: "auto" copies the files into memory on huge pages (Weights::copy_into_memory) when they fit the
// memory budget, with no expert cache, no --quantize and no expert parallelism, and maps them otherwise;
// "on" always maps them (as llama.cpp's --mmap); "off" always copies them (--no-mmap).
std::unique_ptr<Model> load_model_or_report(const std::string& dir, int threads, const std::string& quantize = "",
                                            const std::string& kv_type = "f32", const std::string& mem_budget = "auto",
                                            bool expert_prefetch = false, const std::string& mmap = "auto");

// The options every command that runs a model shares: --model, --threads, --quantize, --kv-type,
// --mem-budget.
struct ModelFlags {
  std::string dir, quantize, kv_type = "f32", mem_budget = "auto";
  bool expert_prefetch = false;
  bool mmap = false, no_mmap = false;  // neither: "auto" (see load_model_or_report)
  int threads = 0;  // 0: all cores

  void add_to(CLI::App* cmd, const std::string& model_help = "Model directory");
  std::unique_ptr<Model> load_or_report() const {
    return load_model_or_report(dir, threads, quantize, kv_type, mem_budget, expert_prefetch,
                                mmap ? "on" : no_mmap ? "off" : "auto");
  }
};

// `--mtp K|auto` (MTP speculative decoding; off when absent) and `--verbose` (its stats).
struct MtpFlags {
  std::string mtp;  // "", "auto" or 1..4
  bool verbose = false;

  void add_to(CLI::App* cmd);
  bool on() const { return !mtp.empty(); }
  SpecOptions options() const;  // k = 0 for auto
};

std::string human_bytes(double bytes);

// A progress bar on stderr for long writes: redrawn in place on a terminal, a line per 10% otherwise
// (so logs stay readable). Call update(done, total) as often as you like; finish() ends the line.
class ProgressBar {
 public:
  void update(size_t done, size_t total);
  void finish();

 private:
  int last_pct_ = -1;
};

}  // namespace qnext::cli
