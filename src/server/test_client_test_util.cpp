#include "server/test_client_test_util.h"

#include <utility>  // Boost 1.74's asio/awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

namespace netdist::server {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

namespace {

// A client TLS context trusting `ca_file` and checking that the server's certificate names 127.0.0.1.
std::unique_ptr<net::ssl::context> client_tls(const std::string& ca_file, beast::error_code& ec) {
  auto ctx = std::make_unique<net::ssl::context>(net::ssl::context::tls_client);
  ctx->set_verify_mode(net::ssl::verify_peer);
  ctx->load_verify_file(ca_file, ec);
  X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ctx->native_handle()), "127.0.0.1");
  return ctx;
}

// Runs one request over `stream` (connected by `connect`, which calls its argument once the stream is ready).
template <class Stream, class Connect>
HttpReply exchange(net::io_context& ioc, Stream& stream, Connect connect, uint16_t port, const std::string& method,
                   const std::string& target, const std::string& body,
                   const std::vector<std::pair<std::string, std::string>>& headers, std::chrono::milliseconds deadline) {
  beast::flat_buffer buffer;
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  if (!body.empty() || method == "POST") req.prepare_payload();
  http::response_parser<http::string_body> parser;
  parser.body_limit(1ull << 30);
  HttpReply reply;
  beast::get_lowest_layer(stream).expires_after(deadline);
  connect([&] {
    http::async_write(stream, req, [&](beast::error_code ec, std::size_t) {
      if (ec && ec != net::error::broken_pipe && ec != net::error::connection_reset) return;
      http::async_read(stream, buffer, parser, [&](beast::error_code ec, std::size_t) {
        if (ec) return;
        const auto& res = parser.get();
        reply.status = static_cast<int>(res.result_int());
        reply.body = res.body();
        for (const auto& f : res) {
          std::string name(f.name_string());
          for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          reply.headers[name] = std::string(f.value());
        }
      });
    });
  });
  ioc.run();
  return reply;
}

}  // namespace

nlohmann::ordered_json HttpReply::json() const { return nlohmann::ordered_json::parse(body, nullptr, false); }

nlohmann::ordered_json TestWsClient::Message::json() const {
  return nlohmann::ordered_json::parse(data, nullptr, false);
}

HttpReply http_call(uint16_t port, const std::string& method, const std::string& target, const std::string& body,
                    const std::vector<std::pair<std::string, std::string>>& headers, std::chrono::milliseconds deadline) {
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  auto connect = [&](auto then) {
    stream.async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), [then](beast::error_code ec) {
      if (!ec) then();
    });
  };
  return exchange(ioc, stream, connect, port, method, target, body, headers, deadline);
}

HttpReply https_call(uint16_t port, const std::string& ca_file, const std::string& method, const std::string& target,
                     const std::string& body, const std::vector<std::pair<std::string, std::string>>& headers,
                     std::string* error, std::chrono::milliseconds deadline) {
  beast::error_code ec;
  auto ctx = client_tls(ca_file, ec);
  if (ec) {
    if (error) *error = "cannot load CA file " + ca_file + ": " + ec.message();
    return {};
  }
  net::io_context ioc;
  TlsStream stream(ioc, *ctx);
  std::string why = "no reply";
  auto connect = [&](auto then) {
    beast::get_lowest_layer(stream).async_connect(
        tcp::endpoint(net::ip::make_address("127.0.0.1"), port), [&, then](beast::error_code ec) {
          if (ec) {
            why = "connect: " + ec.message();
            return;
          }
          stream.async_handshake(net::ssl::stream_base::client, [&, then](beast::error_code ec) {
            if (ec) {
              why = "TLS handshake: " + ec.message();
              return;
            }
            then();
          });
        });
  };
  HttpReply reply = exchange(ioc, stream, connect, port, method, target, body, headers, deadline);
  if (reply.status == 0 && error) *error = why;
  return reply;
}

std::string raw_call(uint16_t port, const std::string& bytes, std::chrono::milliseconds deadline) {
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  std::string out;
  std::array<char, 4096> chunk{};
  std::function<void()> read_more;
  stream.expires_after(deadline);
  read_more = [&] {
    stream.async_read_some(net::buffer(chunk), [&](beast::error_code ec, std::size_t n) {
      out.append(chunk.data(), n);
      if (!ec) read_more();
    });
  };
  stream.async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), [&](beast::error_code ec) {
    if (ec) return;
    net::async_write(stream, net::buffer(bytes), [&](beast::error_code, std::size_t) { read_more(); });
  });
  ioc.run();
  return out;
}

bool send_and_vanish(uint16_t port, const std::string& bytes) {
  net::io_context ioc;
  tcp::socket socket(ioc);
  beast::error_code ec;
  socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), ec);
  if (ec) return false;
  net::write(socket, net::buffer(bytes), ec);
  socket.close(ec);
  return true;
}

int open_stalled(uint16_t port, const std::string& bytes) {
  net::io_context ioc;
  tcp::socket socket(ioc);
  beast::error_code ec;
  socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), ec);
  if (ec) return -1;
  net::write(socket, net::buffer(bytes), ec);
  if (ec) return -1;
  return socket.release();
}

std::string multipart_body(const std::vector<std::tuple<std::string, std::string, std::string>>& parts) {
  std::string out;
  for (const auto& [name, filename, data] : parts) {
    out += std::string("--") + kTestBoundary + "\r\n";
    out += "Content-Disposition: form-data; name=\"" + name + "\"";
    if (!filename.empty()) out += "; filename=\"" + filename + "\"\r\nContent-Type: image/png";
    out += "\r\n\r\n" + data + "\r\n";
  }
  out += std::string("--") + kTestBoundary + "--\r\n";
  return out;
}

struct TestWsClient::Impl {
  net::io_context ioc;
  std::unique_ptr<net::ssl::context> tls_context;
  std::optional<websocket::stream<beast::tcp_stream>> plain;
  std::optional<websocket::stream<TlsStream>> tls;
  beast::flat_buffer buffer;
  bool open = false;

  // Calls f with the connected websocket stream, plain or TLS.
  template <class F>
  auto with_ws(F f) {
    return tls ? f(*tls) : f(*plain);
  }
};

TestWsClient::TestWsClient() : impl_(std::make_unique<Impl>()) {}
TestWsClient::~TestWsClient() = default;

namespace {

// Connects `ws` to 127.0.0.1:port and upgrades to a WebSocket on `target` (TLS handshake first on wss).
template <class Ws>
bool ws_connect(net::io_context& ioc, Ws& ws, uint16_t port, const std::string& target, int receive_buffer,
                const std::vector<std::pair<std::string, std::string>>& headers) {
  auto& lowest = beast::get_lowest_layer(ws);
  beast::error_code ec;
  lowest.socket().open(tcp::v4(), ec);
  if (ec) return false;
  if (receive_buffer > 0) lowest.socket().set_option(net::socket_base::receive_buffer_size(receive_buffer), ec);
  lowest.expires_after(std::chrono::seconds(10));
  ws.set_option(websocket::stream_base::decorator([headers](websocket::request_type& req) {
    for (const auto& [k, v] : headers) req.set(k, v);
  }));
  bool ok = false;
  auto upgrade = [&] {
    ws.async_handshake("127.0.0.1:" + std::to_string(port), target, [&](beast::error_code ec) { ok = !ec; });
  };
  lowest.async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port), [&](beast::error_code ec) {
    if (ec) return;
    if constexpr (std::is_same_v<Ws, websocket::stream<TlsStream>>) {
      ws.next_layer().async_handshake(net::ssl::stream_base::client, [&](beast::error_code ec) {
        if (!ec) upgrade();
      });
    } else {
      upgrade();
    }
  });
  ioc.run();
  ioc.restart();
  lowest.expires_never();
  return ok;
}

}  // namespace

bool TestWsClient::connect(uint16_t port, const std::string& target, int receive_buffer,
                           const std::vector<std::pair<std::string, std::string>>& headers) {
  impl_->plain.emplace(impl_->ioc);
  impl_->open = ws_connect(impl_->ioc, *impl_->plain, port, target, receive_buffer, headers);
  return impl_->open;
}

bool TestWsClient::connect_tls(uint16_t port, const std::string& ca_file, const std::string& target,
                               const std::vector<std::pair<std::string, std::string>>& headers) {
  beast::error_code ec;
  impl_->tls_context = client_tls(ca_file, ec);
  if (ec) return false;
  impl_->tls.emplace(impl_->ioc, *impl_->tls_context);
  impl_->open = ws_connect(impl_->ioc, *impl_->tls, port, target, 0, headers);
  return impl_->open;
}

std::optional<TestWsClient::Message> TestWsClient::read(std::chrono::milliseconds deadline) {
  if (!impl_->open) return std::nullopt;
  std::optional<Message> out;
  bool done = false;
  impl_->with_ws([&](auto& ws) {
    ws.async_read(impl_->buffer, [&](beast::error_code ec, std::size_t) {
      done = true;
      if (ec) return;
      out = Message{!ws.got_text(), beast::buffers_to_string(impl_->buffer.data())};
      impl_->buffer.consume(impl_->buffer.size());
    });
    impl_->ioc.run_for(deadline);
    if (!done) {
      beast::error_code ec;
      beast::get_lowest_layer(ws).socket().close(ec);
      impl_->ioc.run();
    }
  });
  impl_->ioc.restart();
  if (!out) impl_->open = false;
  return out;
}

bool TestWsClient::read_until(const std::string& type, const std::string& prompt_id, std::vector<Message>& seen,
                              std::chrono::milliseconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    auto m = read(left);
    if (!m) return false;
    seen.push_back(*m);
    if (m->binary) continue;
    const auto j = m->json();
    if (j.is_object() && j.value("type", "") == type &&
        (prompt_id.empty() || (j["data"].is_object() && j["data"].value("prompt_id", "") == prompt_id)))
      return true;
  }
}

bool TestWsClient::send_text(const std::string& text) {
  if (!impl_->open) return false;
  beast::error_code ec;
  impl_->with_ws([&](auto& ws) {
    ws.text(true);
    ws.write(net::buffer(text), ec);
  });
  return !ec;
}

void TestWsClient::close() {
  if (!impl_->open) return;
  beast::error_code ec;
  impl_->with_ws([&](auto& ws) { beast::get_lowest_layer(ws).socket().close(ec); });
  impl_->open = false;
}

}  // namespace netdist::server
