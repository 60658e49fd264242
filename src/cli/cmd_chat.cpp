// `qnext chat`: interactive multi-turn chat on stdin/stdout with the model's chat template.
// The conversation's state is kept between turns, so each turn prefills only the new tokens.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/constraint_flags.h"
#include "cli/sampling_flags.h"
#include "runtime/chat_session.h"

namespace qnext::cli {

namespace {

// Streams one answer: reasoning dimmed (or hidden), content plain, tool calls as a note.
class AnswerPrinter {
 public:
  AnswerPrinter(bool show_reasoning, bool tty) : show_(show_reasoning), tty_(tty) {}

  void operator()(const ChatOutputStream::Delta& d) {
    if (!d.reasoning.empty() && show_) {
      if (!in_reasoning_) out(tty_ ? "\x1b[2m" : "<think>\n");
      in_reasoning_ = true;
      out(d.reasoning);
    }
    if (!d.content.empty()) {
      end_reasoning();
      out(d.content);
    }
    for (const auto& call : d.tool_calls) {
      end_reasoning();
      out("\n[tool call: " + (call.ok() ? call.name + " " + call.arguments.dump() : call.error) + "]\n");
    }
    std::fflush(stdout);
  }
  void finish() {
    end_reasoning();
    out("\n");
    std::fflush(stdout);
  }

 private:
  void end_reasoning() {
    if (!in_reasoning_) return;
    out(tty_ ? "\x1b[0m\n\n" : "\n</think>\n\n");
    in_reasoning_ = false;
  }
  static void out(std::string_view s) { std::fwrite(s.data(), 1, s.size(), stdout); }

  bool show_, tty_;
  bool in_reasoning_ = false;
};

void print_stats(const ChatTurn& t) {
  const auto& g = t.gen;
  std::fprintf(stderr, "[%d prompt tokens (%d new), %.1f tok/s prefill, %zu tokens, %.1f tok/s decode%s%s]\n",
               g.prompt_tokens, g.prefilled_tokens, g.prefill_tok_s(), g.ids.size(), g.decode_tok_s(),
               t.reuse == PromptReuse::Rebuilt ? ", history re-prefilled" : "",
               g.stop == StopReason::MaxTokens ? ", cut at max tokens" : "");
}

}  // namespace

void register_chat(CLI::App& app, int& exit_code) {
  struct Opts {
    ModelFlags model;
    std::string system, thinking = "show";
    int n = 1024, cache_mb = 1024;
    SamplingFlags sampling;
    MtpFlags mtp;
    ConstraintFlags constraint;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("chat", "Interactive chat (stdin lines; /reset clears, /exit or EOF quits)");
  o->model.add_to(cmd, "Model directory (with tokenizer and chat template)");
  o->mtp.add_to(cmd);
  o->constraint.add_to(cmd);
  cmd->add_option("--system,-s", o->system, "System prompt");
  cmd->add_option("--thinking", o->thinking, "Reasoning (<think>) display")->check(CLI::IsMember({"show", "hide"}));
  cmd->add_option("-n,--n-tokens", o->n, "Most tokens per answer")->check(CLI::Range(1, 1 << 30));
  cmd->add_option("--cache-mb", o->cache_mb,
                  "State cache (MiB): a turn whose rendering drops earlier text (old <think> blocks) resumes "
                  "from the last prompt instead of re-prefilling the conversation; 0 disables");
  o->sampling.add_to(cmd);
  cmd->callback([o, &exit_code] {
    exit_code = 1;
    auto model = o->model.load_or_report();
    if (!model) return;
    auto setup = load_text_setup_or_report(*model);
    if (!setup) return;
    auto tpl = ChatTemplate::load(o->model.dir);
    if (!tpl) {
      std::fprintf(stderr, "error: %s\n", tpl.error().c_str());
      return;
    }
    Generator gen(*model, setup->tok, o->sampling.resolve(setup->gen.sampling), setup->eos);
    if (!o->constraint.apply_or_report(gen, setup->tok, setup->eos, o->mtp.on())) return;
    StateCache cache(size_t(std::max(o->cache_mb, 0)) << 20);
    if (o->cache_mb > 0) gen.set_state_cache(&cache);
    if (o->mtp.on())
      if (auto st = gen.enable_mtp(o->mtp.options()); !st) {
        std::fprintf(stderr, "error: %s\n", st.error().c_str());
        return;
      }
    ChatSession chat(gen, std::move(tpl.value()), o->system);
    GenerateOptions opt;
    opt.max_tokens = o->n;
    const bool tty_in = isatty(STDIN_FILENO), tty_out = isatty(STDOUT_FILENO);
    if (tty_in) std::fprintf(stderr, "Chatting with %s. /reset clears the conversation, /exit quits.\n", o->model.dir.c_str());
    std::string line;
    while (true) {
      if (tty_in) std::fprintf(stderr, "> ");
      if (!std::getline(std::cin, line)) break;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      if (line == "/exit") break;
      if (line == "/reset") {
        chat.reset();
        std::fprintf(stderr, "[conversation cleared]\n");
        continue;
      }
      AnswerPrinter printer(o->thinking == "show", tty_out);
      auto turn = chat.send(line, opt, [&](const ChatOutputStream::Delta& d) { printer(d); });
      printer.finish();
      if (!turn) {
        std::fprintf(stderr, "error: %s\n", turn.error().c_str());
        return;
      }
      print_stats(turn.value());
    }
    if (o->mtp.verbose && gen.speculative()) std::fprintf(stderr, "%s\n", gen.speculative()->stats().summary().c_str());
    exit_code = 0;
  });
}

}  // namespace qnext::cli
