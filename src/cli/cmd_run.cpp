// `qnext run`: streams the raw completion of a prompt (no chat template) to stdout.
#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/constraint_flags.h"
#include "cli/sampling_flags.h"

namespace qnext::cli {

void register_run(CLI::App& app, int& exit_code) {
  struct Opts {
    ModelFlags model;
    std::string prompt;
    int n = 256;
    std::vector<std::string> stops;
    bool ignore_eos = false;
    SamplingFlags sampling;
    MtpFlags mtp;
    ConstraintFlags constraint;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("run", "Complete a prompt (raw text, no chat template), streaming to stdout");
  o->model.add_to(cmd);
  cmd->add_option("--prompt,-p", o->prompt, "Prompt text")->required();
  cmd->add_option("-n,--n-tokens", o->n, "Most tokens to generate")->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--stop", o->stops, "Stop string (repeatable); not printed");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Do not stop at EOS tokens");
  o->sampling.add_to(cmd);
  o->mtp.add_to(cmd);
  o->constraint.add_to(cmd);
  cmd->callback([o, &exit_code] {
    exit_code = 1;
    auto model = o->model.load_or_report();
    if (!model) return;
    auto setup = load_text_setup_or_report(*model);
    if (!setup) return;
    Generator gen(*model, setup->tok, o->sampling.resolve(setup->gen.sampling), setup->eos);
    if (!o->constraint.apply_or_report(gen, setup->tok, setup->eos, o->mtp.on())) return;
    if (o->mtp.on())
      if (auto st = gen.enable_mtp(o->mtp.options()); !st) {
        std::fprintf(stderr, "error: %s\n", st.error().c_str());
        return;
      }
    const auto prompt = setup->tok.encode(o->prompt);
    GenerateOptions opt;
    opt.max_tokens = o->n;
    opt.stop_strings = o->stops;
    opt.ignore_eos = o->ignore_eos;
    auto r = gen.generate(prompt, opt, [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    });
    if (!r) {
      std::fprintf(stderr, "error: %s\n", r.error().c_str());
      return;
    }
    std::fputc('\n', stdout);
    std::fflush(stdout);
    std::fprintf(stderr, "[%d prompt tokens, %.2f tok/s prefill; %zu generated, %.2f tok/s decode; stop: %s]\n",
                 r->prompt_tokens, r->prefill_tok_s(), r->ids.size(), r->decode_tok_s(), stop_reason_name(r->stop));
    if (o->mtp.verbose && gen.speculative()) std::fprintf(stderr, "%s\n", gen.speculative()->stats().summary().c_str());
    exit_code = 0;
  });
}

}  // namespace qnext::cli
