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

// Never throws: anything a route (or the embedding program's extra_routes, or a deferred reply) throws
// becomes a 500 {"error": {"type": "internal_error", ...}} naming the route, logged on stderr — the last-resort
// barrier; routes answer input they cannot use with a 4xx themselves.
Response handle_request(ServerState& state, const Request& request);

// ComfyUI's websocket_handler for one text message from a client: the reply to send back (only a first
// message {"type": "feature_flags", ...} gets one, the server's feature flags), or nullopt. Any other
// message, of any JSON type or not JSON at all, is ignored. Never throws on input.
std::optional<std::string> websocket_text_reply(ServerState& state, const std::string& message, bool first_message);

// Middleware verdict alone (403 for a loopback Host whose Origin differs), for the WebSocket upgrade path.
std::optional<Response> origin_check(const ServerState& state, const Request& request);
// "/api/x" → "/x"; other paths unchanged.
std::string strip_api_prefix(const std::string& path);

// Route groups: each returns nullopt when the path/method is not its own. `path` has the /api prefix
// stripped and is still percent-encoded.
std::optional<Response> route_prompt(ServerState& state, const Request& request, const std::string& path);  // prompt, queue, history, interrupt, free
std::optional<Response> route_files(ServerState& state, const Request& request, const std::string& path);   // view, upload/image, upload/mask
std::optional<Response> route_info(ServerState& state, const Request& request, const std::string& path);    // object_info, system_stats, embeddings, extensions, features, models

}  // namespace netdist::server
