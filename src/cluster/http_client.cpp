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
    auto endpoints = resolver.resolve(u.host, u.port, ec);
    if (ec) return Status::unavailable(url + ": cannot resolve " + u.host + ": " + ec.message());
    stream.connect(endpoints, ec);
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
    http::write(stream, req, ec);
    if (ec) return Status::unavailable(url + call.target + ": write failed: " + ec.message());
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(4ull << 30);
    http::read(stream, buffer, parser, ec);
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
