#include "cli/graph_backend.h"

#include <chrono>
#include <thread>

#include "graph/validate.h"

namespace netdist::cli {

namespace {

class EmitSink : public graph::EventSink {
 public:
  EmitSink(const server::EmitFn& emit, int step_delay_ms) : emit_(emit), step_delay_ms_(step_delay_ms) {}
  void event(const std::string& type, graph::Json data) override {
    emit_(type, data);
    if (type == "progress" && step_delay_ms_ > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(step_delay_ms_));
  }

 private:
  const server::EmitFn& emit_;
  const int step_delay_ms_;
};

}  // namespace

GraphBackend::GraphBackend(NodeSetup setup) : setup_(std::move(setup)), executor_(*setup_.registry) {}

server::ValidationOutcome GraphBackend::validate(const nlohmann::ordered_json& prompt) {
  return to_outcome(graph::validate_prompt(prompt, *setup_.registry));
}

server::ValidationOutcome GraphBackend::to_outcome(graph::ValidationResult v) {
  server::ValidationOutcome out;
  out.ok = v.ok();
  if (!v.ok()) {
    out.error_body = v.error_body;
    return out;
  }
  out.outputs = v.validated->outputs;
  out.prompt = v.validated->prompt.json();
  out.node_errors = v.validated->node_errors;
  out.validated = std::make_shared<const graph::ValidatedPrompt>(std::move(*v.validated));
  return out;
}

server::ValidationOutcome GraphBackend::validate_stored(const server::QueueItem& item) {
  std::vector<std::string> targets;
  for (const auto& id : item.outputs_to_execute) {
    if (id.is_string()) targets.push_back(id.get<std::string>());
  }
  return to_outcome(graph::validate_prompt(item.prompt, *setup_.registry, &targets));
}

Status GraphBackend::execute(const server::QueueItem& item, const server::EmitFn& emit,
                             std::atomic<bool>& interrupt, nlohmann::ordered_json& outputs) {
  // Validated once, at POST /prompt or when the store restored it (validate_stored); never again here.
  if (item.validated == nullptr)
    return Status::invalid_argument("prompt " + item.prompt_id + " reached execution without its validated form");
  EmitSink sink(emit, test_step_delay_ms_);
  graph::ExecutionOutcome outcome =
      executor_.execute(*item.validated, item.prompt_id, item.extra_data, sink, interrupt);
  outputs = outcome.outputs;
  // Per-node timings for the history's netdist.nodes; "worker": this process (a coordinator or worker that
  // forwards them names the worker).
  nlohmann::ordered_json nodes = nlohmann::ordered_json::array();
  for (const auto& t : outcome.node_timings)
    nodes.push_back({{"node", t["node"]},
                     {"class_type", t["class_type"]},
                     {"seconds", t["seconds"]},
                     {"worker", "local"}});
  if (!nodes.empty()) emit(server::kNodesEvent, nodes);
  return outcome.status;
}

nlohmann::ordered_json GraphBackend::object_info() { return setup_.registry->object_info(); }

nlohmann::ordered_json GraphBackend::system_stats_devices() {
  const std::string device = setup_.env->options().engine.device;
  auto info = device_memory_info(device);
  if (!info.is_ok()) {
    return nlohmann::ordered_json::array({{{"name", device},
                                           {"type", "cpu"},
                                           {"index", nullptr},
                                           {"vram_total", 0},
                                           {"vram_free", 0},
                                           {"torch_vram_total", 0},
                                           {"torch_vram_free", 0}}});
  }
  nlohmann::ordered_json d = {{"name", info->name},
                              {"type", info->type},
                              {"index", nullptr},
                              {"vram_total", info->vram_total},
                              {"vram_free", info->vram_free},
                              {"torch_vram_total", info->torch_vram_total},
                              {"torch_vram_free", info->torch_vram_free}};
  if (info->index >= 0) d["index"] = info->index;
  return nlohmann::ordered_json::array({d});
}

void GraphBackend::free_memory(bool unload_models, bool free_memory) {
  if (free_memory) executor_.reset();
  if (unload_models) setup_.env->unload_models();
  free_device_memory(setup_.env->options().engine.device, unload_models);
}

}  // namespace netdist::cli
