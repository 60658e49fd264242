// The HTTP front of `qnext serve`: cpp-httplib routes over the OpenAI request/response builders
// and the Engine. Thin on purpose: routing, auth, body limit, logging, and pumping engine events
// to the socket (cancelling the request when the client goes away).
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "core/result.h"
#include "runtime/engine.h"
#include "server/openai_request.h"

namespace qnext::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                  // 0: any free port (bind() returns it)
  std::string api_key;              // empty: no auth; else "Authorization: Bearer KEY" on all but /health,
                                    // /props and the chat page
  size_t max_body = size_t(8) << 20;  // request bodies beyond: 413
  int threads = 0;                  // HTTP worker threads; 0: enough for every running and queued request
  bool webui = true;                // the chat page (web/) at / (--no-webui: off)
};

class HttpServer {
 public:
  HttpServer(Engine& engine, ApiContext api, ServerOptions opt);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the socket; returns the port (the chosen one for port 0).
  Result<int> bind();
  // Serves until stop(); in-flight requests are cancelled when it stops.
  void run();
  // Thread-safe and idempotent (e.g. from a signal watcher). A stop() that lands before run() starts
  // listening is missed by httplib, so such a caller repeats it until run() returns.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qnext::server
