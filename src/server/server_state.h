// Everything the routes, the WebSocket sessions and the queue worker share: options, the prompt queue,
// the WebSocket hub, the backend and ComfyUI's routing state, kept per running prompt (several prompts run
// at once on a coordinator, backend.h runs_concurrently): each running prompt's client_id, the node it is
// executing and its interrupt flag.
// Thread-safety: every method may be called from any thread. Lock order: queue → routing → hub; a
// connection's send only posts to its strand, so no lock is held across I/O.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "server/backend.h"
#include "server/http_types.h"
#include "server/metrics.h"
#include "server/prompt_queue.h"
#include "server/ws_hub.h"

namespace netdist::store {
class Store;
}

namespace netdist::server {

// Routes added by the embedding program (the cluster's /netdist/v1 API): called for every request that
// passed authentication and origin checks, before the 404; nullopt = not handled. `path` has /api stripped.
// Called from any I/O thread, concurrently.
using ExtraRoutes = std::function<std::optional<Response>(const Request& request, const std::string& path)>;

struct ServerOptions {
  std::string listen = "127.0.0.1";  // --listen
  uint16_t port = 8188;              // --port; 0 picks an ephemeral port
  int threads = 4;                   // HTTP/WebSocket I/O threads
  uint64_t max_body_bytes = 100ull * 1024 * 1024;  // --max-upload-size; larger bodies get 413
  std::optional<std::string> cors_origin;          // --enable-cors-header; unset = origin-only 403 rule
  std::string auth_token;                          // --auth-token; non-empty = every route and /ws need it (auth.h)
  std::string tls_cert_file;                       // --tls-cert: PEM chain; with tls_key_file = HTTPS/WSS only
  std::string tls_key_file;                        // --tls-key: PEM private key (unencrypted)
  std::string output_dir = "output";
  std::string input_dir = "input";
  std::string temp_dir = "temp";
  std::string models_dir;                          // /models/{folder} lists <models_dir>/<folder>; empty = none
  uint64_t ws_max_buffered_bytes = 64ull * 1024 * 1024;  // per-socket outgoing bound (slow-reader policy)
  std::string comfyui_version = "0.3.64";          // reported in /system_stats
  std::string python_version = "3.12.0 (netdist)";
  std::string pytorch_version;                     // reported in /system_stats
  std::vector<std::string> argv;                   // reported in /system_stats: leave --auth-token out
  ExtraRoutes extra_routes;                        // cluster roles add /netdist/v1 routes (routes.h)
  std::shared_ptr<store::Store> store;             // --data-dir: the durable queue and history (null = memory)
  // Lines appended to GET /metrics (Prometheus text, each family with # HELP/# TYPE): a coordinator's
  // per-worker figures (cluster/cluster_metrics.h). Called on an I/O thread at every scrape; empty = none.
  std::function<std::string()> extra_metrics;
};

class ServerState {
 public:
  ServerState(ServerOptions options, Backend& backend);
  ServerState(const ServerState&) = delete;
  ServerState& operator=(const ServerState&) = delete;
  ~ServerState();

  const ServerOptions& options() const { return options_; }
  PromptQueue& queue() { return queue_; }
  WsHub& hub() { return hub_; }
  Backend& backend() { return backend_; }
  ServerMetrics& metrics() { return metrics_; }

  // Broadcasts {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": N}}}} with the current
  // N. Queue changes broadcast from inside the queue's lock, so status messages leave in change order.
  void broadcast_status();
  // Registers a new socket: status with sid first, then "executing" for the running node if sid owns it.
  void connect_ws(const std::string& sid, std::shared_ptr<WsConnection> conn);

  // {"type": type, "data": data} as Python json.dumps, to sid or to everyone.
  void send_json(const std::string& type, const nlohmann::ordered_json& data, const std::optional<std::string>& sid);

  // Routing state of one running prompt, set by the worker: begin_prompt registers it (a prompt id
  // already running is replaced) and returns its interrupt flag, cleared; end_prompt forgets it.
  std::shared_ptr<std::atomic<bool>> begin_prompt(const std::string& prompt_id,
                                                  std::optional<std::string> client_id);
  void set_last_node(const std::string& prompt_id, std::optional<std::string> node);
  void end_prompt(const std::string& prompt_id);
  // The client of a running prompt; nullopt when it has none or is not running.
  std::optional<std::string> client_id(const std::string& prompt_id) const;

  // POST /interrupt: with a prompt id, that prompt if it is running; without, every running prompt (one
  // running prompt, as ComfyUI, unless a coordinator runs several whole prompts at once).
  void interrupt(const std::optional<std::string>& prompt_id);

  nlohmann::ordered_json feature_flags() const;

 private:
  void send_status(int64_t queue_remaining);

  const ServerOptions options_;
  Backend& backend_;
  PromptQueue queue_;
  WsHub hub_;
  ServerMetrics metrics_;
  struct RunningPrompt {
    std::optional<std::string> client_id;
    std::optional<std::string> last_node;
    std::shared_ptr<std::atomic<bool>> interrupt;
  };
  mutable std::mutex routing_mutex_;
  std::map<std::string, RunningPrompt> running_;  // by prompt_id
};

}  // namespace netdist::server
