// The web dashboard (web/: plain ES modules, HTML and CSS, no build step): its files are embedded in the
// binary at build time (cmake/embed_web.cmake writes <build>/generated/dashboard_assets.cpp from web/*, so the
// binary needs nothing beside it and fetches nothing at run time). GET / serves web/index.html, GET
// /dashboard/<file> the other files. These static files hold no data and are served without the bearer
// token, so that the page can show its login field; every route the page then calls needs the token as
// usual (docs/api.md "Dashboard").
// Thread-safety: pure functions over constant data.
#pragma once

#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "server/http_types.h"

namespace netdist::server {

struct DashboardAsset {
  const char* name;           // file name under web/, e.g. "app.js"
  const unsigned char* data;  // its bytes
  size_t size;
};
// Defined in the generated dashboard_assets.cpp.
extern const DashboardAsset kDashboardAssets[];
extern const size_t kDashboardAssetCount;

// True for GET of / and /dashboard/... (with or without the /api alias): answered by route_dashboard,
// without authentication.
bool is_dashboard_request(const Request& request);

// GET / and /dashboard/<file>: the embedded file with its Content-Type, Cache-Control: no-cache and a
// Content-Security-Policy that allows only this origin (scripts, styles, images, fetch and WebSocket); 404
// JSON for an unknown file. GET /dashboard/config.json is `config()`: {"auth_required": bool (whether the page
// must ask for the token; a 401 would tell as much), "cluster": bool (whether GET /netdist/v1/cluster answers:
// a coordinator)}. nullopt for any other path. `path` has /api stripped.
std::optional<Response> route_dashboard(const Request& request, const std::string& path,
                                        const std::function<nlohmann::ordered_json()>& config);

}  // namespace netdist::server
