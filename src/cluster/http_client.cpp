#include "cluster/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace netdist::cluster {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

Result<HttpUrl> parse_http_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) {
    return Status::invalid_argument("worker URL '" + url +
                                    "' must start with http:// (https is not supported yet)");
  }
  std::string rest = url.substr(scheme.size());
  HttpUrl out;
  const size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  if (slash != std::string::npos) out.base_path = rest.substr(slash);
  while (!out.base_path.empty() && out.base_path.back() == '/') out.base_path.pop_back();
  const size_t colon = hostport.rfind(':');
  if (colon != std::string::npos && hostport.find(']') == std::string::npos) {
    out.host = hostport.substr(0, colon);
    out.port = hostport.substr(colon + 1);
  } else {
    out.host = hostport;
  }
  if (!out.host.empty() && out.host.front() == '[' && out.host.back() == ']')
    out.host = out.host.substr(1, out.host.size() - 2);
  if (out.host.empty() || out.port.empty())
    return Status::invalid_argument("worker URL '" + url + "' has no host");
  return out;
}

Result<HttpReply> http_call(const std::string& url, const HttpCall& call) {
  ND_ASSIGN_OR_RETURN(HttpUrl u, parse_http_url(url));
  try {
    net::io_context ioc;
    net::ip::tcp::resolver resolver(ioc);
    beast::tcp_stream stream(ioc);
    stream.expires_after(call.timeout);
    beast::error_code ec;
    bool cancelled = false;
    // Runs the pending operation until `done`, closing the socket once `cancel` is set.
    auto finish = [&](const bool& done) {
      while (!done) {
        ioc.restart();
        ioc.run_for(std::chrono::milliseconds(50));
        if (!done && !cancelled && call.cancel && call.cancel->load()) {
          cancelled = true;
          beast::error_code ignored;
          stream.socket().close(ignored);
        }
      }
    };
    auto endpoints = resolver.resolve(u.host, u.port, ec);
    if (ec) return Status::unavailable(url + ": cannot resolve " + u.host + ": " + ec.message());
    bool done = false;
    stream.async_connect(endpoints, [&](beast::error_code e, const auto&) {
      ec = e;
      done = true;
    });
    finish(done);
    if (cancelled) return Status::cancelled(url + call.target + ": cancelled");
    if (ec) return Status::unavailable(url + ": cannot connect: " + ec.message());
    http::request<http::string_body> req(call.method == "POST" ? http::verb::post : http::verb::get,
                                         u.base_path + call.target, 11);
    if (call.method != "GET" && call.method != "POST") req.method_string(call.method);
    req.set(http::field::host, u.host + ":" + u.port);
    req.set(http::field::user_agent, "netdist-cluster");
    if (!call.auth_token.empty()) req.set(http::field::authorization, "Bearer " + call.auth_token);
    if (!call.body.empty() || call.method == "POST") {
      req.set(http::field::content_type, call.content_type);
      req.body() = call.body;
      req.prepare_payload();
    }
    done = false;
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
    stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
    return reply;
  } catch (const std::exception& e) {
    return Status::unavailable(url + call.target + ": " + e.what());
  }
}

}  // namespace netdist::cluster
