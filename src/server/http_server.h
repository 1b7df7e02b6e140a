// The ComfyUI-compatible HTTP + WebSocket server: Boost.Beast on a pool of I/O threads, the routes of
// routes.h, WebSocket /ws and /api/ws, and the queue worker that drives the Backend.
//
//   HttpServer server(options, backend);
//   ND_RETURN_IF_ERROR(server.start());   // binds options.listen:options.port (0 = ephemeral)
//   ... server.port() ...
//   server.stop();                         // also done by the destructor
//
// Bodies larger than options.max_body_bytes get 413 with a JSON error naming the limit, before the body is
// read. With options.tls_cert_file and tls_key_file every listener speaks HTTPS and WSS only: a plain-HTTP
// request gets 400 "https_required" and the connection closes; the server keeps serving.
// Thread-safety: start/stop/port from the owning thread; state() is shareable (see ServerState).
#pragma once

#include <cstdint>
#include <memory>

#include "core/status.h"
#include "server/backend.h"
#include "server/server_state.h"

namespace netdist::server {

class HttpServer {
 public:
  // `backend` must outlive the server.
  HttpServer(ServerOptions options, Backend& backend);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds every address of options.listen (comma-separated), starts the I/O threads and the queue worker.
  // io_error naming the address when it cannot listen; invalid_argument as check_tls_files.
  Status start();
  // Stops accepting, finishes the running prompt (interrupted), closes sockets, joins threads. Idempotent.
  void stop();
  // The bound port of the first listen address (the chosen one when options.port is 0).
  uint16_t port() const;

  ServerState& state();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Loads a TLS certificate chain and its private key (PEM) as start() will. invalid_argument naming the
// file: one of the two is missing, unreadable or not PEM, the key is encrypted, or it does not match the
// certificate. Both empty = plain HTTP, ok.
Status check_tls_files(const std::string& cert_file, const std::string& key_file);

}  // namespace netdist::server
