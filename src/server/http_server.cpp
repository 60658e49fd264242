#include "server/http_server.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "server/metrics.h"
#include "server/openai_response.h"
#include "server/props.h"
#include "server/sse.h"
#include "server/web_assets.h"

namespace qnext::server {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kWaitMs = 50;  // how often a waiting response checks its client is still there

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void set_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump_json(body), "application/json");
}

EngineSnapshot snapshot(const Engine& engine) {
  const EngineStats& s = engine.stats();
  EngineSnapshot e;
  e.prompt_tokens = s.prompt_tokens;
  e.completion_tokens = s.completion_tokens;
  e.prefilled_tokens = s.prefilled_tokens;
  e.cache_hits = s.cache_hits;
  e.mtp_steps = s.mtp_steps;
  e.mtp_proposed = s.mtp_proposed;
  e.mtp_accepted = s.mtp_accepted;
  e.cache_misses = s.cache_misses;
  e.cached_tokens = s.cached_tokens;
  e.steps = s.steps;
  e.requests_finished = s.requests_finished;
  e.requests_cancelled = s.requests_cancelled;
  e.queued = s.queued;
  e.running = s.running;
  e.decode_tok_s = s.decode_tok_s;
  e.cache_bytes = engine.cache().bytes();
  e.cache_entries = engine.cache().entries();
  e.cache_budget = engine.cache().budget();
  e.cache_evictions = engine.cache().evictions();
  e.parallel = engine.options().parallel;
  e.ctx = engine.ctx();
  return e;
}

}  // namespace

struct HttpServer::Impl {
  Engine& engine;
  ApiContext api;
  ServerOptions opt;
  httplib::Server svr;
  ServerMetrics metrics;
  std::atomic<bool> stopping{false};
  std::mutex stop_mu;
  bool svr_stopped = false;  // httplib's stop() must run once, and only while it listens
  int64_t created = std::time(nullptr);
  json props;  // GET /props: fixed for the server's life

  Impl(Engine& e, ApiContext a, ServerOptions o)
      : engine(e), api(std::move(a)), opt(std::move(o)), props(props_json(api, !opt.api_key.empty())) {}

  // One request's end: counted for /metrics and logged on stderr.
  void finish_request(const httplib::Request& req, int status, Clock::time_point t0, const std::string& extra = "") {
    metrics.count_request(status);
    std::fprintf(stderr, "%s %s %d %.3fs%s%s\n", req.method.c_str(), req.path.c_str(), status, seconds_since(t0),
                 extra.empty() ? "" : " ", extra.c_str());
  }

  void reply_error(const httplib::Request& req, httplib::Response& res, const ApiError& e, Clock::time_point t0) {
    set_json(res, e.status, error_json(e));
    finish_request(req, e.status, t0, e.message.size() > 200 ? e.message.substr(0, 200) + "..." : e.message);
  }

  bool authorized(const httplib::Request& req) const {
    return opt.api_key.empty() || req.get_header_value("Authorization") == "Bearer " + opt.api_key;
  }

  // Wraps a route: auth and body limit first. The handler returns true when it answered and wants
  // the answer logged here; false when it was logged already (reply_error) or a content provider
  // answers later (its releaser logs).
  template <typename F>
  httplib::Server::Handler route(F handler, bool open = false) {
    return [this, handler, open](const httplib::Request& req, httplib::Response& res) {
      const auto t0 = Clock::now();
      if (!open && !authorized(req)) {
        return reply_error(req, res,
                           ApiError{401, "invalid or missing API key (Authorization: Bearer KEY)",
                                    "invalid_request_error", "", "invalid_api_key"},
                           t0);
      }
      if (req.body.size() > opt.max_body) return reply_error(req, res, too_large(), t0);
      if (handler(req, res, t0)) {
        if (res.status == -1) res.status = 200;  // httplib's "not set yet"
        finish_request(req, res.status, t0);
      }
    };
  }

  ApiError too_large() const {
    return ApiError{413, "request body is larger than " + std::to_string(opt.max_body) + " bytes (--max-body)",
                    "invalid_request_error", "", "payload_too_large"};
  }

  json model_json() const {
    return json{{"id", api.model_id}, {"object", "model"}, {"created", created}, {"owned_by", "qnext"}};
  }

  // A generation in flight, shared by the content provider and its releaser.
  template <typename Resp>
  struct Job {
    std::shared_ptr<RequestHandle> handle;
    Resp resp;
    bool stream = false;
    bool finished = false;  // everything was written
    Clock::time_point t0;
    int prompt_tokens = 0;  // for the log when no final event came
  };

  // Submits and answers through a chunked content provider (for whole responses too, so that a
  // client that goes away while waiting cancels its sequence).
  template <typename Resp>
  bool serve_generation(const httplib::Request& req, httplib::Response& res, GenRequest gen, bool stream, Resp resp,
                        Clock::time_point t0) {
    const int prompt_tokens = int(gen.prompt.size());
    auto sub = engine.submit(std::move(gen));
    if (!sub) {
      if (engine.queue_full()) {
        res.set_header("Retry-After", "1");
        reply_error(req, res, ApiError{503, "the server is busy (request queue full); retry later", "server_error", "",
                                       "queue_full"},
                    t0);
      } else {
        reply_error(req, res, ApiError{400, sub.error(), "invalid_request_error", "", ""}, t0);
      }
      return false;
    }
    auto job = std::make_shared<Job<Resp>>(
        Job<Resp>{std::move(sub.value()), std::move(resp), stream, false, t0, prompt_tokens});
    if (stream) {
      res.set_header("Cache-Control", "no-cache");
      res.set_header("X-Accel-Buffering", "no");
    }
    res.status = 200;
    res.set_chunked_content_provider(
        stream ? "text/event-stream" : "application/json",
        [this, job](size_t, httplib::DataSink& sink) { return pump(*job, sink); },
        [this, job, method = req.method, path = req.path](bool) {
          // Runs when the response is destroyed, however it ended: a sequence never outlives its client.
          if (!job->finished) job->handle->cancel();
          log_generation(method, path, *job);
        });
    return false;
  }

  // One provider call: waits briefly for events and writes what they produce. False ends the
  // response (client gone, server stopping); the releaser then cancels the request.
  template <typename Resp>
  bool pump(Job<Resp>& job, httplib::DataSink& sink) {
    auto fail = [&] {
      job.handle->cancel();
      return false;
    };
    if (stopping) return fail();
    std::string out;
    if (job.stream)
      for (const auto& c : job.resp.start()) out += sse_json(c);
    std::vector<GenEvent> events;
    job.handle->wait(events, kWaitMs);
    if (!sink.is_writable()) return fail();
    for (const auto& e : events) {
      if (job.stream) {
        for (const auto& c : job.resp.stream_event(e)) out += sse_json(c);
      } else {
        job.resp.add(e);
      }
      if (job.resp.done()) break;
    }
    if (job.resp.done()) {
      // A whole response's status (200) is already sent; an engine failure is told in the body.
      out += job.stream ? sse_done() : dump_json(job.resp.failed() ? error_json(job.resp.error()) : job.resp.body());
    }
    if (!out.empty() && !sink.write(out.data(), out.size())) return fail();
    if (job.resp.done()) {
      job.finished = true;
      sink.done();
    }
    return true;
  }

  template <typename Resp>
  void log_generation(const std::string& method, const std::string& path, const Job<Resp>& job) {
    const GenEvent& last = job.resp.last();
    metrics.count_request(200);
    char buf[256];
    std::snprintf(buf, sizeof buf, "prompt=%d cached=%d completion=%d queue=%.3fs prefill=%.3fs decode=%.3fs%s%s",
                  last.done ? last.prompt_tokens : job.prompt_tokens, last.cached_tokens, last.completion_tokens, last.queue_s, last.prefill_s,
                  last.decode_s, job.stream ? " stream" : "",
                  job.finished ? (job.resp.failed() ? " (engine error)" : "")
                               : stopping ? " (server stopping: cancelled)" : " (client gone: cancelled)");
    std::fprintf(stderr, "%s %s 200 %.3fs %s\n", method.c_str(), path.c_str(), seconds_since(job.t0), buf);
  }

  // One file of the chat page. Sent through a content provider: httplib would compress a body set
  // with set_content again, on top of the gzip copy.
  static void serve_asset(const WebAsset& a, const httplib::Request& req, httplib::Response& res) {
    WebReply r = web_reply(a, req.get_header_value("Accept-Encoding"), req.get_header_value("If-None-Match"));
    for (auto& [k, v] : r.headers) res.set_header(k, v);
    res.status = r.status;
    if (r.status != 200) return;
    res.set_content_provider(r.body.size(), std::string(a.content_type),
                             [body = r.body](size_t offset, size_t length, httplib::DataSink& sink) {
                               return sink.write(body.data() + offset, std::min(length, body.size() - offset));
                             });
  }

  static std::string regex_escaped(std::string_view path) {
    std::string out;
    for (char c : path) {
      if (std::string_view(".^$|()[]{}*+?\\").find(c) != std::string_view::npos) out += '\\';
      out += c;
    }
    return out;
  }

  bool chat(const httplib::Request& req, httplib::Response& res, Clock::time_point t0) {
    auto r = parse_chat_request(req.body, api);
    if (!r) return reply_error(req, res, r.error(), t0), false;
    ChatRequest& c = r.value();
    ChatResponseOptions o{c.include_usage, c.logprobs, c.top_logprobs, c.parse_tools, c.reasoning_open};
    ChatResponse resp(api.tok, ResponseMeta{random_id("chatcmpl-"), std::time(nullptr), api.model_id}, o);
    return serve_generation(req, res, std::move(c.gen), c.stream, std::move(resp), t0);
  }

  bool completions(const httplib::Request& req, httplib::Response& res, Clock::time_point t0) {
    auto r = parse_completion_request(req.body, api);
    if (!r) return reply_error(req, res, r.error(), t0), false;
    CompletionRequest& c = r.value();
    CompletionResponseOptions o{c.include_usage, c.echo, c.logprobs, c.gen.prompt, c.prompt_text};
    CompletionResponse resp(api.tok, ResponseMeta{random_id("cmpl-"), std::time(nullptr), api.model_id}, std::move(o));
    return serve_generation(req, res, std::move(c.gen), c.stream, std::move(resp), t0);
  }

  void install_routes() {
    svr.set_payload_max_length(opt.max_body);
    // An idle keep-alive connection is only seen to close after this long, and httplib's stop()
    // waits for it: short, so SIGTERM stops the server within about a second.
    svr.set_keep_alive_timeout(1);
    const int threads = opt.threads > 0 ? opt.threads
                                        : std::clamp(engine.options().parallel + engine.options().queue + 8, 8, 1024);
    svr.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };

    svr.Get("/health", route([](auto&, auto& res, auto) { return set_json(res, 200, json{{"status", "ok"}}), true; },
                             /*open=*/true));
    // Open: the page reads it to learn whether to ask for the key.
    svr.Get("/props", route([this](auto&, auto& res, auto) { return set_json(res, 200, props), true; }, /*open=*/true));
    if (opt.webui) {
      for (const WebAsset& a : web_assets()) {
        auto handler = route([&a](const httplib::Request& req, httplib::Response& res,
                                  auto) { return serve_asset(a, req, res), true; },
                             /*open=*/true);
        svr.Get(regex_escaped(a.path), handler);
        if (a.path == "/index.html") svr.Get("/", handler);
      }
    }
    svr.Get("/v1/models", route([this](auto&, auto& res, auto) {
              return set_json(res, 200, json{{"object", "list"}, {"data", json::array({model_json()})}}), true;
            }));
    svr.Get(R"(/v1/models/(.+))", route([this](const httplib::Request& req, httplib::Response& res, Clock::time_point t0) {
              if (req.matches[1] == api.model_id) return set_json(res, 200, model_json()), true;
              reply_error(req, res,
                          ApiError{404, "the model '" + std::string(req.matches[1]) + "' does not exist",
                                   "invalid_request_error", "model", "model_not_found"},
                          t0);
              return false;
            }));
    svr.Get("/metrics", route([this](auto&, auto& res, auto) {
              res.set_content(render_metrics(metrics.requests_by_status(), snapshot(engine)),
                              "text/plain; version=0.0.4");
              return true;
            }));
    svr.Post("/v1/chat/completions", route([this](const httplib::Request& req, httplib::Response& res,
                                                  Clock::time_point t0) { return chat(req, res, t0); }));
    svr.Post("/v1/completions", route([this](const httplib::Request& req, httplib::Response& res,
                                             Clock::time_point t0) { return completions(req, res, t0); }));

    // Errors httplib answers itself (unknown route 404, body over the limit 413, bad request line
    // 400) reach here with an empty body; our own error responses already have theirs.
    svr.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      const auto t0 = Clock::now();
      ApiError e{res.status, "HTTP error " + std::to_string(res.status), "invalid_request_error", "", ""};
      if (res.status == 404) {
        e.message = "unknown route: " + req.method + " " + req.path;
        e.code = "not_found";
      } else if (res.status == 413) {
        e = too_large();
      }
      reply_error(req, res, e, t0);
      return httplib::Server::HandlerResponse::Handled;
    }));
    svr.set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "internal error";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& ex) {
        what = std::string("internal error: ") + ex.what();
      } catch (...) {
      }
      reply_error(req, res, ApiError{500, what, "server_error", "", ""}, Clock::now());
    });
  }
};

HttpServer::HttpServer(Engine& engine, ApiContext api, ServerOptions opt)
    : impl_(std::make_unique<Impl>(engine, std::move(api), std::move(opt))) {
  impl_->install_routes();
}

HttpServer::~HttpServer() { stop(); }

Result<int> HttpServer::bind() {
  const auto& o = impl_->opt;
  int port = o.port;
  if (port == 0) {
    port = impl_->svr.bind_to_any_port(o.host);
    if (port < 0) return err("cannot bind " + o.host + " to a free port");
  } else if (!impl_->svr.bind_to_port(o.host, port)) {
    return err("cannot bind " + o.host + ":" + std::to_string(port) + " (in use, or not an address of this machine?)");
  }
  return port;
}

void HttpServer::run() {
  if (!impl_->stopping) impl_->svr.listen_after_bind();
}

void HttpServer::stop() {
  impl_->stopping = true;
  std::lock_guard lock(impl_->stop_mu);
  if (!impl_->svr_stopped && impl_->svr.is_running()) {
    impl_->svr.stop();
    impl_->svr_stopped = true;
  }
}

}  // namespace qnext::server
