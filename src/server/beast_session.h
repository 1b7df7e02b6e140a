// Beast glue shared by http_server.cpp and routes_websocket.cpp; include it from nowhere else (Beast
// headers are slow to compile). A connection is a plain `beast::tcp_stream` or, on a TLS listener
// (--tls-cert/--tls-key), a `TlsStream` over one; the HTTP and WebSocket sessions are templates over the two.
#pragma once

#include <utility>  // Boost 1.74's asio/awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>

#include "server/http_types.h"
#include "server/server_state.h"

namespace netdist::server {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using BeastRequest = http::request<http::string_body>;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// Converts a Beast request into the routes' Request (path, decoded query, lower-case headers, body).
Request to_request(const BeastRequest& request);

// Takes over an upgraded connection as a WebSocket session registered in state.hub() under the request's
// clientId (or a fresh uuid4 hex). Runs on the stream's strand until the socket closes. The TLS overload
// speaks wss:// over the connection's established TLS session.
void start_websocket_session(beast::tcp_stream stream, BeastRequest request, ServerState& state);
void start_websocket_session(TlsStream stream, BeastRequest request, ServerState& state);

}  // namespace netdist::server
