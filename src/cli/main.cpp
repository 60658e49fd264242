// qnext: the command-line entry point. Subcommands live in cmd_*.cpp.
#include <cstdio>

#include "cli/commands.h"

int main(int argc, char** argv) {
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
