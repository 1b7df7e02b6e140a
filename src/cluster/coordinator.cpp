#include "cluster/coordinator.h"

#include <algorithm>
#include <map>
#include <regex>

#include "cluster/protocol.h"
#include "cluster/model_tiles.h"
#include "cluster/tile_jobs.h"
#include "graph/validate.h"
#include "nodes/image_nodes.h"
#include "nodes/node_types.h"
#include "nodes/usdu_tiles.h"

namespace netdist::cluster {

namespace {

class ClusterSamplerNode : public graph::NodeImpl {
 public:
  explicit ClusterSamplerNode(std::shared_ptr<Cluster> cluster) : cluster_(std::move(cluster)) {}

  Result<std::vector<graph::Value>> run(graph::NodeContext& ctx, const graph::NodeInputs& in) override {
    auto latent = in.get_object<nodes::LatentObject>("latent_image");
    if (!latent) return Status::invalid_argument("input 'latent_image' is missing or of the wrong type");
    const int64_t rows = latent->samples.size(0);
    Status progress_status;
    int64_t reported = 0, reported_max = 0;
    Plan plan;
    auto merged = cluster_->run_sampler(ctx.prompt(), ctx.node_id(), rows, [&](int64_t value, int64_t max) {
      if (ctx.interrupted()) {
        progress_status = ctx.progress(reported, max);  // consumes the interrupt, as ComfyUI's hook does
        if (progress_status.is_ok()) progress_status = Status::cancelled("Processing interrupted");
        return false;
      }
      if (value > 0 && (value != reported || max != reported_max)) {
        reported = value;
        reported_max = max;
        progress_status = ctx.progress(value, max);
      }
      return progress_status.is_ok();
    }, &plan);
    if (!progress_status.is_ok()) return progress_status;
    if (!merged.is_ok()) return merged.status();
    cluster_->plans().record(ctx.prompt_id(), plan);
    auto out = std::make_shared<nodes::LatentObject>(*latent);
    out->samples = std::move(*merged);
    return std::vector<graph::Value>{graph::Value(std::static_pointer_cast<const graph::Object>(out))};
  }

 private:
  std::shared_ptr<Cluster> cluster_;
};

}  // namespace

void register_cluster_samplers(graph::NodeRegistry& registry, std::shared_ptr<Cluster> cluster) {
  for (const char* cls : {"KSampler", "KSamplerAdvanced"}) {
    registry.replace_factory(cls, [cluster] { return std::make_unique<ClusterSamplerNode>(cluster); });
  }
  register_cluster_usdu(registry, cluster);  // USDU steps as tile tasks (tile_jobs.h)
  register_cluster_model_tiles(registry, cluster);  // upscale-model and VAE tiles (model_tiles.h)
}

std::vector<std::string> CoordinatorBackend::checkpoints_only_on_workers(const nlohmann::ordered_json& prompt) const {
  std::vector<std::string> out;
  if (!options_.local_checkpoints) return out;
  const std::vector<std::string> here = options_.local_checkpoints();
  for (const std::string& name : prompt_requirements(prompt).checkpoints) {
    if (std::find(here.begin(), here.end(), name) == here.end()) out.push_back(name);
  }
  return out;
}

bool CoordinatorBackend::runs_concurrently(const server::QueueItem& item) {
  const bool whole = item.validated ? is_whole_prompt(item.validated->analysis) : is_whole_prompt(item.prompt);
  // A batch that a rows × CFG group will sample goes to the group whole (group_plan.h "rows").
  if (!whole && !runs_as_rows_group(item)) return false;
  const int capable = cluster_->capable_remote_workers(prompt_requirements(item.prompt));
  const bool only_on_workers = !checkpoints_only_on_workers(item.prompt).empty();
  if (capable == 0 && !only_on_workers) return false;
  // Ultimate SD Upscale, ImageUpscaleWithModel and VAEDecodeTiled run here when two or more workers can share
  // their tiles (tile_jobs.h, model_tiles.h).
  if ((has_usdu(item.prompt) || has_model_tiles(item.prompt)) && !only_on_workers && capable >= 2) return false;
  std::lock_guard<std::mutex> lock(whole_mutex_);
  whole_.insert(item.prompt_id);
  return true;
}

int CoordinatorBackend::max_concurrent_prompts() {
  if (options_.max_concurrent_prompts > 0) return options_.max_concurrent_prompts;
  return std::max(1, cluster_->remote_workers_alive());
}

Status CoordinatorBackend::execute(const server::QueueItem& item, const server::EmitFn& emit,
                                   std::atomic<bool>& interrupt, nlohmann::ordered_json& outputs) {
  bool whole;
  {
    std::lock_guard<std::mutex> lock(whole_mutex_);
    whole = whole_.erase(item.prompt_id) > 0;
  }
  if (whole) return execute_whole(item, emit, interrupt, outputs);
  const Status status = inner_.execute(item, emit, interrupt, outputs);
  // The plan of the samplers that ran on the cluster (none: everything ran here or came from the cache).
  if (std::optional<Plan> plan = cluster_->plans().take(item.prompt_id)) emit(server::kPlanEvent, plan_to_json(*plan));
  return status;
}

namespace {

using OJson = nlohmann::ordered_json;

// "ComfyUI_00012_.png" → "ComfyUI": SaveImage's name without its counter.
std::string counter_base(const std::string& filename) {
  static const std::regex re("^(.*)_([0-9]{5,})_\\.png$");
  std::smatch m;
  if (std::regex_match(filename, m, re)) return m[1].str();
  const size_t dot = filename.rfind('.');
  return dot == std::string::npos ? filename : filename.substr(0, dot);
}

// Rewrites the {filename, subfolder, type} entries of one output node's UI by `renamed`.
void rename_entries(OJson& ui, const std::map<std::string, std::pair<std::string, std::string>>& renamed) {
  if (!ui.is_object()) return;
  for (auto list = ui.begin(); list != ui.end(); ++list) {
    if (!list.value().is_array()) continue;
    for (OJson& entry : list.value()) {
      if (!entry.is_object() || !entry["filename"].is_string()) continue;
      const auto text = [&](const char* k) { return entry.contains(k) && entry[k].is_string() ? entry[k].get<std::string>() : ""; };
      const std::string key = text("type") + "/" + text("subfolder") + "/" + entry["filename"].get<std::string>();
      auto it = renamed.find(key);
      if (it == renamed.end()) continue;
      entry["filename"] = it->second.first;
      entry["subfolder"] = it->second.second;
    }
  }
}

}  // namespace

Status CoordinatorBackend::execute_whole(const server::QueueItem& item, const server::EmitFn& emit,
                                         std::atomic<bool>& interrupt, nlohmann::ordered_json& outputs) {
  // Both kinds of worker relay their events live (progress, executing, ...); `executed` comes with the reply,
  // under the coordinator's file names.
  // The worker runs an Ultimate SD Upscale node in this server's tile mode unless the prompt names one.
  server::QueueItem planned = item;
  if (has_usdu(item.prompt) && (planned.extra_data.is_null() || planned.extra_data.is_object())) {
    nlohmann::ordered_json& nd = planned.extra_data["netdist"];
    if (nd.is_null()) nd = nlohmann::ordered_json::object();
    if (nd.is_object() && !nd.contains("tiles")) nd["tiles"] = nodes::usdu_tile_mode_name(nodes::usdu_default_tile_mode());
  }
  Result<PromptReply> reply = run_planned(planned, emit, interrupt);  // whole on one worker, or a step group
  if (!reply.is_ok()) return reply.status();
  if (!reply->plan.is_null()) emit(server::kPlanEvent, reply->plan);
  // The files, in reply order; runs of one (type, subfolder, name) get consecutive counters, as one
  // SaveImage call numbers its batch.
  std::map<std::string, std::pair<std::string, std::string>> renamed;  // "type/subfolder/file" → new name
  const std::vector<PromptFile>& files = reply->files;
  for (size_t i = 0; i < files.size();) {
    const std::string base = counter_base(files[i].filename);
    size_t j = i + 1;
    while (j < files.size() && files[j].type == files[i].type && files[j].subfolder == files[i].subfolder &&
           counter_base(files[j].filename) == base)
      ++j;
    std::vector<std::string> pngs;
    for (size_t k = i; k < j; ++k) pngs.push_back(files[k].bytes);
    const std::string& dir = files[i].type == "temp" ? options_.temp_dir : options_.output_dir;
    auto saved = nodes::write_numbered_pngs(dir, files[i].subfolder, base, pngs, item.prompt_id);
    if (!saved.is_ok()) return saved.status().with_context("prompt " + item.prompt_id + " from its worker");
    for (size_t k = i; k < j; ++k) {
      renamed[files[k].type + "/" + files[k].subfolder + "/" + files[k].filename] = {
          (*saved)[k - i].filename, (*saved)[k - i].subfolder};
    }
    i = j;
  }
  outputs = reply->outputs;
  for (auto it = outputs.begin(); it != outputs.end(); ++it) rename_entries(it.value(), renamed);
  for (size_t i = 0; i < reply->events.size(); ++i) {
    OJson& event = reply->events[i];
    if (!event.is_array() || event.size() != 2 || !event[0].is_string()) continue;
    const bool executed = event[0] == "executed";
    if (i < reply->events_relayed && !executed) continue;  // the client had it live
    if (executed && event[1].is_object() && event[1].contains("output")) rename_entries(event[1]["output"], renamed);
    emit(event[0].get<std::string>(), event[1]);
  }
  return reply->status;
}

server::ValidationOutcome CoordinatorBackend::validate(const nlohmann::ordered_json& prompt) {
  server::ValidationOutcome out = inner_.validate(prompt);
  if (!out.ok) return out;
  const nlohmann::ordered_json& converted = out.prompt.is_null() ? prompt : out.prompt;
  auto refuse = [&out](const std::string& type, const std::string& message, const std::string& details) {
    out.ok = false;
    out.error_body = {{"error",
                       {{"type", type},
                        {"message", message},
                        {"details", details},
                        {"extra_info", nlohmann::ordered_json::object()}}},
                      {"node_errors", nlohmann::ordered_json::object()}};
  };
  if (auto missing = cluster_->check_prompt(converted)) {
    refuse("prompt_no_capable_worker", "No worker can run this prompt: " + *missing, *missing);
  } else if (!(out.validated ? is_whole_prompt(out.validated->analysis) : is_whole_prompt(converted))) {
    const std::vector<std::string> remote_only = checkpoints_only_on_workers(converted);
    std::string names;
    for (const std::string& name : remote_only) names += (names.empty() ? "'" : ", '") + name + "'";
    if (!names.empty()) {
      const std::string details =
          std::string(remote_only.size() == 1 ? "checkpoint " : "checkpoints ") + names +
          (remote_only.size() == 1 ? " is" : " are") +
          " only on the workers; this prompt runs split by batch rows (its batch is not 1, or not known from "
          "the prompt), and the merged rows are decoded on the coordinator, which needs the file too (put it "
          "in its models folder)";
      refuse("prompt_checkpoint_not_on_coordinator", "Cannot split this prompt: " + details, details);
    }
  }
  return out;
}

namespace {

server::Response json_reply(const nlohmann::ordered_json& value, int status = 200) {
  server::Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = value.dump();
  return r;
}

// A dial-in route's Status → 409 (unknown worker or stale ticket: the worker re-registers or drops the
// shard), 400 (a result of the wrong kind, a worker of another protocol version), 503 (stopping) or 500.
server::Response dial_in_error(const Status& s) {
  const int code = s.code() == StatusCode::kNotFound                                                   ? 409
                   : s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kUnsupported ? 400
                   : s.code() == StatusCode::kUnavailable                                              ? 503
                                                                                                       : 500;
  return server::error_response(code, code == 409                                 ? "unknown_worker_or_ticket"
                                      : s.code() == StatusCode::kUnsupported      ? "protocol_version_mismatch"
                                      : code == 400                               ? "invalid_result"
                                                                                  : "dial_in_failed",
                                s.message());
}

server::Response serve_pull(const std::shared_ptr<Cluster>& cluster, const server::Request& req) {
  auto body = server::parse_json_body(req.body);
  if (!body.is_ok()) return server::error_response(400, "invalid_pull", body.status().message());
  auto pull = protocol::pull_request_from_json(*body);
  if (!pull.is_ok()) return server::error_response(400, "invalid_pull", pull.status().message());
  server::Response r;
  r.deferred = [cluster, pull = std::move(*pull)] {
    auto got = cluster->pull(pull.worker_id, pull.capabilities, pull.url);
    if (!got.is_ok()) return dial_in_error(got.status());
    if (!got->has_value()) return server::empty_response(204);
    return json_reply(**got);
  };
  return r;
}

server::Response serve_progress(const std::shared_ptr<Cluster>& cluster, const server::Request& req) {
  auto body = server::parse_json_body(req.body);
  if (!body.is_ok()) return server::error_response(400, "invalid_progress", body.status().message());
  auto p = protocol::progress_request_from_json(*body);
  if (!p.is_ok()) return server::error_response(400, "invalid_progress", p.status().message());
  auto interrupt = cluster->report_progress(p->worker_id, p->ticket, p->step, p->steps, p->events_from, p->events);
  if (!interrupt.is_ok()) return dial_in_error(interrupt.status());
  return json_reply(protocol::to_json(protocol::ProgressReply{*interrupt}));
}

server::Response serve_result(const std::shared_ptr<Cluster>& cluster, const server::Request& req) {
  auto q = protocol::result_query_from([&](const std::string& name) { return req.query_value(name); });
  if (!q.is_ok()) return server::error_response(400, "invalid_result", q.status().message());
  Status s = cluster->report_result(q->worker_id, q->ticket, q->status, req.body,
                                    q->kind ? protocol::task_kind_name(*q->kind) : "");
  if (!s.is_ok()) return dial_in_error(s);
  return json_reply({{"ok", true}});
}

}  // namespace

server::ExtraRoutes coordinator_routes(std::shared_ptr<Cluster> cluster, server::ExtraRoutes fallback) {
  return [cluster, fallback](const server::Request& req,
                             const std::string& path) -> std::optional<server::Response> {
    using protocol::Route;
    const std::optional<Route> route = protocol::route_of(path);
    if (route && req.method == protocol::method(*route)) {
      switch (*route) {
        case Route::pull: return serve_pull(cluster, req);
        case Route::progress: return serve_progress(cluster, req);
        case Route::result: return serve_result(cluster, req);
        case Route::join: {
          auto body = server::parse_json_body(req.body);
          auto join = body.is_ok() ? protocol::join_request_from_json(*body) : Result<protocol::JoinRequest>(body.status());
          if (!join.is_ok())
            return server::error_response(400, "invalid_join", "join body needs {\"url\": \"http://host:port\"}");
          cluster->add_worker(join->url);
          return server::json_response({{"ok", true}});
        }
        case Route::cluster: return server::json_response(cluster->status());
        case Route::drain: {
          auto body = server::parse_json_body(req.body);
          auto drain = body.is_ok() ? protocol::drain_request_from_json(*body) : Result<protocol::DrainRequest>(body.status());
          if (!drain.is_ok()) return server::error_response(400, "invalid_drain", drain.status().message());
          const Status set = cluster->set_draining(drain->url, drain->drain);
          if (!set.is_ok()) return server::error_response(404, "unknown_worker", set.message());
          return server::json_response({{"ok", true}});
        }
        case Route::group_kv: return serve_group_kv(cluster, req);
        default: break;  // the worker's routes (shard_runner.h), served by `fallback`
      }
    }
    if (fallback) return fallback(req, path);
    return std::nullopt;
  };
}

}  // namespace netdist::cluster
