// Tile tasks: the tile workflow, the coordinator's USDU wave runner, and Cluster::run_tiles (a Cluster source
// file like jobs.cpp: it uses cluster_state.h).
#include "cluster/tile_jobs.h"

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <set>

#include "cluster/cluster_state.h"
#include "cluster/shard_inputs.h"
#include "nodes/usdu_tile_node.h"

namespace netdist::cluster {

namespace {

// The USDU node's inputs whose upstream a tile task does not need (the pixels travel in its tile job).
bool tile_skipped_input(const std::string& name) {
  return name == "image" || name == "upscaled_image" || name == "upscale_model" || name == "upscale_by";
}

bool tile_is_link(const Json& v) {
  return v.is_array() && v.size() == 2 && v[0].is_string() && v[1].is_number_integer();
}

// The USDU node's upstream through its kept inputs (the node itself excluded), or invalid_argument.
Result<std::set<std::string>> tile_upstream(const Json& prompt, const std::string& usdu_id) {
  if (!prompt.contains(usdu_id)) return Status::invalid_argument("node " + usdu_id + " is not in the prompt");
  const std::string cls = prompt[usdu_id].value("class_type", "");
  if (!is_usdu_class(cls))
    return Status::invalid_argument("node " + usdu_id + " (" + cls + ") is not an Ultimate SD Upscale node");
  std::set<std::string> seen;
  std::deque<std::string> todo;
  const Json& inputs = prompt[usdu_id].value("inputs", Json::object());
  for (auto it = inputs.begin(); it != inputs.end(); ++it)
    if (!tile_skipped_input(it.key()) && tile_is_link(it.value()))
      todo.push_back(it.value()[0].get<std::string>());
  while (!todo.empty()) {
    const std::string id = todo.front();
    todo.pop_front();
    if (!seen.insert(id).second) continue;
    if (!prompt.contains(id) || !prompt[id].is_object())
      return Status::invalid_argument("node " + id + " is linked to but not in the prompt");
    const Json& in = prompt[id].value("inputs", Json::object());
    for (auto it = in.begin(); it != in.end(); ++it)
      if (tile_is_link(it.value())) todo.push_back(it.value()[0].get<std::string>());
  }
  if (seen.count(usdu_id)) return Status::invalid_argument("node " + usdu_id + " depends on itself");
  return seen;
}

// The plans of the USDU jobs run here, by prompt id (the last few).
struct TilePlans {
  std::mutex mutex;
  std::map<std::string, Json> by_prompt;
  std::deque<std::string> order;
};
TilePlans& tile_plans() {
  static TilePlans plans;
  return plans;
}

// Keeps the tile plan of `prompt_id` up to date after a wave, and hands it to the cluster's plan log for the
// history entry (plan.h: mode "tiles", the workers that redrew steps, the grid, waves and step → worker).
void tile_plan_record(Cluster* cluster, const std::string& prompt_id, const nodes::UsduWave& wave,
                      const std::vector<std::string>& workers) {
  TilePlans& p = tile_plans();
  std::lock_guard<std::mutex> lock(p.mutex);
  if (wave.wave_index == 0 || !p.by_prompt.count(prompt_id)) {
    if (!p.by_prompt.count(prompt_id)) p.order.push_back(prompt_id);
    p.by_prompt[prompt_id] = Json{{"mode", "tiles"},
                                  {"tiles", wave.mode},
                                  {"grid",
                                   {{"rows", wave.canvas.rows},
                                    {"cols", wave.canvas.cols},
                                    {"canvas", {wave.canvas.width, wave.canvas.height}}}},
                                  {"steps", wave.tiles_total},
                                  {"waves", wave.wave_count},
                                  {"workers", Json::object()}};
    while (p.order.size() > 64) {
      p.by_prompt.erase(p.order.front());
      p.order.pop_front();
    }
  }
  Json& plan = p.by_prompt[prompt_id];
  for (size_t k = 0; k < wave.step_ids.size(); ++k)
    plan["workers"][std::to_string(wave.step_ids[k])] = k < workers.size() ? workers[k] : "local";
  if (!cluster) return;
  Plan record{"tiles", {}, 0, Json::object()};
  for (const std::string& w : workers) {
    if (std::find(record.workers.begin(), record.workers.end(), w) == record.workers.end())
      record.workers.push_back(w);
  }
  for (const char* key : {"tiles", "grid", "steps", "waves"}) record.detail[key] = plan[key];
  record.detail["step_workers"] = plan["workers"];
  cluster->plans().record(prompt_id, record);
}

// Tile units for the cost model (prompt_cost.h: one sampler step of a 64×64 image).
double tile_units(const nodes::UsduWave& wave, size_t k) {
  const std::vector<nodes::PilImage>& tiles = wave.inputs[k];
  if (tiles.empty()) return 0;
  return double(wave.sampling.request.steps) * double(tiles.size()) * double(tiles[0].width) *
         double(tiles[0].height) / (64.0 * 64.0);
}

Result<std::vector<std::vector<nodes::PilImage>>> run_wave_on_cluster(Cluster& cluster,
                                                                      graph::NodeContext& ctx,
                                                                      const nodes::UsduWave& wave) {
  std::vector<Cluster::TileSpec> specs;
  for (size_t k = 0; k < wave.step_ids.size(); ++k)
    specs.push_back({nodes::usdu_tile_job(wave, k), int64_t(wave.inputs[k].size()), tile_units(wave, k)});
  Status progress_status;
  int64_t reported = -1;
  auto ran = cluster.run_tiles(ctx.prompt(), ctx.node_id(), specs, [&](int64_t done, int64_t) {
    if (ctx.interrupted()) {  // consumes the interrupt, as ComfyUI's hook does
      progress_status = ctx.progress(wave.tiles_done + done, wave.tiles_total);
      if (progress_status.is_ok()) progress_status = Status::cancelled("Processing interrupted");
      return false;
    }
    if (done != reported) {  // one `progress` event per finished step
      reported = done;
      progress_status = ctx.progress(wave.tiles_done + done, wave.tiles_total);
    }
    return progress_status.is_ok();
  });
  if (!progress_status.is_ok()) return progress_status;
  if (!ran.is_ok()) return ran.status();
  if (reported != int64_t(specs.size())) {
    Status s = ctx.progress(wave.tiles_done + int64_t(specs.size()), wave.tiles_total);
    if (!s.is_ok()) return s;
  }
  std::vector<std::vector<nodes::PilImage>> out;
  for (size_t k = 0; k < ran->tiles.size(); ++k) {
    ND_ASSIGN_OR_RETURN(auto tiles,
                        nodes::usdu_tiles_from_u8(ran->tiles[k], "step " + std::to_string(wave.step_ids[k])));
    out.push_back(std::move(tiles));
  }
  tile_plan_record(&cluster, ctx.prompt_id(), wave, ran->workers);
  return out;
}

}  // namespace

bool is_usdu_class(const std::string& class_type) {
  return class_type == "UltimateSDUpscale" || class_type == "UltimateSDUpscaleNoUpscale";
}

bool has_usdu(const Json& prompt) {
  if (!prompt.is_object()) return false;
  for (auto it = prompt.begin(); it != prompt.end(); ++it)
    if (it.value().is_object() && is_usdu_class(it.value().value("class_type", ""))) return true;
  return false;
}

Result<Json> tile_workflow(const Json& prompt, const std::string& usdu_id, const Json& tile_job) {
  ND_ASSIGN_OR_RETURN(std::set<std::string> keep, tile_upstream(prompt, usdu_id));
  Json out = Json::object();
  for (auto it = prompt.begin(); it != prompt.end(); ++it) {
    if (!keep.count(it.key())) continue;
    out[it.key()] = Json{{"class_type", it.value()["class_type"]},
                         {"inputs", it.value().value("inputs", Json::object())}};
  }
  Json inputs = Json::object();
  const Json& from = prompt[usdu_id].value("inputs", Json::object());
  for (auto it = from.begin(); it != from.end(); ++it)
    if (!tile_skipped_input(it.key())) inputs[it.key()] = it.value();
  inputs["tile_job"] = tile_job.dump();
  out[kShardOutputId] = Json{{"class_type", nodes::kUsduTileNode}, {"inputs", std::move(inputs)}};
  return out;
}

Requirements tile_requirements(const Json& prompt, const std::string& usdu_id) {
  Requirements req;
  req.node_classes.insert(nodes::kUsduTileNode);
  auto keep = tile_upstream(prompt, usdu_id);
  if (keep.is_ok()) add_requirements(prompt, *keep, req);
  return req;
}

nodes::UsduWaveRunner cluster_usdu_runner(std::weak_ptr<Cluster> weak) {
  return [weak](graph::NodeContext& ctx,
                const nodes::UsduWave& wave) -> Result<std::vector<std::vector<nodes::PilImage>>> {
    std::shared_ptr<Cluster> cluster = weak.lock();
    if (cluster && cluster->capable_remote_workers(tile_requirements(ctx.prompt(), ctx.node_id())) > 0)
      return run_wave_on_cluster(*cluster, ctx, wave);
    auto here = nodes::usdu_redraw_wave_here(ctx, wave);
    if (here.is_ok()) tile_plan_record(cluster.get(), ctx.prompt_id(), wave, {});
    return here;
  };
}

void register_cluster_usdu(graph::NodeRegistry& registry, std::shared_ptr<Cluster> cluster) {
  for (const char* cls : {"UltimateSDUpscale", "UltimateSDUpscaleNoUpscale"}) {
    if (!registry.find(cls)) continue;
    registry.replace_factory(cls, nodes::usdu_node_factory(cls, cluster_usdu_runner(cluster)));
  }
}

Json last_tile_plan(const std::string& prompt_id) {
  TilePlans& p = tile_plans();
  std::lock_guard<std::mutex> lock(p.mutex);
  auto it = p.by_prompt.find(prompt_id);
  return it == p.by_prompt.end() ? Json() : it->second;
}

Result<Cluster::TileRun> Cluster::run_tiles(const Json& prompt, const std::string& node_id,
                                            const std::vector<TileSpec>& specs,
                                            const std::function<bool(int64_t, int64_t)>& progress) {
  TileTasks tasks;
  tasks.requirements = tile_requirements(prompt, node_id);
  tasks.specs = specs;
  for (const TileSpec& spec : specs) {
    ND_ASSIGN_OR_RETURN(Json workflow, tile_workflow(prompt, node_id, spec.tile_job));
    tasks.workflows.push_back(std::move(workflow));
  }
  return run_tile_tasks(prompt, node_id, std::move(tasks), progress);
}

Result<Cluster::TileRun> Cluster::run_tile_tasks(const Json& prompt, const std::string& node_id, TileTasks tasks,
                                                 const std::function<bool(int64_t, int64_t)>& progress) {
  const std::vector<TileSpec>& specs = tasks.specs;
  if (specs.empty()) return TileRun{};
  ND_ASSERT(tasks.workflows.size() == specs.size(), "run_tile_tasks: one workflow per spec");
  auto job = std::make_shared<Job>();
  job->kind = protocol::TaskKind::tile;
  job->prompt = prompt;
  job->sampler_id = node_id;
  job->requirements = std::move(tasks.requirements);
  job->tile_workflows = std::move(tasks.workflows);
  ND_ASSIGN_OR_RETURN(job->inputs, collect_shard_inputs(job->tile_workflows[0], options_.input_dir));
  const size_t n = specs.size();
  job->results.resize(n);
  job->attempts.assign(n, 0);
  job->task_workers.resize(n);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return Status::unavailable("the coordinator is stopping");
    job->id = "job" + std::to_string(++next_job_);
    for (size_t i = 0; i < n; ++i) queue_.push_back(Task{job, i, 0, specs[i].tiles, specs[i].units});
  }
  cv_.notify_all();
  auto last_capable = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    if (job->shards_done == int64_t(n) || !job->failure.is_ok()) break;
    if (!capable_within_timeout(*job, std::chrono::steady_clock::now(), last_capable,
                                "the tiles of node " + node_id))
      break;
    const int64_t done = job->shards_done;
    lock.unlock();
    const bool go_on = progress(done, int64_t(n));
    lock.lock();
    if (!go_on) break;
    if (job->shards_done == int64_t(n) || !job->failure.is_ok()) continue;
    cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
  if (job->shards_done != int64_t(n)) {
    abandon(lock, job);
    if (!job->failure.is_ok()) return job->failure;
    return Status::cancelled("interrupted");
  }
  return TileRun{job->results, job->task_workers};
}

}  // namespace netdist::cluster
