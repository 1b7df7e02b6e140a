// ComfyUI's HTTP routes (comfy-api.md §2) over transport-neutral Request/Response. handle_request applies
// ComfyUI's middleware (origin-only 403 rule or CORS headers, OPTIONS → 200), strips the /api alias and
// dispatches to the route groups; unknown routes get a JSON 404.
// Thread-safety: may be called concurrently from any number of I/O threads.
#pragma once

#include <optional>
#include <string>

#include "server/http_types.h"
#include "server/server_state.h"

namespace netdist::server {

Response handle_request(ServerState& state, const Request& request);

// Middleware verdict alone (403 for a loopback Host whose Origin differs), for the WebSocket upgrade path.
std::optional<Response> origin_check(const ServerState& state, const Request& request);
// 401 unless options.auth_token is empty or the request carries it ("Authorization: Bearer <token>" or the
// query parameter token=<token>); constant-time comparison. Also used for the WebSocket upgrade.
std::optional<Response> auth_check(const ServerState& state, const Request& request);
// "/api/x" → "/x"; other paths unchanged.
std::string strip_api_prefix(const std::string& path);

// Route groups: each returns nullopt when the path/method is not its own. `path` has the /api prefix
// stripped and is still percent-encoded.
std::optional<Response> route_prompt(ServerState& state, const Request& request, const std::string& path);  // prompt, queue, history, interrupt, free
std::optional<Response> route_files(ServerState& state, const Request& request, const std::string& path);   // view, upload/image, upload/mask
std::optional<Response> route_info(ServerState& state, const Request& request, const std::string& path);    // object_info, system_stats, embeddings, extensions, features, models

}  // namespace netdist::server
