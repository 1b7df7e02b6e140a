#include "cluster/comfy_link.h"

#include <algorithm>

#include "cluster/comfy_worker.h"

namespace netdist::cluster {

namespace {

// A ComfyUI worker's heartbeat probes GET /system_stats; every this many heartbeats it re-reads
// GET /object_info too (node classes and checkpoints added or removed there).
constexpr int64_t kComfyCapsEvery = 5;

std::atomic<uint64_t> next_client{0};  // client ids are unique in this process

}  // namespace

std::string ComfyLink::refuses(protocol::TaskKind kind) const {
  if (kind == protocol::TaskKind::prompt) return "";
  return "is a stock ComfyUI worker (it runs only whole batch-1 prompts)";
}

Result<std::optional<Json>> ComfyLink::probe() {
  ND_ASSIGN_OR_RETURN(Json caps,
                      fetch_comfy_capabilities(comfy_base_url(url_), settings_.auth_token, std::chrono::seconds(30)));
  return std::optional<Json>(std::move(caps));
}

Result<std::optional<Json>> ComfyLink::heartbeat() {
  // Liveness = ComfyUI's own routes answer; capabilities refreshed now and then.
  if (++beats_ % kComfyCapsEvery == 0) {
    ND_ASSIGN_OR_RETURN(Json caps, fetch_comfy_capabilities(comfy_base_url(url_), settings_.auth_token,
                                                           std::max(settings_.heartbeat, std::chrono::milliseconds(5000))));
    return std::optional<Json>(std::move(caps));
  }
  ND_RETURN_IF_ERROR(probe_comfy_worker(comfy_base_url(url_), settings_.auth_token, settings_.heartbeat));
  return std::optional<Json>();
}

Result<TaskOutput> ComfyLink::run(const LinkTask& task, TaskFault*) {
  const auto* whole = std::get_if<WholePromptTask>(&task.spec);
  if (!whole) return Status::internal(url_ + " " + refuses(protocol::TaskKind::shard));
  const protocol::PromptRequest& request = whole->request;
  ComfyRun run;
  run.base_url = comfy_base_url(url_);
  run.label = url_;
  run.auth_token = settings_.auth_token;
  run.prompt_id = request.prompt_id;
  run.client_id = "netdist-" + request.prompt_id + "-" + std::to_string(++next_client);
  run.prompt = request.prompt;
  run.extra_data = request.extra_data;
  run.input_dir = settings_.input_dir;
  run.inputs = request.inputs.is_null() ? Json::object() : request.inputs;  // read once when the job was made
  run.timeout = settings_.task_timeout;
  run.cancelled = [withdrawn = task.withdrawn, halting = settings_.halting] {
    return (withdrawn && withdrawn->load()) || (halting && halting->load());
  };
  if (whole->relay)
    run.relay = [relay = whole->relay](const std::string& type, const Json& data) { relay->emit(type, data); };
  const auto start = std::chrono::steady_clock::now();
  ND_ASSIGN_OR_RETURN(PromptReply reply, run_comfy_prompt(run));
  // All it ever runs: its first finished prompt seeds its speed.
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return TaskOutput{std::move(reply), seconds};
}

}  // namespace netdist::cluster
