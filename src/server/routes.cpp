#include "server/routes.h"

#include <algorithm>
#include <cctype>
#include <chrono>

#include <cstdio>
#include <exception>

#include "core/log.h"
#include "core/py_json.h"
#include "server/auth.h"
#include "server/dashboard.h"
#include "server/metrics.h"

namespace netdist::server {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The parts of urllib.parse.urlsplit that origin_only_middleware uses.
struct NetLoc {
  std::string netloc;
  std::optional<std::string> hostname;
  std::optional<int> port;
};

NetLoc split_netloc(const std::string& netloc) {
  NetLoc out;
  out.netloc = netloc;
  std::string hostport = netloc.substr(netloc.rfind('@') == std::string::npos ? 0 : netloc.rfind('@') + 1);
  std::string host = hostport;
  std::string port;
  if (!hostport.empty() && hostport[0] == '[') {
    const size_t close = hostport.find(']');
    host = hostport.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < hostport.size() && hostport[close + 1] == ':') port = hostport.substr(close + 2);
  } else if (const size_t colon = hostport.rfind(':'); colon != std::string::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  if (!host.empty()) out.hostname = lower(host);
  if (!port.empty() && port.size() <= 5 && std::all_of(port.begin(), port.end(), ::isdigit)) out.port = std::stoi(port);
  return out;
}

NetLoc parse_origin(const std::string& origin) {
  const size_t scheme = origin.find("://");
  if (scheme == std::string::npos) return {};
  std::string rest = origin.substr(scheme + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  return split_netloc(lower(rest));
}

bool is_loopback_host(const std::optional<std::string>& host) {
  if (!host) return false;
  if (*host == "localhost" || *host == "::1" || *host == "0:0:0:0:0:0:0:1") return true;
  if (host->rfind("127.", 0) == 0) {
    int dots = 0;
    for (char c : *host) {
      if (c == '.') ++dots;
      else if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    }
    return dots == 3;
  }
  return false;
}

// The last-resort answer for a route that threw: logged, and a 500 in ComfyUI's error shape naming the route.
Response internal_error(const std::string& method, const std::string& path, const char* what) {
  const std::string message = "netdist could not handle " + method + " " + path + ": " + what;
  log::error("{}", message);
  return error_response(500, "internal_error", message);
}

template <class Fn>
Response guarded(const std::string& method, const std::string& path, Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return internal_error(method, path, e.what());
  } catch (...) {
    return internal_error(method, path, "unknown exception");
  }
}

// The dashboard's config.json: whether it needs the token, and whether this server is a coordinator (its
// extra routes answer GET /netdist/v1/cluster).
nlohmann::ordered_json dashboard_config(ServerState& state) {
  bool cluster = false;
  if (state.options().extra_routes) {
    Request probe;
    probe.method = "GET";
    probe.path = "/netdist/v1/cluster";
    const std::optional<Response> r = state.options().extra_routes(probe, probe.path);
    cluster = r && r->status == 200 && !r->deferred;
  }
  return {{"auth_required", !state.options().auth_token.empty()}, {"cluster", cluster}};
}

Response route(ServerState& state, const Request& request) {
  const std::string path = strip_api_prefix(request.path);
  std::optional<Response> routed = route_dashboard(request, path, [&state] { return dashboard_config(state); });
  if (!routed) routed = route_metrics(state, request, path);
  if (!routed) routed = route_prompt(state, request, path);
  if (!routed) routed = route_files(state, request, path);
  if (!routed) routed = route_info(state, request, path);
  if (!routed && state.options().extra_routes) routed = state.options().extra_routes(request, path);
  if (!routed) return error_response(404, "not_found", "no route for " + request.method + " " + request.path);
  if (routed->deferred) {
    // The deferred work runs later on a thread of its own: it gets the same barrier.
    routed->deferred = [work = std::move(routed->deferred), method = request.method, path = request.path] {
      return guarded(method, path, work);
    };
  }
  return std::move(*routed);
}

}  // namespace

std::optional<std::string> websocket_text_reply(ServerState& state, const std::string& message, bool first_message) {
  if (!first_message) return std::nullopt;
  const auto parsed = nlohmann::ordered_json::parse(message, nullptr, false);
  if (!parsed.is_object()) return std::nullopt;
  const auto type = parsed.find("type");
  if (type == parsed.end() || !type->is_string() || type->get<std::string>() != "feature_flags") return std::nullopt;
  const nlohmann::ordered_json reply = {{"type", "feature_flags"}, {"data", state.feature_flags()}};
  return python_json_dumps(reply);
}

std::string strip_api_prefix(const std::string& path) {
  if (path.rfind("/api/", 0) == 0) return path.substr(4);
  return path;
}

std::optional<Response> origin_check(const ServerState& state, const Request& request) {
  if (state.options().cors_origin) return std::nullopt;
  const auto host_header = request.header("host");
  const auto origin_header = request.header("origin");
  if (!host_header || !origin_header) return std::nullopt;
  const NetLoc origin = parse_origin(*origin_header);
  const NetLoc host = split_netloc(lower(*host_header));
  const bool loopback = is_loopback_host(host.hostname);
  std::optional<std::string> host_domain = host.netloc;
  std::optional<std::string> origin_domain = origin.netloc;
  if (!origin.port) host_domain = host.hostname;
  if (!host.port) origin_domain = origin.hostname;
  if (loopback && host_domain && origin_domain && !host_domain->empty() && !origin_domain->empty() &&
      *host_domain != *origin_domain) {
    return empty_response(403);
  }
  return std::nullopt;
}

namespace {

Response with_middleware(ServerState& state, const Request& request) {
  if (auto denied = origin_check(state, request)) return *denied;
  Response response;
  if (request.method == "OPTIONS") {
    response = empty_response(200);
  } else if (auto denied = is_dashboard_request(request) ? std::nullopt : check_auth(state.options().auth_token, request)) {
    response = std::move(*denied);
  } else {
    response = route(state, request);
  }
  if (state.options().cors_origin) {
    response.headers.emplace_back("Access-Control-Allow-Origin", *state.options().cors_origin);
    response.headers.emplace_back("Access-Control-Allow-Methods", "POST, GET, DELETE, PUT, OPTIONS");
    response.headers.emplace_back("Access-Control-Allow-Headers", "Content-Type, Authorization");
    response.headers.emplace_back("Access-Control-Allow-Credentials", "true");
  }
  return response;
}

}  // namespace

Response handle_request(ServerState& state, const Request& request) {
  const auto started = std::chrono::steady_clock::now();
  Response response = guarded(request.method, request.path, [&] { return with_middleware(state, request); });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  state.metrics().observe_request(request.method, request.path, response.status, seconds);
  return response;
}

}  // namespace netdist::server
