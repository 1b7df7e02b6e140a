// The coordinator's choice between running a whole (batch-1) prompt on one worker and on a step group
// (issue #17), from the prompt, the requested parallelism and the cost model (cost_model.h
// predict_group_seconds).
//
// The requested parallelism is extra_data.netdist.parallel when the prompt states it, else the server's
// --parallel (default off): "off" (never a group), "auto" (the planner decides), "cfg" or "tiles" (that mode
// whenever it applies and enough workers are idle). The planner:
//  - needs at least 2 idle netdist workers able to run the prompt (Cluster::group_candidates); else whole;
//  - "cfg": CFG split over 2 workers, when some KSampler/KSamplerAdvanced has cfg != 1 (at cfg 1 there is
//    nothing to split);
//  - "tiles": tile-parallel sampling over up to max_gpus (default 2) workers, when the prompt has a
//    TiledDiffusion node; the tiles are shared evenly;
//  - "auto": a MultiGPU_WorkUnits node asks for CFG split (its max_gpus caps the group; max_gpus 1 = whole),
//    taken whenever it applies; otherwise tiles when the prompt has TiledDiffusion, else CFG split when a
//    sampler has cfg != 1, each only when predict_group_seconds beats the whole prompt on the fastest
//    idle worker. CFG split × tiles (4 workers) is not planned yet: such a prompt runs tile-parallel.
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace netdist::cluster {

// extra_data.netdist.parallel if present, else `server_default`; invalid_argument naming the field when it
// is not one of "auto", "off", "cfg", "tiles".
Result<std::string> requested_parallel(const nlohmann::ordered_json& extra_data,
                                       const std::string& server_default);

struct ParallelChoice {
  std::string mode = "whole";  // "whole", "cfg" or "tiles"
  int size = 1;                // workers
  double predicted_s = 0;      // the cost model's seconds for that choice (0: speed unknown)
};

// The plan of a whole prompt (rules above). `idle` = idle capable netdist workers; `seconds_per_unit` =
// the fastest one's (nullopt: unknown, then "auto" takes a group only for MultiGPU_WorkUnits).
ParallelChoice choose_parallel(const nlohmann::ordered_json& prompt, const std::string& parallel, int idle,
                               std::optional<double> seconds_per_unit);

}  // namespace netdist::cluster
