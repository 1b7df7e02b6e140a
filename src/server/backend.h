// The interface the server drives: validation, execution, node metadata and device figures. The server
// owns queueing, history, WebSocket routing and HTTP; a Backend owns the graph (the real one wraps the
// graph validator and executor; tests use FakeBackend in fake_backend_test_util.h).
// Thread-safety: validate, validate_stored, object_info, system_stats_devices may be called from any HTTP thread at any
// time, also while execute runs on the worker thread. runs_concurrently, max_concurrent_prompts and
// free_memory are called only from the single queue worker thread. execute runs one prompt at a time on
// the queue worker thread, except for prompts for which runs_concurrently returned true: those run on
// threads of their own, several at once (up to max_concurrent_prompts), alongside the one-at-a-time
// prompt.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"

namespace netdist::graph {
struct ValidatedPrompt;
}

namespace netdist::server {

// One accepted prompt, as ComfyUI's queue tuple (number, prompt_id, prompt, extra_data, outputs_to_execute).
struct QueueItem {
  nlohmann::ordered_json number;              // int from the server counter, or float when the client gave "number"
  std::string prompt_id;
  nlohmann::ordered_json prompt;              // the converted prompt (ValidationOutcome::prompt)
  nlohmann::ordered_json extra_data;          // client's extra_data plus "client_id", sensitive keys removed
  nlohmann::ordered_json outputs_to_execute;  // array of output node ids (strings)
  nlohmann::ordered_json sensitive;           // keys removed from extra_data (auth_token_comfy_org, ...)
  // The validated form (graph/validate.h: prompt, outputs, graph analysis) the prompt was accepted with, or,
  // for a prompt restored from the store, validated with when it was loaded; execution runs it as is and
  // never validates again. Null from a backend without netdist's graph (tests' FakeBackend). Not persisted:
  // the store keeps the JSON fields above.
  std::shared_ptr<const graph::ValidatedPrompt> validated;
  // Set (the 400 body) when a prompt restored from the store no longer validates with this server's nodes:
  // it is not executed and ends in history with that error.
  nlohmann::ordered_json restore_error;

  // [number, prompt_id, prompt, extra_data, outputs_to_execute], as in GET /queue and history "prompt".
  nlohmann::ordered_json to_json() const;
};

struct ValidationOutcome {
  bool ok = false;
  nlohmann::ordered_json error_body;        // {"error": {type, message, details, extra_info}, "node_errors": {...}} when !ok
  std::vector<std::string> outputs;         // output node ids to execute when ok
  nlohmann::ordered_json prompt;            // converted prompt (widget values converted); null = use the submitted one
  nlohmann::ordered_json node_errors = nlohmann::ordered_json::object();  // errors of dropped outputs when ok
  // The validated form when ok (QueueItem::validated); null from a backend without netdist's graph.
  std::shared_ptr<const graph::ValidatedPrompt> validated;
};

// Event sink handed to execute. `type` is a ComfyUI WebSocket message type and `data` its payload, exactly
// as ComfyUI sends it (execution_start, execution_cached, executing, progress, progress_state, executed,
// execution_success, execution_error, execution_interrupted). The server adds "timestamp" to the history
// events (execution_*) when absent, records them in the history status messages and routes every event to
// the prompt's client as ComfyUI does. Type kPreviewEvent with data {"format": "JPEG"|"PNG",
// "image": <nlohmann binary>} becomes a binary preview frame. Safe to call from any thread.
// Type kPlanEvent (netdist's own, never sent to WebSocket clients): `data` is how a distributing backend ran
// the prompt ({"mode", "workers", "predicted_s"}, docs/api.md); the last one becomes the history entry's
// "netdist": {"plan": data}. Type kNodesEvent (netdist's own, history only): `data` is an array of
// {"node", "class_type", "seconds", "worker"} for nodes that ran; each one is appended to the history entry's
// "netdist": {"nodes": [...]} (issue #21).
using EmitFn = std::function<void(const std::string& type, const nlohmann::ordered_json& data)>;
inline constexpr const char* kPreviewEvent = "preview_image";
inline constexpr const char* kPlanEvent = "netdist_plan";
inline constexpr const char* kNodesEvent = "netdist_nodes";

class Backend {
 public:
  virtual ~Backend();

  // POST /prompt: validates a submitted prompt (every output node).
  virtual ValidationOutcome validate(const nlohmann::ordered_json& prompt) = 0;
  // A prompt restored from the store after a restart (the node set may have changed since it was accepted):
  // validated again, limited to its outputs_to_execute, without the admission checks of validate() (it was
  // admitted already). The default validates item.prompt with validate().
  virtual ValidationOutcome validate_stored(const QueueItem& item) { return validate(item.prompt); }

  // Runs a validated prompt (item.validated, never validated again here). Emits events through `emit`, fills `outputs` with {node_id: ui_json} for every
  // output node that produced (or had cached) a UI result, and returns OK, kCancelled when `interrupt` was
  // seen, or the error. A backend that fails without emitting execution_error/execution_interrupted gets
  // one synthesized by the server from the Status. Must poll `interrupt` between nodes and between steps.
  virtual Status execute(const QueueItem& item, const EmitFn& emit, std::atomic<bool>& interrupt,
                         nlohmann::ordered_json& outputs) = 0;

  // {class_name: info} for every node class, ComfyUI's GET /object_info shape.
  virtual nlohmann::ordered_json object_info() = 0;

  // GET /system_stats "devices": [{"name", "type", "index", "vram_total", "vram_free", "torch_vram_total",
  // "torch_vram_free"}].
  virtual nlohmann::ordered_json system_stats_devices() = 0;

  // POST /free, honoured by the worker between prompts.
  virtual void free_memory(bool unload_models, bool free_memory) = 0;

  // True when `item` may run on its own thread, concurrently with other prompts (a coordinator sends a
  // batch-1 prompt whole to a worker). The default, a single-machine server, runs every prompt in turn.
  virtual bool runs_concurrently(const QueueItem& item) {
    (void)item;
    return false;
  }
  // How many concurrent prompts may run at once (checked before the next prompt is taken); >= 1.
  virtual int max_concurrent_prompts() { return 1; }
};

}  // namespace netdist::server
