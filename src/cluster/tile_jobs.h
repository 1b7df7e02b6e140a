// Ultimate SD Upscale across workers: the coordinator runs a USDU node (UltimateSDUpscale,
// UltimateSDUpscaleNoUpscale) itself, but hands each step of a dependency wave (nodes/usdu_tiles.h: a redraw
// tile, or a seam-fix pass piece) to whichever worker is free as a task of kind "tile", pastes the returned
// tiles back in USDU's step order after the wave, and goes on. In "exact" mode the result is bit-for-bit the
// 1-process result (a step reads only pixels that every step it depends on, all in earlier waves, has
// written; each step's redraw is the same code on the same inputs with the node's seed); "independent" mode
// puts every step in one wave on the source canvas.
//
// A tile task's workflow (tile_workflow) is self-contained: the USDU node's upstream for its model,
// positive, negative and vae inputs (copied with their ids; the image input's upstream is left out: its
// pixels travel in the tile job) and one NetdistUsduTiles node (nodes/usdu_tile_node.h) with id
// kShardOutputId, carrying the USDU node's other inputs and the step's tile_job. A worker runs it as it runs
// a row shard and replies with the tiles (uint8). A worker without the node class or a checkpoint it names is
// never handed one (capabilities, as for shards); a failed or dead worker's task is retried elsewhere by the
// scheduler (cluster.h).
// Thread-safety: pure functions; the runner is called by the coordinator's executor, Cluster is thread-safe.
#pragma once

#include <memory>
#include <string>

#include "cluster/cluster.h"
#include "graph/node_registry.h"
#include "nodes/usdu_nodes.h"

namespace netdist::cluster {

bool is_usdu_class(const std::string& class_type);
// True when the prompt has a USDU node.
bool has_usdu(const Json& prompt);

// The tile task workflow of USDU node `usdu_id` for one step (`tile_job`: usdu_tile_job). invalid_argument
// naming the node when it is missing or not a USDU node, or a link points at a missing node.
Result<Json> tile_workflow(const Json& prompt, const std::string& usdu_id, const Json& tile_job);
// What a worker must have to run it: the node classes of the USDU node's model/conditioning/vae upstream,
// NetdistUsduTiles, and the checkpoints they name.
Requirements tile_requirements(const Json& prompt, const std::string& usdu_id);

// The coordinator's wave runner: the wave's steps as tile tasks (Cluster::run_tiles) while some live remote
// worker can run them, else redrawn here. Progress counts steps (value of the job's steps). The plan of the
// node's job (mode, grid, waves, the worker of every step) is logged and kept (last_tile_plan).
nodes::UsduWaveRunner cluster_usdu_runner(std::weak_ptr<Cluster> cluster);

// Swaps the two USDU classes' implementation for ones that use cluster_usdu_runner (schemas unchanged).
void register_cluster_usdu(graph::NodeRegistry& registry, std::shared_ptr<Cluster> cluster);

// The tile plan of the last USDU job the coordinator ran for `prompt_id` (null when none):
// {"mode": "tiles", "tiles": "exact"|"independent", "grid": {"rows", "cols", "canvas": [w, h]}, "steps": n,
//  "waves": n, "workers": {"<step>": url}} (a step redrawn here: "local").
nlohmann::ordered_json last_tile_plan(const std::string& prompt_id);

}  // namespace netdist::cluster
