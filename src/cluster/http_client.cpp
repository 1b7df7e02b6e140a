#include "cluster/http_client.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <type_traits>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace netdist::cluster {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

struct TlsClientContext::Impl {
  net::ssl::context ssl{net::ssl::context::tls_client};
};

TlsClientContext::TlsClientContext() : impl_(std::make_unique<Impl>()) {}
TlsClientContext::~TlsClientContext() = default;

Result<std::shared_ptr<const TlsClientContext>> TlsClientContext::create(const std::string& ca_file) {
  std::shared_ptr<TlsClientContext> out(new TlsClientContext());
  net::ssl::context& ssl = out->impl_->ssl;
  ssl.set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                  net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 | net::ssl::context::no_tlsv1_1);
  ssl.set_verify_mode(net::ssl::verify_peer);
  beast::error_code ec;
  if (ca_file.empty()) {
    out->trust_ = "the system CA store";
    ssl.set_default_verify_paths(ec);
    if (ec) return Status::invalid_argument("cannot load the system CA store: " + ec.message());
    return std::shared_ptr<const TlsClientContext>(std::move(out));
  }
  out->trust_ = "CA file '" + ca_file + "'";
  std::FILE* f = std::fopen(ca_file.c_str(), "r");
  if (!f) return Status::invalid_argument("cannot read TLS CA file '" + ca_file + "': " + std::strerror(errno));
  std::fclose(f);
  ssl.load_verify_file(ca_file, ec);
  if (ec) {
    ERR_clear_error();
    return Status::invalid_argument("TLS CA file '" + ca_file + "' holds no PEM certificate (" + ec.message() + ")");
  }
  return std::shared_ptr<const TlsClientContext>(std::move(out));
}

namespace {

// For https:// calls without a context of their own: the system's default verify paths, loaded once.
Result<std::shared_ptr<const TlsClientContext>> system_tls() {
  static const Result<std::shared_ptr<const TlsClientContext>> context = TlsClientContext::create("");
  return context;
}

bool is_ip_address(const std::string& host) {
  beast::error_code ec;
  net::ip::make_address(host, ec);
  return !ec;
}

// Sends the request and reads the reply over a connected stream (plain or TLS). `finish` runs the pending
// operation; `cancelled` turns true when it was cut short by HttpCall::cancel.
template <class Stream, class Finish>
Result<HttpReply> exchange(Stream& stream, const Finish& finish, const bool& cancelled, const HttpUrl& u,
                           const std::string& url, const HttpCall& call) {
  beast::error_code ec;
  http::request<http::string_body> req(call.method == "POST" ? http::verb::post : http::verb::get,
                                       u.base_path + call.target, 11);
  if (call.method != "GET" && call.method != "POST") req.method_string(call.method);
  req.set(http::field::host, u.host + ":" + u.port);
  req.set(http::field::user_agent, "netdist-cluster");
  if (!call.auth_token.empty()) req.set(http::field::authorization, "Bearer " + call.auth_token);
  for (const auto& [name, value] : call.headers) req.set(name, value);
  if (!call.body.empty() || call.method == "POST") {
    req.set(http::field::content_type, call.content_type);
    req.body() = call.body;
    req.prepare_payload();
  }
  bool done = false;
  http::async_write(stream, req, [&](beast::error_code e, std::size_t) {
    ec = e;
    done = true;
  });
  finish(done);
  if (cancelled) return Status::cancelled(url + call.target + ": cancelled");
  if (ec) return Status::unavailable(url + call.target + ": write failed: " + ec.message());
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(4ull << 30);
  done = false;
  http::async_read(stream, buffer, parser, [&](beast::error_code e, std::size_t) {
    ec = e;
    done = true;
  });
  finish(done);
  if (cancelled) return Status::cancelled(url + call.target + ": cancelled");
  if (ec) return Status::unavailable(url + call.target + ": no reply: " + ec.message());
  HttpReply reply;
  reply.status = static_cast<int>(parser.get().result_int());
  reply.body = std::move(parser.get().body());
  reply.content_type = std::string(parser.get()[http::field::content_type]);
  for (const auto& field : parser.get()) {
    std::string name(field.name_string());
    for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
    reply.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  beast::get_lowest_layer(stream).socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
  return reply;
}

}  // namespace

Result<HttpUrl> parse_http_url(const std::string& url) {
  HttpUrl out;
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
    out.tls = true;
    out.port = "443";
  } else {
    return Status::invalid_argument("URL '" + url + "' must start with http:// or https://");
  }
  const size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  if (slash != std::string::npos) out.base_path = rest.substr(slash);
  while (!out.base_path.empty() && out.base_path.back() == '/') out.base_path.pop_back();
  const size_t colon = hostport.rfind(':');
  const size_t bracket = hostport.find(']');
  if (colon != std::string::npos && (bracket == std::string::npos || colon > bracket)) {
    out.host = hostport.substr(0, colon);
    out.port = hostport.substr(colon + 1);
  } else {
    out.host = hostport;
  }
  if (!out.host.empty() && out.host.front() == '[' && out.host.back() == ']')
    out.host = out.host.substr(1, out.host.size() - 2);
  if (out.host.empty() || out.port.empty()) return Status::invalid_argument("URL '" + url + "' has no host");
  return out;
}

Result<HttpReply> http_call(const std::string& url, const HttpCall& call) {
  ND_ASSIGN_OR_RETURN(HttpUrl u, parse_http_url(url));
  std::shared_ptr<const TlsClientContext> tls = call.tls;
  if (u.tls && !tls) {
    auto system = system_tls();
    if (!system.is_ok()) return Status::unavailable(url + ": " + system.status().message());
    tls = *system;
  }
  try {
    net::io_context ioc;
    net::ip::tcp::resolver resolver(ioc);
    beast::tcp_stream tcp(ioc);
    tcp.expires_after(call.timeout);
    beast::error_code ec;
    bool cancelled = false;
    beast::tcp_stream* lowest = &tcp;  // the connection whatever wraps it
    // Runs the pending operation until `done`, closing the socket once `cancel` is set.
    auto finish = [&](const bool& done) {
      while (!done) {
        ioc.restart();
        ioc.run_for(std::chrono::milliseconds(50));
        if (!done && !cancelled && call.cancel && call.cancel->load()) {
          cancelled = true;
          beast::error_code ignored;
          lowest->socket().close(ignored);
        }
      }
    };
    auto endpoints = resolver.resolve(u.host, u.port, ec);
    if (ec) return Status::unavailable(url + ": cannot resolve " + u.host + ": " + ec.message());
    bool done = false;
    tcp.async_connect(endpoints, [&](beast::error_code e, const auto&) {
      ec = e;
      done = true;
    });
    finish(done);
    if (cancelled) return Status::cancelled(url + call.target + ": cancelled");
    if (ec) return Status::unavailable(url + ": cannot connect: " + ec.message());
    if (!u.tls) return exchange(tcp, finish, cancelled, u, url, call);

    TlsStream stream(std::move(tcp), tls->impl().ssl);
    lowest = &beast::get_lowest_layer(stream);
    SSL* ssl = stream.native_handle();
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const bool ip = is_ip_address(u.host);
    // SNI carries DNS names only; the certificate must name the host either way.
    const bool named = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, u.host.c_str()) == 1
                          : SSL_set_tlsext_host_name(ssl, u.host.c_str()) == 1 &&
                                X509_VERIFY_PARAM_set1_host(param, u.host.c_str(), 0) == 1;
    if (!named) {
      ERR_clear_error();
      return Status::unavailable(url + ": cannot set the TLS host name '" + u.host + "'");
    }
    done = false;
    stream.async_handshake(net::ssl::stream_base::client, [&](beast::error_code e) {
      ec = e;
      done = true;
    });
    finish(done);
    if (cancelled) return Status::cancelled(url + call.target + ": cancelled");
    if (ec) {
      std::string reason = ec.message();
      const long verify = SSL_get_verify_result(ssl);
      if (verify != X509_V_OK) reason += ": " + std::string(X509_verify_cert_error_string(verify));
      ERR_clear_error();
      return Status::unavailable(url + ": TLS handshake failed: " + reason + " (trusting " + tls->trust() + ")");
    }
    return exchange(stream, finish, cancelled, u, url, call);
  } catch (const std::exception& e) {
    return Status::unavailable(url + call.target + ": " + e.what());
  }
}

}  // namespace netdist::cluster
