// The coordinator side of `netdist serve --enable-distributed`:
//  - register_cluster_samplers swaps the implementation of KSampler and KSamplerAdvanced in the
//    coordinator's registry (schemas unchanged, so /object_info, validation, history and WebSocket events
//    are those of one machine) for one that renders its batch on the cluster (Cluster::run_sampler) and
//    returns the merged latent; everything else in the graph (text encoding, decode, save) runs here.
//  - CoordinatorBackend wraps the local server::Backend and adds the capability check to validation: a
//    prompt no worker can run gets ComfyUI's 400 shape with error type "prompt_no_capable_worker" and a
//    message naming what is missing on which worker.
//  - coordinator_routes: the dial-in routes over Cluster::pull / report_progress / report_result
//      POST /netdist/v1/pull {"worker_id", "capabilities"?, "url"?} → 200 shard request (the
//           /netdist/v1/shard body plus "ticket", "progress_ms") | 204 after poll_timeout (a long poll,
//           answered off the I/O threads) | 409 unknown worker: pull again with capabilities
//      POST /netdist/v1/progress {"worker_id", "ticket", "step", "steps"} → {"interrupt": bool} | 409 stale
//      POST /netdist/v1/result?worker_id=&ticket=&status= body: the /netdist/v1/shard reply with that
//           HTTP status (safetensors, or the error JSON) → {"ok": true} | 409 stale
//    POST /netdist/v1/join {"url"} (legacy connect-back registration of a worker by URL), GET
//    /netdist/v1/cluster (Cluster::status), then `fallback` (the local runner's routes, if any).
// Thread-safety: as server::Backend; the cluster is shared and thread-safe.
#pragma once

#include <memory>

#include "cluster/cluster.h"
#include "graph/node_registry.h"
#include "server/backend.h"
#include "server/server_state.h"

namespace netdist::cluster {

void register_cluster_samplers(graph::NodeRegistry& registry, std::shared_ptr<Cluster> cluster);

class CoordinatorBackend : public server::Backend {
 public:
  CoordinatorBackend(server::Backend& inner, std::shared_ptr<Cluster> cluster)
      : inner_(inner), cluster_(std::move(cluster)) {}

  server::ValidationOutcome validate(const nlohmann::ordered_json& prompt) override;
  Status execute(const server::QueueItem& item, const server::EmitFn& emit, std::atomic<bool>& interrupt,
                 nlohmann::ordered_json& outputs) override {
    return inner_.execute(item, emit, interrupt, outputs);
  }
  nlohmann::ordered_json object_info() override { return inner_.object_info(); }
  nlohmann::ordered_json system_stats_devices() override { return inner_.system_stats_devices(); }
  void free_memory(bool unload_models, bool free_memory) override {
    inner_.free_memory(unload_models, free_memory);
  }

 private:
  server::Backend& inner_;
  std::shared_ptr<Cluster> cluster_;
};

server::ExtraRoutes coordinator_routes(std::shared_ptr<Cluster> cluster, server::ExtraRoutes fallback);

}  // namespace netdist::cluster
