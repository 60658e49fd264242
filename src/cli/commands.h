// Each subcommand of `qnext` lives in its own cmd_*.cpp and registers itself here.
#pragma once
#include <CLI/CLI.hpp>

namespace qnext::cli {

// Adds the subcommand and its options to app; the callback runs it and sets the exit code.
void register_info(CLI::App& app, int& exit_code);
void register_logits(CLI::App& app, int& exit_code);
void register_generate(CLI::App& app, int& exit_code);
void register_synth(CLI::App& app, int& exit_code);
void register_bench(CLI::App& app, int& exit_code);
void register_quantize(CLI::App& app, int& exit_code);
void register_kld(CLI::App& app, int& exit_code);
void register_template(CLI::App& app, int& exit_code);
void register_run(CLI::App& app, int& exit_code);
void register_chat(CLI::App& app, int& exit_code);
void register_tokenize(CLI::App& app, int& exit_code);
void register_serve(CLI::App& app, int& exit_code);
void register_bench_serve(CLI::App& app, int& exit_code);

}  // namespace qnext::cli
