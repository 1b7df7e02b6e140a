// Bearer-token authentication for every HTTP route and the WebSocket (ServerOptions::auth_token). A request
// is admitted when `Authorization: Bearer <token>` carries the token, or, for WebSocket clients and browser
// pages that cannot set headers, the query parameter `?token=<token>`. The comparison is constant-time
// (SHA-256 of both sides compared with CRYPTO_memcmp, so neither the contents nor the length leak). Anything
// else gets 401 with a JSON error naming the problem (type "missing_token" or "wrong_token") and a
// `WWW-Authenticate: Bearer` header; a refused request runs nothing.
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>

#include "server/http_types.h"

namespace netdist::server {

// True when `given` equals `expected`, in time that depends on neither.
bool token_equals(const std::string& given, const std::string& expected);

// nullopt when `request` may proceed: `token` is empty (authentication off), the request carries it, or it
// is an OPTIONS (CORS preflight: browsers send it without credentials, and it runs nothing). Otherwise the
// 401 reply. Only the headers and the query of `request` are read.
std::optional<Response> check_auth(const std::string& token, const Request& request);

}  // namespace netdist::server
