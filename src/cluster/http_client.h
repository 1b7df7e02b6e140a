// A small blocking HTTP/1.1 client (Boost.Beast) for coordinator ↔ worker calls and the cluster tests.
// One connection per call; every call gives up after `timeout` (connect, write and read together), or as
// soon as its `cancel` flag is set (checked every 50 ms; for long polls that a shutdown must not wait for).
// Thread-safety: reentrant; calls on distinct threads are independent.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace netdist::cluster {

struct HttpUrl {
  std::string host;
  std::string port = "80";
  std::string base_path;  // without a trailing '/', e.g. "" or "/proxy"
};

// "http://host:port[/path]" → parts; invalid_argument naming the URL otherwise (https is not supported).
Result<HttpUrl> parse_http_url(const std::string& url);

struct HttpReply {
  int status = 0;
  std::string body;
  std::string content_type;
};

struct HttpCall {
  std::string method = "GET";
  std::string target;  // "/netdist/v1/shard", appended to the URL's base path
  std::string body;
  std::string content_type = "application/json";
  std::string auth_token;  // non-empty: "Authorization: Bearer <token>"
  std::chrono::milliseconds timeout{30000};
  const std::atomic<bool>* cancel = nullptr;  // set → the call ends with kCancelled
};

// unavailable naming the URL when the connection fails, is reset or the deadline passes; cancelled when
// `cancel` was set; any HTTP status (also 4xx/5xx) is a reply.
Result<HttpReply> http_call(const std::string& url, const HttpCall& call);

}  // namespace netdist::cluster
