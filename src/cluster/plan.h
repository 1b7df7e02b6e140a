// How the coordinator ran a prompt, for its history entry (server/backend.h kPlanEvent → "netdist":
// {"plan": ...}, docs/api.md): the mode ("whole": one worker ran all of it; "rows": a sampler's batch split
// by rows; "cfg": CFG split over a group; "tiles": tile-parallel over a group; "cfg+tiles"), the workers
// that did the work (their URLs, in the order they were chosen) and the cost model's predicted seconds
// for the distributed part (cost_model.h), and what a mode adds (`detail`, e.g. a tile job's grid, waves and
// the worker of every step: tile_jobs.h).
// Thread-safety: Plan is a plain value; PlanLog may be used from any thread.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace netdist::cluster {

struct Plan {
  std::string mode;
  std::vector<std::string> workers;
  double predicted_s = 0;
  nlohmann::ordered_json detail = nlohmann::ordered_json::object();  // more fields of the plan's JSON
};

// {"mode", "workers": [...], "predicted_s", ...detail's fields}.
nlohmann::ordered_json plan_to_json(const Plan& plan);

// `more` folded into `into` (a prompt with several distributed samplers): the workers of both, each once,
// the predicted seconds added, the modes joined by "+" when they differ ("rows+cfg"), and `more`'s detail
// fields replacing `into`'s of the same name.
void merge_plan(Plan& into, const Plan& more);

// The plans of the prompts the coordinator is running, per prompt id: the samplers of a prompt record
// theirs while it runs, the coordinator takes the merged plan when it ends.
class PlanLog {
 public:
  void record(const std::string& prompt_id, const Plan& plan);
  // The merged plan of `prompt_id`, removed from the log; nullopt when none was recorded.
  std::optional<Plan> take(const std::string& prompt_id);

 private:
  std::mutex mutex_;
  std::map<std::string, Plan> plans_;
};

}  // namespace netdist::cluster
