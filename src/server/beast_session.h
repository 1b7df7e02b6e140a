// Beast glue shared by http_server.cpp and routes_websocket.cpp; include it from nowhere else (Beast
// headers are slow to compile).
#pragma once

#include <utility>  // Boost 1.74's asio/awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "server/http_types.h"
#include "server/server_state.h"

namespace netdist::server {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using BeastRequest = http::request<http::string_body>;

// Converts a Beast request into the routes' Request (path, decoded query, lower-case headers, body).
Request to_request(const BeastRequest& request);

// Takes over an upgraded connection as a WebSocket session registered in state.hub() under the request's
// clientId (or a fresh uuid4 hex). Runs on the stream's strand until the socket closes.
void start_websocket_session(beast::tcp_stream stream, BeastRequest request, ServerState& state);

}  // namespace netdist::server
