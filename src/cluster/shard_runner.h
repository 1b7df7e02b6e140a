// Runs shards (shard.h) on this process's node registry and engine, and serves the worker half of the
// /netdist/v1 API over them:
//   GET  /netdist/v1/capabilities  {"engine_version", "device": {name, type, vram_total}, "node_classes",
//                                   "models": [{"name", "sha256", "bytes", "fetch"?}] (checkpoints; with
//                                   ShardRunnerOptions::models: ModelFetcher::capability_models), "benchmark": {"model",
//                                   "width", "height", "steps", "steps_per_second"} (embedded model,
//                                   measured on the first request; null without it)}
//   POST /netdist/v1/shard         body {"shard_id", "workflow", "inputs"?} (shard_inputs.h) → 200
//                                   application/octet-stream: a
//                                   safetensors file with "samples" [rows, C, h, w] F32 (metadata shard_id);
//                                   409 when interrupted; 400/500 with {"error": {..., "fault"}} otherwise
//                                   (task_error_reply: whose fault the failure is)
//   POST /netdist/v1/prompt        body {"task_id", "prompt_id", "prompt", "extra_data", "outputs_to_execute",
//                                   "inputs"?}: runs a whole prompt here (decode and SaveImage/PreviewImage
//                                   included; its input files installed as a shard's are)
//                                   → 200 application/json prompt_reply_to_json (also when the prompt itself
//                                   failed: its status is inside); 409 when interrupted; 400/500 with
//                                   {"error": {..., "fault"}} otherwise
//   POST /netdist/v1/tile          body {"tile_id", "workflow", "inputs"?} (tile_jobs.h): one USDU step's
//                                   tiles → 200 application/octet-stream: safetensors "tiles" uint8
//                                   [n, h, w, 3]; errors as /shard
//   GET  /netdist/v1/status        {"running": shard_id | task_id | null, "step", "steps", "shards_done",
//                                   "events_total", "model_fetch"? (model_fetch.h progress)}; with ?events_from=N also "events": the running whole
//                                   prompt's events from index N on (the reply's "events" so far, for a
//                                   coordinator that relays them live)
//   POST /netdist/v1/interrupt     interrupts the running shard or prompt; with a body {"shard_id": id},
//                                   only if that one is running
// Shards and whole prompts run one at a time per runner (callers queue on a mutex), each through one
// graph::Executor kept across them (its cache keeps loaded models and encoded prompts warm). A whole
// prompt's images stay in this worker's output/temp folders (a cached output node refers to them again)
// and travel back as bytes, exactly as written.
// Thread-safety: every member may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "cluster/group_store.h"
#include "cluster/model_fetch.h"
#include "core/status.h"
#include "graph/executor.h"
#include "graph/node_registry.h"
#include "nodes/node_env.h"
#include "nodes/step_group_binding.h"
#include "server/server_state.h"

namespace netdist::cluster {

using Json = nlohmann::ordered_json;

// Whose fault a failed task (a shard or a whole prompt) is, as its error reply states in "error"."fault":
//  - kInput ("input"): the task itself is bad and fails alike on every worker: it does not validate, or a node
//    refused what it was given (kInvalidArgument, kUnsupported, kNotFound: a latent of the wrong shape, a
//    refused checkpoint, a file the prompt names). The coordinator fails the prompt once, with the worker's
//    message, and the worker stays in service.
//  - kWorker ("worker"): anything else (out of memory, internal and libtorch errors, a crash or a transport
//    failure, which never reach a reply): the coordinator retries the task on another worker.
// A worker that knows its own environment lacks what the prompt names can only say so as kNotFound, which counts
// as the input's: with checkpoints matched by capabilities before a task is handed out, a file missing on one
// worker is the rare case and its message names the worker.
enum class TaskFault { kWorker, kInput };
TaskFault task_fault(const Status& status);
const char* task_fault_name(TaskFault fault);  // "worker", "input"
// An error reply of /netdist/v1/shard or /netdist/v1/prompt: ComfyUI's error shape
// ({"error": {"type", "message", "details", "extra_info"}, "node_errors"}) with "fault" added to "error", and
// the HTTP status: 409 for kCancelled, 400 for an input fault, 500 otherwise.
server::Response task_error_reply(const std::string& type, const Status& status);
// The fault and message an error reply states; kWorker and the whole body when it states none (an older
// worker, or not JSON).
struct TaskErrorReply {
  TaskFault fault = TaskFault::kWorker;
  std::string message;
};
TaskErrorReply parse_task_error_reply(const std::string& body);

struct ShardRunnerOptions {
  std::string device_name = "cpu";
  int test_step_delay_ms = 0;  // --test-step-delay-ms: sleep after every sampler step (tests: a slow worker)
  // Tasks run one at a time; one that arrives meanwhile waits this long for the running one, then fails
  // (unavailable naming the running task), so a stuck task cannot hold a request thread for good.
  std::chrono::milliseconds busy_timeout{600000};
  // Fetches the model files a task names that this worker lacks, before it runs (model_fetch.h); also the
  // capability reply's "models" and the status reply's "model_fetch". Null: neither.
  std::shared_ptr<ModelFetcher> models;
  // Step groups (group_store.h): how this worker meets a group's other members through the coordinator.
  GroupJoinOptions group;  // its `cancelled` is set by the runner (an interrupt ends a join)
};

// One file a whole prompt's output node wrote: its UI entry (type "output" or "temp", subfolder, filename)
// and its bytes.
struct PromptFile {
  std::string type, subfolder, filename;
  std::string bytes;
};

// What running a whole prompt gives back: the prompt's own outcome (OK, or the error of the node that
// failed), the executor's outputs {node_id: ui}, every event it emitted in order ([[type, data], ...],
// previews left out) and the files its outputs name.
struct PromptReply {
  Status status;
  Json outputs = Json::object();
  Json events = Json::array();
  std::vector<PromptFile> files;
  // Seconds the worker spent in nodes that report step progress (the samplers), for the coordinator's cost
  // model; 0 when none ran (or an older worker did not say).
  double sampling_seconds = 0;
  // A step group member's seconds inside its collectives and how many it made (group_store.h ExchangeTally),
  // for the coordinator's per-link cost; 0 outside groups.
  double exchange_seconds = 0;
  int64_t exchanges = 0;
  // Not on the wire: how many of `events` the coordinator already relayed to the client while the prompt
  // ran (all but `executed`, which waits for the files' new names).
  size_t events_relayed = 0;
  // Not on the wire: how the coordinator ran it (plan.h plan_to_json), null when not set.
  Json plan;
};

// The wire form: {"status": {"code": int, "message"}, "outputs", "events", "files": [{"type", "subfolder",
// "filename", "data": base64}], "sampling_seconds"?, "exchange_seconds"?, "exchanges"?}. from_json: corruption naming what is malformed.
Json prompt_reply_to_json(const PromptReply& reply);
Result<PromptReply> prompt_reply_from_json(const Json& json);

class ShardRunner {
 public:
  // `registry` must hold the shard nodes (nodes::register_shard_nodes) and outlive the runner.
  ShardRunner(const graph::NodeRegistry& registry, std::shared_ptr<nodes::NodeEnv> env,
              ShardRunnerOptions options);

  // Runs one shard workflow; the sampled rows, float32 CPU. kCancelled when interrupted. `inputs` (the
  // request's "inputs", null for none) are installed under the input folder first (shard_inputs.h).
  Result<at::Tensor> run(const std::string& shard_id, const Json& workflow, const Json& inputs = Json());
  // Runs a shard request body {"shard_id", "workflow", "inputs"?}; invalid_argument naming what is wrong.
  Result<at::Tensor> run_request(const Json& body);
  // POST /netdist/v1/shard: runs the request body, returns the reply described above.
  server::Response serve_shard(const std::string& request_body);
  server::Response serve_shard(const Json& body);
  // POST /netdist/v1/tile (and a dial-in task of kind "tile"): runs the tile workflow as a shard's (its
  // output node gives the tiles), returns the reply described above.
  server::Response serve_tile(const Json& body);
  void interrupt() { interrupt_ = true; }
  // Interrupts only if `id` (a shard or task id) is running now.
  void interrupt(const std::string& id);

  // Runs a whole prompt (every node, outputs_to_execute as validation picks them) with the coordinator's
  // prompt_id, so its events and PNG metadata are those of a local run. An error status is a failure to
  // run it here (invalid_argument when it does not validate, kCancelled when interrupted); a prompt that
  // ran and failed in a node is an OK result whose status says so. `inputs` (the request's "inputs", null
  // for none) are installed first as a shard's are and the prompt runs on the installed names; only the
  // hidden PROMPT (the PNG metadata) still shows the names the client wrote (ValidatedPrompt::shown_prompt).
  // `group` (a task of kind "group", group_protocol.h): the prompt runs as that member of a step group,
  // joined after validation (group_store.h join_group: a refused token, a group that did not form or a lost
  // member fail it with a Status naming why) and torn down when the prompt ends; a member other than rank 0
  // replies with an ack (no outputs, events or files).
  Result<PromptReply> run_prompt(const std::string& task_id, const std::string& prompt_id, const Json& prompt,
                                 const Json& extra_data, const Json& outputs_to_execute,
                                 const Json& inputs = Json(),
                                 const std::optional<protocol::GroupSpec>& group = std::nullopt);
  // POST /netdist/v1/prompt (and a dial-in task of kind "prompt"): runs the task body, returns the reply
  // described above.
  server::Response serve_prompt(const std::string& request_body);
  server::Response serve_prompt(const Json& body);

  Json capabilities();
  // GET /netdist/v1/status; `events_from` adds the running whole prompt's events from that index on.
  Json status(std::optional<size_t> events_from = std::nullopt) const;

  // The /netdist/v1 routes above, for server::ServerOptions::extra_routes.
  server::ExtraRoutes routes();

 private:
  const graph::NodeRegistry& registry_;
  std::shared_ptr<nodes::NodeEnv> env_;
  ShardRunnerOptions options_;
  std::timed_mutex run_mutex_;  // one task at a time; waited for at most options_.busy_timeout
  // Joins `group` for prompt `prompt_id` (group_store.h) and binds it to the prompt's samplers in `bound`.
  // `tally` gets the membership's exchange tally (its collectives' seconds, for the reply).
  Status join_prompt_group(const protocol::GroupSpec& group, const std::string& prompt_id,
                           std::optional<nodes::ScopedStepGroupBinding>& bound,
                           std::shared_ptr<ExchangeTally>& tally);
  // Takes run_mutex_ into `lock` within busy_timeout; unavailable naming the running task otherwise.
  Status lock_for_task(std::unique_lock<std::timed_mutex>& lock, const std::string& task_id);
  graph::Executor executor_;
  std::atomic<bool> interrupt_{false};
  mutable std::mutex status_mutex_;
  std::optional<std::string> running_;
  int64_t step_ = 0, steps_ = 0, shards_done_ = 0;
  Json live_events_ = Json::array();  // the running whole prompt's events so far (as its reply will have them)
  std::mutex caps_mutex_;
  std::optional<Json> caps_;
};

}  // namespace netdist::cluster
