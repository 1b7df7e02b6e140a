// CoordinatorBackend's step groups: the plan of a whole prompt (group_plan.h), its run on a group with the
// whole-prompt fallback, and the group/kv route the members meet through.
#include "cluster/coordinator.h"
#include "cluster/group_plan.h"
#include "core/log.h"
#include "server/http_types.h"

namespace netdist::cluster {

Result<PromptReply> CoordinatorBackend::run_planned(const server::QueueItem& item, const server::EmitFn& emit,
                                                    std::atomic<bool>& interrupt) {
  const auto keep_going = [&] { return !interrupt.load(); };
  ND_ASSIGN_OR_RETURN(std::string parallel, requested_parallel(item.extra_data, options_.parallel));
  const Cluster::GroupCandidates idle = cluster_->group_candidates(item.prompt);
  const ParallelChoice choice =
      choose_parallel(item.prompt, parallel, int(idle.urls.size()), idle.seconds_per_unit, idle.exchange_s);
  if (choice.mode != "whole") {
    Result<PromptReply> grouped =
        cluster_->run_group(item.prompt_id, item.prompt, item.extra_data, item.outputs_to_execute,
                            choice.mode, choice.size, choice.predicted_s, keep_going);
    if (grouped.is_ok() || grouped.status().code() == StatusCode::kCancelled || interrupt.load())
      return grouped;
    // Re-planned: the prompt runs whole on a live worker (a dead member is no longer one), nothing lost.
    log::warn("prompt {}: step group ({}) failed, running it whole: {}", item.prompt_id, choice.mode,
              grouped.status().to_string());
  }
  return cluster_->run_prompt(
      item.prompt_id, item.prompt, item.extra_data, item.outputs_to_execute, keep_going,
      [&emit](const std::string& type, const nlohmann::ordered_json& data) { emit(type, data); });
}

bool CoordinatorBackend::runs_as_rows_group(const server::QueueItem& item) {
  Result<std::string> parallel = requested_parallel(item.extra_data, options_.parallel);
  if (!parallel.is_ok() || (*parallel != "rows" && *parallel != "auto")) return false;
  const Cluster::GroupCandidates idle = cluster_->group_candidates(item.prompt);
  return plans_rows_group(item.prompt, *parallel, int(idle.urls.size()), idle.seconds_per_unit, idle.exchange_s);
}

server::Response serve_group_kv(const std::shared_ptr<Cluster>& cluster, const server::Request& req) {
  auto body = server::parse_json_body(req.body);
  if (!body.is_ok()) return server::error_response(400, "invalid_group_kv", body.status().message());
  auto r = protocol::group_kv_request_from_json(*body);
  if (!r.is_ok()) return server::error_response(400, "invalid_group_kv", r.status().message());
  const auto answer = [cluster](const protocol::GroupKvRequest& kv) {
    Result<protocol::Json> reply = cluster->group_kv().apply(kv);
    if (!reply.is_ok()) {
      const int code = reply.status().code() == StatusCode::kNotFound ? 404 : 400;
      return server::error_response(code, code == 404 ? "group_not_running" : "invalid_group_kv",
                                    reply.status().message());
    }
    return server::json_response(*reply);
  };
  if (r->wait_ms <= 0) return answer(*r);
  server::Response deferred;  // a long poll: answered off the I/O threads
  deferred.deferred = [answer, kv = std::move(*r)] { return answer(kv); };
  return deferred;
}

}  // namespace netdist::cluster
