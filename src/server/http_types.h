// Transport-neutral HTTP request/reply used by the routes, so that only http_server.cpp and
// routes_websocket.cpp include Beast. Helpers for ComfyUI-style replies and URL decoding.
// Thread-safety: values; the functions are pure.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace netdist::server {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // percent-encoded, without the query
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  std::map<std::string, std::string> headers;              // lower-case names
  std::string body;

  // First value of a query parameter, as aiohttp's rel_url.query.get.
  std::optional<std::string> query_value(const std::string& name) const;
  std::optional<std::string> header(const std::string& lower_name) const;
};

struct Response {
  int status = 200;
  std::string content_type;  // empty = no Content-Type header (ComfyUI's bare web.Response)
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Set by a route that must wait (a long poll): the server calls it on a thread of its own, off the I/O
  // threads, and sends the Response it returns instead of this one. It must return promptly once the
  // embedding program shuts down (HttpServer::stop waits for it).
  std::function<Response()> deferred;
};

// 200-style JSON reply written as Python json.dumps, Content-Type "application/json; charset=utf-8".
Response json_response(const nlohmann::ordered_json& value, int status = 200);
Response empty_response(int status = 200);
// {"error": {"type", "message", "details", "extra_info": {}}, "node_errors": {}} with the given status.
Response error_response(int status, const std::string& type, const std::string& message, const std::string& details = "");

// Parses a request body as JSON whatever its Content-Type; an error names what is wrong and where.
Result<nlohmann::ordered_json> parse_json_body(const std::string& body);

// Percent-decoding; `plus_is_space` for query strings (yarl decodes '+' as a space there).
std::string url_decode(const std::string& text, bool plus_is_space);
// Splits "a=1&b=two" into decoded pairs.
std::vector<std::pair<std::string, std::string>> parse_query(const std::string& query);

}  // namespace netdist::server
