// `qnext quantize`: write an 8- or 4-bit copy of a checkpoint (or of a GGUF file) that loads with --model.
#include <chrono>
#include <cmath>
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/thread_pool.h"
#include "io/gguf.h"
#include "model/publish.h"
#include "model/quantize.h"

namespace qnext::cli {

void register_quantize(CLI::App& app, int& exit_code) {
  struct Opts {
    std::string model, type, out;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("quantize", "Write a quantized copy of a checkpoint (q8, q4, q4-mixed)");
  cmd->add_option("--model,-m", o->model,
                  "Source model: a Hugging Face checkpoint directory, or a llama.cpp .gguf file (q8, q4, q4-mixed)")
      ->required();
  cmd->add_option("--type", o->type,
                  "q8 | q4 | q4-mixed; or fp8 | w4a16: the published layouts (block FP8, compressed-tensors int4)")
      ->required();
  cmd->add_option("--out,-o", o->out, "Output directory")->required();
  cmd->add_option("--threads,-t", o->threads, "Threads (default: all cores)");
  cmd->callback([o, &exit_code] {
    exit_code = 1;
    const bool gguf = is_gguf_path(o->model);
    if (auto layout = parse_published_layout(o->type)) {
      if (gguf) {  // their writer reads float Hugging Face checkpoints
        std::fprintf(stderr, "error: --type %s takes a Hugging Face checkpoint; from a GGUF file use q8, q4 or q4-mixed\n",
                     o->type.c_str());
        return;
      }
      if (o->threads > 0) set_num_threads(o->threads);
      ProgressBar bar;
      Status st = write_published_layout(o->model, layout.value(), o->out,
                                         [&](size_t done, size_t total) { bar.update(done, total); });
      bar.finish();
      if (!st) {
        std::fprintf(stderr, "error: %s\n", st.error().c_str());
        return;
      }
      std::fprintf(stderr, "wrote %s (%s)\n", o->out.c_str(), o->type.c_str());
      exit_code = 0;
      return;
    }
    auto recipe = parse_recipe(o->type);
    if (!recipe || recipe.value() == QuantRecipe::None) {
      std::fprintf(stderr, "error: --type: %s\n", recipe ? "expected q8, q4 or q4-mixed" : recipe.error().c_str());
      return;
    }
    if (o->threads > 0) set_num_threads(o->threads);
    const auto start = std::chrono::steady_clock::now();
    ProgressBar bar;
    const auto progress = [&](size_t done, size_t total) { bar.update(done, total); };
    Status st = gguf ? quantize_gguf(o->model, recipe.value(), o->out, progress)
                     : quantize_checkpoint(o->model, recipe.value(), o->out, progress);
    bar.finish();
    if (!st) {
      std::fprintf(stderr, "error: %s\n", st.error().c_str());
      return;
    }
    std::fprintf(stderr, "wrote %s (%s) in %.1f s\n", o->out.c_str(), o->type.c_str(),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    exit_code = 0;
  });
}

}  // namespace qnext::cli
