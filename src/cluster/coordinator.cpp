#include "cluster/coordinator.h"

#include "nodes/node_types.h"

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
    });
    if (!progress_status.is_ok()) return progress_status;
    if (!merged.is_ok()) return merged.status();
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
}

server::ValidationOutcome CoordinatorBackend::validate(const nlohmann::ordered_json& prompt) {
  server::ValidationOutcome out = inner_.validate(prompt);
  if (!out.ok) return out;
  const nlohmann::ordered_json& converted = out.prompt.is_null() ? prompt : out.prompt;
  if (auto missing = cluster_->check_prompt(converted)) {
    out.ok = false;
    out.error_body = {{"error",
                       {{"type", "prompt_no_capable_worker"},
                        {"message", "No worker can run this prompt: " + *missing},
                        {"details", *missing},
                        {"extra_info", nlohmann::ordered_json::object()}}},
                      {"node_errors", nlohmann::ordered_json::object()}};
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
// shard), 503 (stopping) or 500.
server::Response dial_in_error(const Status& s) {
  const int code = s.code() == StatusCode::kNotFound      ? 409
                   : s.code() == StatusCode::kUnavailable ? 503
                                                          : 500;
  return server::error_response(code, code == 409 ? "unknown_worker_or_ticket" : "dial_in_failed", s.message());
}

std::optional<server::Response> dial_in_routes(const std::shared_ptr<Cluster>& cluster, const server::Request& req,
                                               const std::string& path) {
  if (req.method != "POST") return std::nullopt;
  if (path == "/netdist/v1/pull") {
    auto body = server::parse_json_body(req.body);
    if (!body.is_ok()) return server::error_response(400, "invalid_pull", body.status().message());
    if (!body->is_object() || !(*body)["worker_id"].is_string() || (*body)["worker_id"].get<std::string>().empty())
      return server::error_response(400, "invalid_pull", "pull body needs {\"worker_id\": \"...\"}");
    const nlohmann::ordered_json caps = body->value("capabilities", nlohmann::ordered_json());
    if (!caps.is_null() && !caps.is_object())
      return server::error_response(400, "invalid_pull", "pull \"capabilities\" must be an object");
    const nlohmann::ordered_json url = body->value("url", nlohmann::ordered_json(""));
    server::Response r;
    r.deferred = [cluster, id = (*body)["worker_id"].get<std::string>(), caps,
                  label = url.is_string() ? url.get<std::string>() : std::string()] {
      auto got = cluster->pull(id, caps, label);
      if (!got.is_ok()) return dial_in_error(got.status());
      if (!got->has_value()) return server::empty_response(204);
      return json_reply(**got);
    };
    return r;
  }
  if (path == "/netdist/v1/progress") {
    auto body = server::parse_json_body(req.body);
    if (!body.is_ok()) return server::error_response(400, "invalid_progress", body.status().message());
    const auto& b = *body;
    if (!b.is_object() || !b.value("worker_id", nlohmann::ordered_json()).is_string() ||
        !b.value("ticket", nlohmann::ordered_json()).is_number_unsigned())
      return server::error_response(400, "invalid_progress",
                                    "progress body needs {\"worker_id\", \"ticket\", \"step\", \"steps\"}");
    const auto num = [&](const char* key) {
      const auto& v = b.value(key, nlohmann::ordered_json(0));
      return v.is_number_integer() ? v.get<int64_t>() : int64_t(0);
    };
    auto interrupt = cluster->report_progress(b["worker_id"].get<std::string>(), b["ticket"].get<uint64_t>(),
                                              num("step"), num("steps"));
    if (!interrupt.is_ok()) return dial_in_error(interrupt.status());
    return json_reply({{"interrupt", *interrupt}});
  }
  if (path == "/netdist/v1/result") {
    const auto id = req.query_value("worker_id");
    const auto ticket = req.query_value("ticket");
    const auto status = req.query_value("status");
    uint64_t t = 0;
    int code = 0;
    try {
      if (ticket) t = std::stoull(*ticket);
      if (status) code = std::stoi(*status);
    } catch (const std::exception&) {
      code = 0;
    }
    if (!id || id->empty() || !ticket || code < 100 || code > 599)
      return server::error_response(400, "invalid_result",
                                    "result needs ?worker_id=ID&ticket=N&status=HTTP_STATUS and the shard reply as body");
    Status s = cluster->report_result(*id, t, code, req.body);
    if (!s.is_ok()) return dial_in_error(s);
    return json_reply({{"ok", true}});
  }
  return std::nullopt;
}

}  // namespace

server::ExtraRoutes coordinator_routes(std::shared_ptr<Cluster> cluster, server::ExtraRoutes fallback) {
  return [cluster, fallback](const server::Request& req,
                             const std::string& path) -> std::optional<server::Response> {
    if (auto r = dial_in_routes(cluster, req, path)) return r;
    if (path == "/netdist/v1/join" && req.method == "POST") {
      auto body = server::parse_json_body(req.body);
      if (!body.is_ok() || !body->is_object() || !(*body)["url"].is_string()) {
        return server::error_response(400, "invalid_join", "join body needs {\"url\": \"http://host:port\"}");
      }
      cluster->add_worker((*body)["url"].get<std::string>());
      return server::json_response({{"ok", true}});
    }
    if (path == "/netdist/v1/cluster" && req.method == "GET") return server::json_response(cluster->status());
    if (fallback) return fallback(req, path);
    return std::nullopt;
  };
}

}  // namespace netdist::cluster
