// qnext: the command-line entry point. Subcommands live in cmd_*.cpp.
#include <cstdio>

#include "cli/commands.h"
#include "core/cpu.h"
#include "runtime/expert_parallel.h"

// Under mpirun, ranks > 0 follow only the commands that run a model (they compute a share of its
// experts, see runtime/expert_parallel.h); the rest (synth, quantize, tokenize...) rank 0 runs alone.
static bool follower_takes_part(int argc, char** argv) {
  if (argc < 2) return false;
  const std::string cmd = argv[1];
  // Every command that loads a model through load_model_or_report (cli/common.cpp): rank 0 waits there
  // for the other ranks. A command added there must be added here.
  for (const char* c : {"info", "logits", "generate", "bench", "kld", "run", "chat", "serve", "bench-serve"})
    if (cmd == c) return true;
  return false;
}

static int run(int argc, char** argv) {
  CLI::App app{"qnext: a Qwen3-Next inference engine"};
  app.require_subcommand(1);
  int exit_code = 0;
  qnext::cli::register_info(app, exit_code);
  qnext::cli::register_logits(app, exit_code);
  qnext::cli::register_generate(app, exit_code);
  qnext::cli::register_synth(app, exit_code);
  qnext::cli::register_bench(app, exit_code);
  qnext::cli::register_quantize(app, exit_code);
  qnext::cli::register_kld(app, exit_code);
  qnext::cli::register_template(app, exit_code);
  qnext::cli::register_run(app, exit_code);
  qnext::cli::register_chat(app, exit_code);
  qnext::cli::register_tokenize(app, exit_code);
  qnext::cli::register_serve(app, exit_code);
  qnext::cli::register_bench_serve(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {  // a bug or an exhausted machine: a message, not an abort
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return exit_code;
}

int main(int argc, char** argv) {
  const qnext::ParallelWorld world = qnext::parallel_init(&argc, &argv);
  if (world.follower() && !follower_takes_part(argc, argv)) {
    qnext::parallel_finalize(0);
    return 0;
  }
  (void)qnext::exact_activations();  // QNEXT_ACTIVATIONS is read now, so its notes come at start-up
  const int code = run(argc, argv);
  qnext::parallel_finalize(code);
  return code;
}
