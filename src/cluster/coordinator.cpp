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

server::ExtraRoutes coordinator_routes(std::shared_ptr<Cluster> cluster, server::ExtraRoutes fallback) {
  return [cluster, fallback](const server::Request& req,
                             const std::string& path) -> std::optional<server::Response> {
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
