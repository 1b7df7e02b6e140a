// Upscale-model and VAE tiles as tile tasks: the tile workflow and the coordinator's runner.
#include "cluster/model_tiles.h"

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <set>

namespace netdist::cluster {

namespace {

bool model_tiles_is_link(const Json& v) {
  return v.is_array() && v.size() == 2 && v[0].is_string() && v[1].is_number_integer();
}

// The node's model input's upstream (the node itself excluded), or invalid_argument naming the node.
Result<std::set<std::string>> model_tiles_upstream(const Json& prompt, const std::string& node_id,
                                                   const nodes::ModelTileKind& kind) {
  if (!prompt.is_object() || !prompt.contains(node_id) || !prompt[node_id].is_object())
    return Status::invalid_argument("node " + node_id + " is not in the prompt");
  const std::string cls = prompt[node_id].value("class_type", "");
  if (cls != kind.node_class)
    return Status::invalid_argument("node " + node_id + " (" + cls + ") is not " + kind.node_class);
  const Json& inputs = prompt[node_id].value("inputs", Json::object());
  if (!inputs.is_object() || !inputs.contains(kind.model_input) || !model_tiles_is_link(inputs[kind.model_input]))
    return Status::invalid_argument("node " + node_id + " (" + cls + "): input " + kind.model_input +
                                    " is not a link");
  std::set<std::string> seen;
  std::deque<std::string> todo = {inputs[kind.model_input][0].get<std::string>()};
  while (!todo.empty()) {
    const std::string id = todo.front();
    todo.pop_front();
    if (!seen.insert(id).second) continue;
    if (!prompt.contains(id) || !prompt[id].is_object())
      return Status::invalid_argument("node " + id + " is linked to but not in the prompt");
    const Json& in = prompt[id].value("inputs", Json::object());
    if (!in.is_object()) continue;
    for (auto it = in.begin(); it != in.end(); ++it)
      if (model_tiles_is_link(it.value())) todo.push_back(it.value()[0].get<std::string>());
  }
  if (seen.count(node_id)) return Status::invalid_argument("node " + node_id + " depends on itself");
  return seen;
}

// The model-tile part of each running prompt's plan, by prompt id (the last few).
struct ModelTilePlans {
  std::mutex mutex;
  std::map<std::string, Json> by_prompt;
  std::deque<std::string> order;
};
ModelTilePlans& model_tile_plans() {
  static ModelTilePlans plans;
  return plans;
}

void model_tiles_record(Cluster& cluster, const std::string& prompt_id, const std::string& node_id,
                        const nodes::ModelTileKind& kind, const std::vector<std::string>& workers) {
  Plan record{"tiles", {}, 0, Json::object()};
  Json per_worker = Json::object();
  for (const std::string& w : workers) {
    if (std::find(record.workers.begin(), record.workers.end(), w) == record.workers.end())
      record.workers.push_back(w);
    per_worker[w] = per_worker.value(w, int64_t{0}) + 1;
  }
  ModelTilePlans& p = model_tile_plans();
  {
    std::lock_guard<std::mutex> lock(p.mutex);
    if (!p.by_prompt.count(prompt_id)) {
      p.order.push_back(prompt_id);
      while (p.order.size() > 64) {
        p.by_prompt.erase(p.order.front());
        p.order.pop_front();
      }
    }
    Json& nodes = p.by_prompt[prompt_id];
    if (!nodes.is_object()) nodes = Json::object();
    // A node's tiles may come in several passes (the upscale's out-of-memory halving): the last one counts.
    nodes[node_id] = Json{{"class", kind.node_class},
                          {"tiles", workers.size()},
                          {"per_worker", std::move(per_worker)},
                          {"tile_workers", workers}};
    record.detail["model_tiles"] = nodes;
  }
  cluster.plans().record(prompt_id, record);
}

Result<std::vector<at::Tensor>> model_tiles_on_cluster(Cluster& cluster, graph::NodeContext& ctx,
                                                       const nodes::ModelTileKind& kind,
                                                       std::vector<at::Tensor> tiles) {
  Cluster::TileTasks tasks;
  tasks.requirements = model_tile_requirements(ctx.prompt(), ctx.node_id(), kind);
  for (const at::Tensor& t : tiles) {
    ND_ASSIGN_OR_RETURN(Json workflow,
                        model_tile_workflow(ctx.prompt(), ctx.node_id(), kind, nodes::model_tile_job(t)));
    tasks.workflows.push_back(std::move(workflow));
    // No cost-model units: a tile is not a sampler step (cost_model.h would learn a wrong speed from it); with
    // none, any idle capable worker takes the next tile.
    tasks.specs.push_back({Json(), int64_t{1}, 0.0});
  }
  const int64_t total = int64_t(tiles.size());
  tiles.clear();
  Status progress_status;
  int64_t reported = -1;
  auto ran = cluster.run_tile_tasks(ctx.prompt(), ctx.node_id(), std::move(tasks), [&](int64_t done, int64_t) {
    if (ctx.interrupted()) {  // consumes the interrupt, as ComfyUI's hook does
      progress_status = ctx.progress(done, total);
      if (progress_status.is_ok()) progress_status = Status::cancelled("Processing interrupted");
      return false;
    }
    if (done != reported) {  // one `progress` event per finished tile
      reported = done;
      progress_status = ctx.progress(done, total);
    }
    return progress_status.is_ok();
  });
  if (!progress_status.is_ok()) return progress_status;
  if (!ran.is_ok()) return ran.status();
  if (reported != total) ND_RETURN_IF_ERROR(ctx.progress(total, total));
  model_tiles_record(cluster, ctx.prompt_id(), ctx.node_id(), kind, ran->workers);
  return std::move(ran->tiles);
}

}  // namespace

bool has_model_tiles(const Json& prompt) {
  if (!prompt.is_object()) return false;
  for (auto it = prompt.begin(); it != prompt.end(); ++it)
    if (it.value().is_object() && nodes::model_tile_kind(it.value().value("class_type", ""))) return true;
  return false;
}

Result<Json> model_tile_workflow(const Json& prompt, const std::string& node_id, const nodes::ModelTileKind& kind,
                                 const std::string& tile_job) {
  ND_ASSIGN_OR_RETURN(std::set<std::string> keep, model_tiles_upstream(prompt, node_id, kind));
  Json out = Json::object();
  for (const std::string& id : keep)
    out[id] = Json{{"class_type", prompt[id]["class_type"]}, {"inputs", prompt[id].value("inputs", Json::object())}};
  out[kShardOutputId] = Json{{"class_type", kind.tile_class},
                             {"inputs",
                              {{kind.model_input, prompt[node_id]["inputs"][kind.model_input]},
                               {"tile_job", tile_job}}}};
  return out;
}

Requirements model_tile_requirements(const Json& prompt, const std::string& node_id,
                                     const nodes::ModelTileKind& kind) {
  Requirements req;
  req.node_classes.insert(kind.tile_class);
  auto keep = model_tiles_upstream(prompt, node_id, kind);
  if (keep.is_ok()) add_requirements(prompt, *keep, req);
  return req;
}

nodes::ModelTileRunnerFor cluster_model_tile_runner(std::weak_ptr<Cluster> weak) {
  return [weak](graph::NodeContext& ctx, const nodes::ModelTileKind& kind) -> std::optional<TileRunner> {
    std::shared_ptr<Cluster> cluster = weak.lock();
    if (!cluster || !model_tiles_upstream(ctx.prompt(), ctx.node_id(), kind).is_ok()) return std::nullopt;
    if (cluster->capable_remote_workers(model_tile_requirements(ctx.prompt(), ctx.node_id(), kind)) < 1)
      return std::nullopt;
    graph::NodeContext* context = &ctx;  // the runner is called while the node runs
    return TileRunner([cluster, context, kind](std::vector<at::Tensor> tiles) {
      return model_tiles_on_cluster(*cluster, *context, kind, std::move(tiles));
    });
  };
}

void register_cluster_model_tiles(graph::NodeRegistry& registry, std::shared_ptr<Cluster> cluster) {
  for (const char* cls : {"ImageUpscaleWithModel", "VAEDecodeTiled"}) {
    const nodes::ModelTileKind* kind = nodes::model_tile_kind(cls);
    if (!kind || !registry.find(cls)) continue;
    registry.replace_factory(cls, nodes::model_tile_node_factory(*kind, cluster_model_tile_runner(cluster)));
  }
}

}  // namespace netdist::cluster
