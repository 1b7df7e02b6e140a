// The server's Backend over netdist's own graph validator, executor and core nodes: what `netdist serve`
// runs in a single process. Thread-safety as server::Backend requires: validate/object_info from any
// thread (the registry is read-only after setup); execute and free_memory on the queue worker only.
#pragma once

#include <memory>

#include "cli/node_setup.h"
#include "graph/executor.h"
#include "graph/validate.h"
#include "server/backend.h"

namespace netdist::cli {

class GraphBackend : public server::Backend {
 public:
  explicit GraphBackend(NodeSetup setup);

  server::ValidationOutcome validate(const nlohmann::ordered_json& prompt) override;
  server::ValidationOutcome validate_stored(const server::QueueItem& item) override;
  // Runs item.validated (a prompt without one fails: it was never validated).
  Status execute(const server::QueueItem& item, const server::EmitFn& emit, std::atomic<bool>& interrupt,
                 nlohmann::ordered_json& outputs) override;
  nlohmann::ordered_json object_info() override;
  nlohmann::ordered_json system_stats_devices() override;
  void free_memory(bool unload_models, bool free_memory) override;
  // --test-step-delay-ms: sleep after every sampler step's progress event (tests: a slow server).
  void set_test_step_delay_ms(int ms) { test_step_delay_ms_ = ms; }

 private:
  static server::ValidationOutcome to_outcome(graph::ValidationResult v);

  NodeSetup setup_;
  graph::Executor executor_;
  int test_step_delay_ms_ = 0;
};

}  // namespace netdist::cli
