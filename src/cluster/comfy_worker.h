// A stock ComfyUI server as a whole-prompt worker of the coordinator (`--workers comfy+http://host:port`).
// Only ComfyUI's own API is used, never a /netdist route:
//   capabilities  GET /object_info (node classes; checkpoint names from CheckpointLoaderSimple's
//                 ckpt_name list, in the old [[names]] and the V3 ["COMBO", {"options"}] shapes) and
//                 GET /system_stats (device name and type, VRAM, ComfyUI version), turned into the
//                 /netdist/v1/capabilities shape (shard.h missing_requirements reads it): models carry a
//                 name and "sha256": null, so checkpoints match by name only; "kind": "comfy".
//   running       LoadImage/LoadImageMask files are uploaded first (POST /upload/image, type input,
//                 content-addressed names "netdist-<sha256[0:16]><ext>" at the top of the input folder) and
//                 the prompt's "image" values point at them; the events of WS /ws?clientId=<per-task id>
//                 are followed (opened before POST /prompt {"prompt", "client_id", "extra_data"}), with
//                 GET /history/{id} polled as a fallback (about every second; every 250 ms without a
//                 socket), then each output file is fetched with GET /view?filename=&subfolder=&type=.
//   stopping      a cancelled run is withdrawn from the worker: POST /queue {"delete": [id]} while it is
//                 pending there, POST /interrupt {"prompt_id": id} while it runs (never a bare interrupt of
//                 somebody else's prompt).
// Events the worker sends for the prompt are relayed as they come, under the coordinator's prompt id
// (execution_start, execution_cached, executing with a node, progress, progress_state, binary preview
// frames as server::kPreviewEvent); "executed" events come back in PromptReply::events, in order, for the
// coordinator to rename their files; execution_success and executing(null) are left to the coordinator.
//
// Whose fault an error is (the rule the cluster's failover follows):
//  - the PROMPT's: ComfyUI refuses it at POST /prompt with 400 (validation; ComfyUI's error message and
//    node_errors are reported), or a node fails with an execution_error that is not a worker fault below.
//    Such a run returns an OK Result whose PromptReply::status is the error (invalid_argument for a
//    refusal, internal for a node failure, whose execution_error event is in PromptReply::events): the
//    prompt fails once, with ComfyUI's message, and is not retried.
//  - the WORKER's: anything on the transport (refused, reset, timed out), any other HTTP status, a reply
//    that is not what ComfyUI sends, the prompt vanishing from the worker's queue and history, an
//    execution_interrupted the coordinator did not ask for, and an execution_error whose exception type or
//    message names an exhausted or broken device (comfy_error_is_worker_fault). These return an error
//    Status (unavailable): the cluster puts the prompt back and another worker runs it.
//  - a run past `timeout` is the worker's (unavailable, naming the timeout and the remote prompt id); a run
//    the coordinator cancelled is kCancelled.
// Thread-safety: free functions, reentrant; a ComfyEventStream is used by one thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cluster/shard_runner.h"
#include "core/status.h"

namespace netdist::cluster {

inline constexpr const char* kComfyUrlPrefix = "comfy+";

// True for "comfy+http://..." worker URLs.
bool is_comfy_url(const std::string& url);
// "comfy+http://h:p" → "http://h:p" (other URLs unchanged).
std::string comfy_base_url(const std::string& url);

// Capabilities from an /object_info and a /system_stats reply; corruption naming what is malformed.
Result<Json> comfy_capabilities_from(const Json& object_info, const Json& system_stats);
// GET /object_info and GET /system_stats of `base_url` ("http://..."), then comfy_capabilities_from.
Result<Json> fetch_comfy_capabilities(const std::string& base_url, const std::string& auth_token,
                                      std::chrono::milliseconds timeout);
// GET /system_stats answered 200 with a JSON object.
Status probe_comfy_worker(const std::string& base_url, const std::string& auth_token,
                          std::chrono::milliseconds timeout);

// True when an execution_error payload ({"exception_type", "exception_message", ...}) names a fault of the
// worker rather than of the prompt: out of (device or host) memory, a CUDA/HIP/cuDNN/cuBLAS runtime error,
// a device-side assert, no space left on the device.
bool comfy_error_is_worker_fault(const Json& execution_error);

// One WebSocket message: a JSON text frame {"type", "data"}, or a binary frame (`binary` holds its bytes).
struct ComfyMessage {
  std::string type;
  Json data;
  bool is_binary = false;
  std::string binary;
};

// A client of ComfyUI's /ws?clientId=ID.
class ComfyEventStream {
 public:
  // unavailable naming the URL when the connection or the handshake fails within `timeout`.
  static Result<std::unique_ptr<ComfyEventStream>> open(const std::string& base_url, const std::string& client_id,
                                                        const std::string& auth_token,
                                                        std::chrono::milliseconds timeout);
  ~ComfyEventStream();
  // The next message, waiting up to `wait`: nullopt when none came; unavailable once the socket closed.
  Result<std::optional<ComfyMessage>> next(std::chrono::milliseconds wait);

 private:
  struct Impl;
  explicit ComfyEventStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct ComfyRun {
  std::string base_url;    // "http://host:port" (the worker URL without "comfy+")
  std::string label;       // how errors name the worker (its --workers URL)
  std::string auth_token;  // sent as "Authorization: Bearer"
  std::string prompt_id;   // the coordinator's; relayed events and replies carry it
  std::string client_id;   // unique per attempt: the worker routes the prompt's events to it
  Json prompt, extra_data;
  std::string input_dir;   // where LoadImage files are read from, unless `inputs` has them
  Json inputs;             // those files already read (collect_shard_inputs); null: read from input_dir
  std::chrono::milliseconds timeout{600000};  // the whole run, queueing on the worker included
  std::function<bool()> cancelled;            // polled about every 100 ms; true withdraws the run
  std::function<void(const std::string& type, const Json& data)> relay;  // live events (may be empty)
};

// Runs `run.prompt` on the ComfyUI worker; see the header comment for what comes back.
Result<PromptReply> run_comfy_prompt(const ComfyRun& run);

}  // namespace netdist::cluster
