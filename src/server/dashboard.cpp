#include "server/dashboard.h"

#include "server/routes.h"

namespace netdist::server {

namespace {

const char* dashboard_content_type(const std::string& name) {
  const auto ends_with = [&](const char* ext) {
    const std::string e = ext;
    return name.size() >= e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0;
  };
  if (ends_with(".html")) return "text/html; charset=utf-8";
  if (ends_with(".js") || ends_with(".mjs")) return "text/javascript; charset=utf-8";
  if (ends_with(".css")) return "text/css; charset=utf-8";
  if (ends_with(".svg")) return "image/svg+xml";
  if (ends_with(".png")) return "image/png";
  if (ends_with(".json")) return "application/json; charset=utf-8";
  return "application/octet-stream";
}

const DashboardAsset* dashboard_find(const std::string& name) {
  for (size_t i = 0; i < kDashboardAssetCount; ++i)
    if (name == kDashboardAssets[i].name) return &kDashboardAssets[i];
  return nullptr;
}

}  // namespace

bool is_dashboard_request(const Request& request) {
  if (request.method != "GET") return false;
  const std::string path = strip_api_prefix(request.path);
  return path == "/" || path == "/index.html" || path.rfind("/dashboard/", 0) == 0;
}

std::optional<Response> route_dashboard(const Request& request, const std::string& path,
                                        const std::function<nlohmann::ordered_json()>& config) {
  if (!is_dashboard_request(request)) return std::nullopt;
  std::string name = path == "/" || path == "/index.html" ? "index.html" : path.substr(std::string("/dashboard/").size());
  Response r;
  if (name == "config.json") {
    r = json_response(config());
  } else if (const DashboardAsset* asset = dashboard_find(name)) {
    r.content_type = dashboard_content_type(name);
    r.body.assign(reinterpret_cast<const char*>(asset->data), asset->size);
  } else {
    return error_response(404, "not_found", "the dashboard has no file '" + name + "'");
  }
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'self'; img-src 'self' blob: data:; connect-src 'self' ws: wss:; "
                         "object-src 'none'; frame-ancestors 'none'");
  return r;
}

}  // namespace netdist::server
