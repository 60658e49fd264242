// `qnext serve`: an OpenAI-compatible HTTP server (chat completions, completions, models, health,
// metrics) over the continuous-batching engine, and a chat page at / (web/).
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/sampling_flags.h"
#include "runtime/engine.h"
#include "server/http_server.h"

namespace qnext::cli {

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_stop_signal(int) {
  if (g_stop.exchange(true)) std::_Exit(130);  // a second Ctrl-C: stop waiting for in-flight requests
}

// The served model's name: the directory's last component, or the GGUF file's name without .gguf
// (a split set's without its -00001-of-0000N part).
std::string model_name(const std::string& dir) {
  std::filesystem::path p(dir);
  while (p.has_relative_path() && p.filename().empty()) p = p.parent_path();  // "models/x/" -> "models/x"
  std::string name = p.extension() == ".gguf" ? p.stem().string() : p.filename().string();
  if (p.extension() == ".gguf" && name.size() > 15 && name.compare(name.size() - 15, 4, "-000") == 0 &&
      name.compare(name.size() - 9, 4, "-of-") == 0)
    name.resize(name.size() - 15);
  return name.empty() || name == "." ? "qnext" : name;
}

}  // namespace

void register_serve(CLI::App& app, int& exit_code) {
  struct Opts {
    ModelFlags model;
    server::ServerOptions server;
    EngineOptions engine;
    int cache_mb = 1024;
    std::string alias;
    std::string mtp;  // "", "auto" or 1..4
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (/v1/chat/completions, /v1/completions, ...)");
  o->model.add_to(cmd, "Model directory (with tokenizer and chat template)");
  cmd->add_option("--host", o->server.host, "Address to listen on (loopback by default)");
  cmd->add_option("--port", o->server.port, "Port (0: any free port; the one chosen is printed)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--parallel", o->engine.parallel, "Most sequences decoded at once")->check(CLI::Range(1, 1024));
  cmd->add_option("--batch-tokens", o->engine.batch_tokens, "Most tokens per engine step (decode + prompt chunks)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--ctx", o->engine.ctx, "Most positions per sequence, prompt + completion (0: the model's)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--cache-mb", o->cache_mb, "Prompt state cache budget in MiB (0: off)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--queue", o->engine.queue, "Most requests waiting for a slot; beyond: 503")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--api-key", o->server.api_key,
                  "Require 'Authorization: Bearer KEY' (all routes but /health, /props and the chat page)");
  cmd->add_flag("!--no-webui", o->server.webui, "Do not serve the chat page at /");
  cmd->add_option("--alias", o->alias, "Model name in responses and /v1/models (default: the directory's name)");
  cmd->add_option("--max-body", o->server.max_body, "Largest request body in bytes (beyond: 413)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--mtp", o->mtp,
                  "MTP speculative decoding while one request runs alone: K drafts per step (1-4) or auto; same "
                  "output as without it")
      ->check(CLI::IsMember({"auto", "1", "2", "3", "4"}));
  cmd->callback([o, &exit_code] {
    exit_code = 1;
    auto model = o->model.load_or_report();
    if (!model) return;
    if (!o->mtp.empty()) {
      if (!model->has_mtp()) {
        std::fprintf(stderr, "error: the model has no MTP weights (mtp.*): --mtp needs them\n");
        return;
      }
      o->engine.mtp = o->mtp == "auto" ? 0 : std::stoi(o->mtp);
    }
    auto setup = load_text_setup_or_report(*model);
    if (!setup) return;

    server::ApiContext api{setup->tok, std::nullopt, "", setup->gen.sampling, 0, model->config().vocab_size,
                           o->alias.empty() ? model_name(o->model.dir) : o->alias, {}, {}};
    if (auto tpl = ChatTemplate::load(o->model.dir)) {
      api.tpl = std::move(tpl.value());
    } else {
      api.tpl_error = tpl.error();
      std::fprintf(stderr, "warning: no chat template (%s): /v1/chat/completions will answer 400\n",
                   tpl.error().c_str());
    }

    o->engine.cache_bytes = size_t(o->cache_mb) << 20;
    Engine engine(*model, setup->tok, setup->eos, o->engine);
    api.ctx = engine.ctx();
    api.cached_prefix = [&engine](std::string_view text) { return engine.cache().longest_text_prefix(text); };
    api.grammars = std::make_shared<grammar::GrammarCache>(grammar::GrammarVocab::from_tokenizer(setup->tok, setup->eos));
    server::HttpServer http(engine, std::move(api), o->server);
    auto port = http.bind();
    if (!port) {
      std::fprintf(stderr, "error: %s\n", port.error().c_str());
      return;
    }

    std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not kill the server
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
    // Signal handlers may not call into httplib; this thread does (repeatedly: a stop() that lands
    // before the server listens would be lost).
    std::atomic<bool> done{false};
    std::thread watcher([&] {
      while (!done) {
        if (g_stop) http.stop();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });

    std::fprintf(stderr, "model %s: ctx %d, parallel %d, batch %d tokens, queue %d, cache %d MiB, mtp %s\n",
                 o->alias.empty() ? model_name(o->model.dir).c_str() : o->alias.c_str(), engine.ctx(),
                 engine.options().parallel, engine.options().batch_tokens, engine.options().queue, o->cache_mb,
                 o->mtp.empty() ? "off" : o->mtp.c_str());
    const std::string& h = o->server.host;
    const std::string host = h.find(':') != std::string::npos ? "[" + h + "]" : h;  // IPv6 literal
    std::fprintf(stderr, "listening on http://%s:%d\n", host.c_str(), port.value());
    if (o->server.webui) std::fprintf(stderr, "chat page: http://%s:%d/\n", host.c_str(), port.value());
    std::fflush(stderr);
    http.run();
    done = true;
    watcher.join();
    std::fprintf(stderr, "server stopped\n");
    exit_code = 0;
  });
}

}  // namespace qnext::cli
