// The coordinator side of `netdist serve --enable-distributed`:
//  - register_cluster_samplers swaps the implementation of KSampler and KSamplerAdvanced in the
//    coordinator's registry (schemas unchanged, so /object_info, validation, history and WebSocket events
//    are those of one machine) for one that renders its batch on the cluster (Cluster::run_sampler) and
//    returns the merged latent; everything else in the graph (text encoding, decode, save) runs here.
//  - CoordinatorBackend wraps the local server::Backend and adds the capability check to validation: a
//    prompt no worker can run gets ComfyUI's 400 shape with error type "prompt_no_capable_worker" and a
//    message naming what is missing on which worker.
//  - Whole prompts: a prompt that gains nothing from row splitting (shard.h is_whole_prompt) while some
//    live worker other than this process can run all of it runs_concurrently: execute sends it whole to
//    one worker (Cluster::run_prompt; a dial-in worker pulls it as a task of kind "prompt"), writes the
//    returned PNG bytes unchanged into this process's output (or temp) folder under the names its own SaveImage would pick (nodes::write_numbered_pngs: counter
//    continued, one process-wide lock), rewrites the file names in the outputs and `executed` events, and
//    replays the worker's events in order, so history and WebSocket messages are a local run's. Up to
//    max_concurrent_prompts such prompts run at once (the option, or else the number of live workers).
//    A whole prompt whose checkpoint only workers have (this process lists their checkpoints too) goes
//    whole even while no such worker is alive: it waits for one. Every other prompt runs on the local
//    executor, one at a time; one of those naming a checkpoint this process lacks is refused at validation
//    (400 "prompt_checkpoint_not_on_coordinator").
//  - coordinator_routes: the dial-in routes over Cluster::pull / report_progress / report_result
//      POST /netdist/v1/pull {"worker_id", "capabilities"?, "url"?} → 200 task ("kind": "shard"
//           → the /netdist/v1/shard body, "prompt" → the /netdist/v1/prompt body; plus "ticket",
//           "progress_ms") | 204 after poll_timeout (a long poll, answered off the I/O threads) | 409 unknown worker: pull again with capabilities
//      POST /netdist/v1/progress {"worker_id", "ticket", "step", "steps"} → {"interrupt": bool} | 409 stale
//      POST /netdist/v1/result?worker_id=&ticket=&status=[&kind=shard|prompt] body: the /netdist/v1/shard
//           or /netdist/v1/prompt reply with that HTTP status (safetensors, prompt reply JSON, or the error
//           JSON) → {"ok": true} | 409 stale | 400 a kind other than the ticket's
//      POST /netdist/v1/group/kv (group_protocol.h): a step group's rendezvous store, behind the server's token
//    POST /netdist/v1/join {"url"} (legacy connect-back registration of a worker by URL), GET
//    /netdist/v1/cluster (Cluster::status), then `fallback` (the local runner's routes, if any).
// Thread-safety: as server::Backend; the cluster is shared and thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cluster/cluster.h"
#include "graph/node_registry.h"
#include "server/backend.h"
#include "server/server_state.h"

namespace netdist::cluster {

void register_cluster_samplers(graph::NodeRegistry& registry, std::shared_ptr<Cluster> cluster);

struct CoordinatorOptions {
  std::string output_dir = "output";
  std::string temp_dir = "temp";
  int max_concurrent_prompts = 0;  // --max-concurrent-prompts; 0 = the number of live workers
  // The checkpoint files this process has (nodes::NodeEnv::local_checkpoint_names). A prompt naming one
  // that only workers have runs whole on a worker or, when its batch would be split, is refused: the
  // merged rows are decoded here. Unset: every checkpoint counts as here.
  std::function<std::vector<std::string>()> local_checkpoints;
  // --parallel: "auto" or "off", the default of extra_data.netdist.parallel (group_plan.h). Off by default:
  // a group's events reach the client only at its end, and the planner does not yet weigh other prompts
  // waiting for the same workers (several whole prompts at once beat one group each).
  std::string parallel = "off";
};

class CoordinatorBackend : public server::Backend {
 public:
  CoordinatorBackend(server::Backend& inner, std::shared_ptr<Cluster> cluster, CoordinatorOptions options)
      : inner_(inner), cluster_(std::move(cluster)), options_(std::move(options)) {}

  server::ValidationOutcome validate(const nlohmann::ordered_json& prompt) override;
  // A restored prompt was admitted before the restart: only the inner backend's validation.
  server::ValidationOutcome validate_stored(const server::QueueItem& item) override {
    return inner_.validate_stored(item);
  }
  Status execute(const server::QueueItem& item, const server::EmitFn& emit, std::atomic<bool>& interrupt,
                 nlohmann::ordered_json& outputs) override;
  bool runs_concurrently(const server::QueueItem& item) override;
  int max_concurrent_prompts() override;
  nlohmann::ordered_json object_info() override { return inner_.object_info(); }
  nlohmann::ordered_json system_stats_devices() override { return inner_.system_stats_devices(); }
  void free_memory(bool unload_models, bool free_memory) override {
    inner_.free_memory(unload_models, free_memory);
  }

 private:
  Status execute_whole(const server::QueueItem& item, const server::EmitFn& emit, std::atomic<bool>& interrupt,
                       nlohmann::ordered_json& outputs);
  // A whole prompt as the planner chooses (coordinator_groups.cpp, group_plan.h): on a step group of idle
  // workers, or whole on one; a group that fails is re-planned whole on the workers still alive. The
  // reply's plan says which ran it.
  Result<PromptReply> run_planned(const server::QueueItem& item, const server::EmitFn& emit,
                                  std::atomic<bool>& interrupt);
  // Whether a batch prompt (not whole) is planned as a rows × CFG group now (group_plan.h plans_rows_group):
  // it is then sent whole to run_planned instead of being cut into row shards here. When the workers are
  // busy by the time it runs, run_planned runs it whole on one worker.
  bool runs_as_rows_group(const server::QueueItem& item);
  // The prompt's checkpoints that this process lacks (options_.local_checkpoints), sorted.
  std::vector<std::string> checkpoints_only_on_workers(const nlohmann::ordered_json& prompt) const;

  server::Backend& inner_;
  std::shared_ptr<Cluster> cluster_;
  const CoordinatorOptions options_;
  std::mutex whole_mutex_;
  std::set<std::string> whole_;  // prompt ids runs_concurrently chose to send whole
};

server::ExtraRoutes coordinator_routes(std::shared_ptr<Cluster> cluster, server::ExtraRoutes fallback);

// POST /netdist/v1/group/kv (group_protocol.h) on Cluster::group_kv(): 200 reply, 400 a malformed request,
// 404 a group not running here; get/wait are answered off the I/O threads (coordinator_groups.cpp).
server::Response serve_group_kv(const std::shared_ptr<Cluster>& cluster, const server::Request& req);

}  // namespace netdist::cluster
