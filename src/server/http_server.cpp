#include "server/http_server.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <condition_variable>
#include <mutex>
#include <type_traits>
#include <thread>
#include <vector>

#include "core/log.h"
#include "server/auth.h"
#include "server/dashboard.h"
#include "server/beast_session.h"
#include "server/queue_worker.h"
#include "server/routes.h"

namespace netdist::server {

namespace {

// The current time as HTTP's IMF-fixdate ("Mon, 07 Dec 2026 22:30:00 GMT"), for the Date header every answer
// carries (RFC 9110 §6.6.1; clients and `netdist doctor` read the clock skew from it).
std::string http_date_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[64];
  const std::size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf, n);
}

using tcp = net::ip::tcp;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The reason of the last OpenSSL error on this thread's queue (which is cleared).
std::string openssl_reason() {
  const unsigned long e = ERR_peek_last_error();
  const char* reason = e ? ERR_reason_error_string(e) : nullptr;
  ERR_clear_error();
  return reason ? reason : "unknown OpenSSL error";
}

// Opens `path` for reading; invalid_argument naming the file and the system's reason otherwise.
Result<std::FILE*> open_pem(const std::string& path, const char* what) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return Status::invalid_argument(std::string("cannot read TLS ") + what + " file '" + path + "': " + std::strerror(errno));
  return f;
}

// A password callback that refuses: an encrypted key fails to load instead of prompting on the terminal.
int no_password(char*, int, int, void*) { return 0; }

Result<std::unique_ptr<net::ssl::context>> make_server_tls(const std::string& cert_file, const std::string& key_file) {
  if (cert_file.empty() && key_file.empty()) return std::unique_ptr<net::ssl::context>();
  if (key_file.empty()) return Status::invalid_argument("--tls-cert " + cert_file + " needs --tls-key (the certificate's private key file)");
  if (cert_file.empty()) return Status::invalid_argument("--tls-key " + key_file + " needs --tls-cert (the certificate chain file)");
  ND_ASSIGN_OR_RETURN(std::FILE* cf, open_pem(cert_file, "certificate"));
  std::fclose(cf);
  ND_ASSIGN_OR_RETURN(std::FILE* kf, open_pem(key_file, "key"));
  EVP_PKEY* key = PEM_read_PrivateKey(kf, nullptr, no_password, nullptr);
  std::fclose(kf);
  if (!key) {
    return Status::invalid_argument("TLS key file '" + key_file + "' holds no unencrypted PEM private key (OpenSSL: " +
                                    openssl_reason() + ")");
  }
  auto ctx = std::make_unique<net::ssl::context>(net::ssl::context::tls_server);
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                   net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1);
  SSL_CTX* native = ctx->native_handle();
  if (SSL_CTX_use_certificate_chain_file(native, cert_file.c_str()) != 1) {
    EVP_PKEY_free(key);
    return Status::invalid_argument("TLS certificate file '" + cert_file + "' holds no PEM certificate chain (OpenSSL: " +
                                    openssl_reason() + ")");
  }
  const bool key_ok = SSL_CTX_use_PrivateKey(native, key) == 1 && SSL_CTX_check_private_key(native) == 1;
  EVP_PKEY_free(key);
  if (!key_ok) {
    return Status::invalid_argument("TLS key file '" + key_file + "' does not match the certificate in '" + cert_file +
                                    "' (OpenSSL: " + openssl_reason() + ")");
  }
  return ctx;
}

// Runs deferred replies (Response::deferred) on threads of their own; wait_idle() returns once all finished.
class DeferredReplies {
 public:
  void run(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++running_;
    }
    std::thread([this, fn = std::move(fn)] {
      try {
        fn();
      } catch (const std::exception& e) {  // handle_request's barrier already answered; this is the write
        log::error("a deferred reply failed: {}", e.what());
      } catch (...) {
        log::error("a deferred reply failed");
      }
      std::lock_guard<std::mutex> lock(mutex_);
      if (--running_ == 0) idle_.notify_all();
    }).detach();
  }
  void wait_idle() {
    std::unique_lock<std::mutex> lock(mutex_);
    idle_.wait(lock, [&] { return running_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  int running_ = 0;
};

// One HTTP/1.1 connection. Stream: beast::tcp_stream (plain listener) or TlsStream (TLS listener; the
// handshake runs first). `refuse_plain`: a plain-HTTP request that reached a TLS listener; its first
// request is answered 400 naming the problem, then the connection closes.
template <class Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>> {
 public:
  using std::enable_shared_from_this<HttpSession<Stream>>::shared_from_this;

  HttpSession(Stream stream, beast::flat_buffer buffer, ServerState& state, DeferredReplies& deferred,
              bool refuse_plain = false)
      : stream_(std::move(stream)),
        buffer_(std::move(buffer)),
        state_(state),
        deferred_(deferred),
        refuse_plain_(refuse_plain) {}

  void run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if constexpr (std::is_same_v<Stream, TlsStream>) {
        beast::get_lowest_layer(self->stream_).expires_after(std::chrono::seconds(30));
        // The bytes the TLS detector already read are the start of the ClientHello.
        self->stream_.async_handshake(net::ssl::stream_base::server, self->buffer_.data(),
                                      [self](beast::error_code ec, std::size_t used) {
                                        if (ec) return self->close();
                                        self->buffer_.consume(used);
                                        self->do_read();
                                      });
      } else {
        self->do_read();
      }
    });
  }

 private:
  void do_read() {
    parser_.emplace();
    parser_->header_limit(64 * 1024);
    parser_->body_limit(state_.options().max_body_bytes);
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(120));
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&HttpSession::on_header, shared_from_this()));
  }

  // Barrier for the completion handlers below: whatever throws closes this one connection (logged). Routes
  // never throw (handle_request answers 500 itself); this catches the transport's own surprises.
  template <class Fn>
  void guard(const char* where, Fn&& fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      log::warn("HTTP {} failed: {}; closing the connection", where, e.what());
      close();
    } catch (...) {
      log::warn("HTTP {} failed; closing the connection", where);
      close();
    }
  }

  void on_header(beast::error_code ec, std::size_t) {
    guard("request header", [&] { handle_header(ec); });
  }

  void handle_header(beast::error_code ec) {
    if (ec == http::error::body_limit) return reply_too_large(std::nullopt);
    if (ec) return close();
    if (refuse_plain_) {
      return write(error_response(400, "https_required",
                                  "this server speaks HTTPS only (--tls-cert): use https:// and wss:// URLs"),
                   parser_->get().version(), false, false);
    }
    // Authentication before the body is read: a refused client cannot make the server buffer its upload.
    // The dashboard's static files are public (dashboard.h): the page must load to ask for the token.
    const Request head = to_request(parser_->get());
    if (auto denied = is_dashboard_request(head) ? std::nullopt : check_auth(state_.options().auth_token, head))
      return write(*denied, parser_->get().version(), false, parser_->get().method() == http::verb::head);
    const auto length = parser_->content_length();
    if (length && *length > state_.options().max_body_bytes) return reply_too_large(*length);
    const auto& req = parser_->get();
    if (lower(std::string(req[http::field::expect])) == "100-continue") {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, req.version());
      http::async_write(stream_, *cont, [self = shared_from_this(), cont](beast::error_code ec, std::size_t) {
        if (ec) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&HttpSession::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    guard("request", [&] { handle_read(ec); });
  }

  void handle_read(beast::error_code ec) {
    if (ec == http::error::body_limit) return reply_too_large(std::nullopt);
    if (ec) return close();
    BeastRequest& req = parser_->get();
    Request request = to_request(req);
    const std::string path = strip_api_prefix(request.path);
    if (beast::websocket::is_upgrade(req) && path == "/ws") {
      if (auto denied = origin_check(state_, request)) return write(*denied, req.version(), false, false);
      beast::get_lowest_layer(stream_).expires_never();
      start_websocket_session(std::move(stream_), parser_->release(), state_);
      return;
    }
    Response response = handle_request(state_, request);
    if (response.deferred) {
      const unsigned version = req.version();
      const bool keep_alive = req.keep_alive(), head = req.method() == http::verb::head;
      deferred_.run([self = shared_from_this(), work = std::move(response.deferred), version, keep_alive, head] {
        auto reply = std::make_shared<Response>(work());
        net::post(self->stream_.get_executor(), [self, reply, version, keep_alive, head] {
          self->guard("reply", [&] { self->write(*reply, version, keep_alive, head); });
        });
      });
      return;
    }
    write(response, req.version(), req.keep_alive(), req.method() == http::verb::head);
  }

  void reply_too_large(std::optional<uint64_t> length) {
    const uint64_t limit = state_.options().max_body_bytes;
    std::string message = "request body ";
    message += length ? "of " + std::to_string(*length) + " bytes " : "";
    message += "exceeds the limit of " + std::to_string(limit) + " bytes (" + std::to_string(limit / (1024 * 1024)) +
               " MiB, --max-upload-size)";
    write(error_response(413, "request_too_large", message), 11, false, false);
  }

  void write(const Response& r, unsigned version, bool keep_alive, bool head) {
    // The read deadline may have passed while a long handler ran (a cluster shard): the write gets its own.
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(120));
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), version);
    res->set(http::field::server, "netdist");
    res->set(http::field::date, http_date_now());
    if (!r.content_type.empty()) res->set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res->set(name, value);
    res->body() = r.body;
    res->keep_alive(keep_alive);
    res->prepare_payload();
    if (head) res->body().clear();
    const bool close_after = !keep_alive || res->need_eof();
    http::async_write(stream_, *res, [self = shared_from_this(), res, close_after](beast::error_code ec, std::size_t) {
      if (ec || close_after) return self->close();
      self->do_read();
    });
  }

  // Drops the TCP connection (on TLS without a close_notify: every reply carries its length).
  void close() {
    beast::error_code ec;
    auto& socket = beast::get_lowest_layer(stream_).socket();
    socket.shutdown(tcp::socket::shutdown_send, ec);
    socket.close(ec);
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  ServerState& state_;
  DeferredReplies& deferred_;
  const bool refuse_plain_;
};

// On a TLS listener: reads the first bytes of a connection and hands it to a TLS session when they are a
// TLS ClientHello, or to a plain session that answers 400 (a client that used http:// by mistake gets a
// reason instead of a reset).
class TlsDetector : public std::enable_shared_from_this<TlsDetector> {
 public:
  TlsDetector(tcp::socket socket, net::ssl::context& tls, ServerState& state, DeferredReplies& deferred)
      : stream_(std::move(socket)), tls_(tls), state_(state), deferred_(deferred) {}

  void run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      self->stream_.expires_after(std::chrono::seconds(30));
      beast::async_detect_ssl(self->stream_, self->buffer_, [self](beast::error_code ec, bool is_tls) {
        if (ec) {
          beast::error_code ignored;
          self->stream_.socket().close(ignored);
          return;
        }
        if (is_tls) {
          std::make_shared<HttpSession<TlsStream>>(TlsStream(std::move(self->stream_), self->tls_),
                                                   std::move(self->buffer_), self->state_, self->deferred_)
              ->run();
        } else {
          std::make_shared<HttpSession<beast::tcp_stream>>(std::move(self->stream_), std::move(self->buffer_),
                                                           self->state_, self->deferred_, true)
              ->run();
        }
      });
    });
  }

 private:
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  net::ssl::context& tls_;
  ServerState& state_;
  DeferredReplies& deferred_;
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  // `tls` (null: plain HTTP) must outlive the listener and its sessions.
  Listener(net::io_context& ioc, net::ssl::context* tls, ServerState& state, DeferredReplies& deferred)
      : ioc_(ioc), acceptor_(net::make_strand(ioc)), tls_(tls), state_(state), deferred_(deferred) {}

  Status open(const std::string& host, uint16_t port) {
    const std::string where = host + ":" + std::to_string(port);
    beast::error_code ec;
    tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
    if (ec || results.empty()) return Status::io_error("cannot resolve listen address " + where + ": " + ec.message());
    const tcp::endpoint endpoint = results.begin()->endpoint();
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return Status::io_error("cannot listen on " + where + ": " + ec.message());
    port_ = acceptor_.local_endpoint().port();
    return Status::ok();
  }

  void start() { net::dispatch(acceptor_.get_executor(), [self = shared_from_this()] { self->do_accept(); }); }
  void stop() {
    net::dispatch(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->acceptor_.close(ec);
    });
  }
  uint16_t port() const { return port_; }

 private:
  void do_accept() {
    acceptor_.async_accept(net::make_strand(ioc_), [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
      if (!self->acceptor_.is_open()) return;
      if (!ec && self->tls_) {
        std::make_shared<TlsDetector>(std::move(socket), *self->tls_, self->state_, self->deferred_)->run();
      } else if (!ec) {
        std::make_shared<HttpSession<beast::tcp_stream>>(beast::tcp_stream(std::move(socket)), beast::flat_buffer(),
                                                         self->state_, self->deferred_)
            ->run();
      }
      self->do_accept();
    });
  }

  net::io_context& ioc_;
  tcp::acceptor acceptor_;
  net::ssl::context* tls_;
  ServerState& state_;
  DeferredReplies& deferred_;
  uint16_t port_ = 0;
};

// An I/O thread: the last-resort barrier for every completion handler. A handler that throws past the
// sessions' own barriers is logged and the thread goes on serving (its connection's handler is dropped,
// which closes that connection); run() returns normally only when the server stops.
void run_io(net::io_context& ioc) {
  for (;;) {
    try {
      ioc.run();
      return;
    } catch (const std::exception& e) {
      log::error("an I/O handler failed: {}", e.what());
    } catch (...) {
      log::error("an I/O handler failed");
    }
  }
}

}  // namespace

Request to_request(const BeastRequest& req) {
  Request r;
  r.method = std::string(req.method_string());
  const std::string target(req.target());
  const size_t q = target.find('?');
  r.path = target.substr(0, q);
  if (q != std::string::npos) r.query = parse_query(target.substr(q + 1));
  for (const auto& field : req) r.headers[lower(std::string(field.name_string()))] = std::string(field.value());
  r.body = req.body();
  return r;
}

struct HttpServer::Impl {
  Impl(ServerOptions options, Backend& backend) : state(std::move(options), backend), worker(state) {}

  ServerState state;
  QueueWorker worker;
  std::unique_ptr<net::ssl::context> tls;  // null: plain HTTP; outlives ioc and every session
  DeferredReplies deferred;  // declared before ioc: posted writes die with ioc, after every deferred thread
  net::io_context ioc;
  std::vector<std::shared_ptr<Listener>> listeners;
  std::vector<std::thread> threads;
  bool started = false;
  bool stopped = false;
};

HttpServer::HttpServer(ServerOptions options, Backend& backend)
    : impl_(std::make_unique<Impl>(std::move(options), backend)) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start() {
  ND_ASSERT(!impl_->started, "HttpServer::start called twice");
  const ServerOptions& o = impl_->state.options();
  ND_ASSIGN_OR_RETURN(impl_->tls, make_server_tls(o.tls_cert_file, o.tls_key_file));
  // The stored queue and history are back before a client or the worker can see the queue.
  // Restored prompts are validated against this server's nodes as they are loaded (Backend::validate_stored).
  if (o.store) {
    Backend& backend = impl_->state.backend();
    ND_RETURN_IF_ERROR(impl_->state.queue().attach_store(
        o.store, [&backend](const QueueItem& item) { return backend.validate_stored(item); }));
  }
  std::string addresses = o.listen;
  size_t start = 0;
  while (start <= addresses.size()) {
    size_t end = addresses.find(',', start);
    if (end == std::string::npos) end = addresses.size();
    const std::string host = addresses.substr(start, end - start);
    if (!host.empty()) {
      auto listener = std::make_shared<Listener>(impl_->ioc, impl_->tls.get(), impl_->state, impl_->deferred);
      ND_RETURN_IF_ERROR(listener->open(host, o.port));
      impl_->listeners.push_back(std::move(listener));
    }
    start = end + 1;
  }
  if (impl_->listeners.empty()) return Status::invalid_argument("no listen address in '" + o.listen + "'");
  impl_->started = true;
  for (auto& l : impl_->listeners) l->start();
  impl_->worker.start();
  const int threads = std::max(1, o.threads);
  for (int i = 0; i < threads; ++i) impl_->threads.emplace_back([this] { run_io(impl_->ioc); });
  return Status::ok();
}

void HttpServer::stop() {
  if (!impl_->started || impl_->stopped) return;
  impl_->stopped = true;
  impl_->worker.stop();
  for (auto& l : impl_->listeners) l->stop();
  impl_->state.hub().close_all();
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  impl_->deferred.wait_idle();
  impl_->state.hub().close_all();
}

Status check_tls_files(const std::string& cert_file, const std::string& key_file) {
  return make_server_tls(cert_file, key_file).status();
}

uint16_t HttpServer::port() const { return impl_->listeners.empty() ? 0 : impl_->listeners.front()->port(); }

ServerState& HttpServer::state() { return impl_->state; }

}  // namespace netdist::server
