// The coordinator's choice between running a whole (batch-1) prompt on one worker and on a step group
// (issue #17), from the prompt, the requested parallelism and the cost model (cost_model.h
// predict_group_seconds).
//
// The requested parallelism is extra_data.netdist.parallel when the prompt states it, else the server's
// --parallel (default off): "off" (never a group), "auto" (the planner decides), or one mode the prompt
// asks for ("cfg", "tiles", "cfg+tiles", "rows"), taken whenever it applies and enough workers are idle.
// The planner:
//  - needs at least 2 idle netdist workers able to run the prompt (Cluster::group_candidates); else whole;
//  - "cfg": CFG split over 2 workers, when some KSampler/KSamplerAdvanced has cfg != 1 (at cfg 1 there is
//    nothing to split);
//  - "tiles": tile-parallel sampling over up to max_gpus (default 2) workers, when the prompt has a
//    TiledDiffusion node; the tiles are shared by the workers' measured speeds;
//  - "cfg+tiles": 4 workers, 2 CFG pairs × 2 tile shares, for a TiledDiffusion prompt with cfg != 1 (else
//    what of it applies: tiles, then cfg);
//  - "rows" (group mode "rows+cfg"): a batch of n >= 2 with cfg != 1 on 2p workers (p = min(n, idle / 2)
//    >= 2 CFG pairs, each sampling a run of the batch's micro-batches; plan mode "rows", the pairs in the
//    plan's detail); a prompt whose batch is 1, or with fewer than 4 idle workers, is planned as "auto";
//  - "auto": a MultiGPU_WorkUnits node asks for CFG split (its max_gpus caps the group; max_gpus 1 = whole),
//    taken whenever it applies; otherwise every mode that applies (tiles, cfg+tiles for a TiledDiffusion
//    prompt; rows for a batch; cfg) is predicted with predict_group_seconds (cost_model.h: the mode's share
//    of the work, its collectives per step at the slowest candidate's measured seconds per collective, else
//    assumed) and the cheapest is taken if it beats the whole prompt on the fastest idle worker.
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cluster/group_protocol.h"
#include "cluster/plan.h"
#include "core/status.h"

namespace netdist::cluster {

// extra_data.netdist.parallel if present, else `server_default`; invalid_argument naming the field when it
// is not one of "auto", "off", "cfg", "tiles", "cfg+tiles", "rows".
Result<std::string> requested_parallel(const nlohmann::ordered_json& extra_data,
                                       const std::string& server_default);

struct ParallelChoice {
  std::string mode = "whole";  // "whole", or the group mode: "cfg", "tiles", "cfg+tiles", "rows+cfg"
  int size = 1;                // workers
  double predicted_s = 0;      // the cost model's seconds for that choice (0: speed unknown)
};

// The plan's (history) name of a group mode: "rows+cfg" is recorded as "rows" (its CFG pairs in the detail).
std::string plan_mode_name(const std::string& group_mode);

// The plan of a prompt (rules above). `idle` = idle capable netdist workers; `seconds_per_unit` = the
// fastest one's (nullopt: unknown, then "auto" takes a group only for MultiGPU_WorkUnits);
// `exchange_s` = the slowest idle worker's measured seconds per collective (nullopt: none measured).
ParallelChoice choose_parallel(const nlohmann::ordered_json& prompt, const std::string& parallel, int idle,
                               std::optional<double> seconds_per_unit,
                               std::optional<double> exchange_s = std::nullopt);

// Whether `prompt`, which is not a whole prompt (a batch), would run as a "rows+cfg" group under `parallel`
// with `idle` workers (the coordinator then sends it to the group whole instead of cutting row shards).
// The history entry's plan of a group run as `spec` (plan.h): mode plan_mode_name(spec.mode), the members
// by rank, and in `detail` "speeds" (the tile shares' speeds, when set) and, for the CFG-pair modes,
// "cfg_pairs" ([[rank 0, rank 1], [rank 2, rank 3], ...]) and "tile_groups" or "row_groups" (the pairs'
// cross groups: [[rank 0, rank 2, ...], [rank 1, rank 3, ...]]).
Plan group_plan_record(const protocol::GroupSpec& spec, double predicted_s);

bool plans_rows_group(const nlohmann::ordered_json& prompt, const std::string& parallel, int idle,
                      std::optional<double> seconds_per_unit, std::optional<double> exchange_s);

}  // namespace netdist::cluster
