// ImageUpscaleWithModel and VAEDecodeTiled tiles across workers (issue #18). The coordinator runs the node
// itself (its engine cuts the tiles and blends them exactly as the local node: nodes/model_tile_nodes.h,
// netdist/tile_runner.h) but hands every tile to whichever worker is free as a task of kind "tile"
// (Cluster::run_tile_tasks, the machinery of Ultimate SD Upscale's tiles, tile_jobs.h): failover, progress
// (one `progress` event per finished tile) and interrupts as there. The tiles are independent, so the image
// is the local node's for any worker count and either tile mode (`--tiles` only changes USDU).
//
// A tile task's workflow (model_tile_workflow) is self-contained: the node's model input's upstream
// (UpscaleModelLoader; CheckpointLoaderSimple or VAELoader for the VAE, copied with their ids) and one
// NetdistUpscaleTiles / NetdistVaeDecodeTiles node with id kShardOutputId carrying the tile (`tile_job`).
// The upscale model and checkpoint files reach workers as for shards: model_fetch.h fetches the files a
// task's loaders name from `--join` / `--models-from` coordinators started with --share-models.
// Thread-safety: pure functions; the runner is called by the coordinator's executor, Cluster is thread-safe.
#pragma once

#include <memory>
#include <string>

#include "cluster/cluster.h"
#include "graph/node_registry.h"
#include "nodes/model_tile_nodes.h"

namespace netdist::cluster {

// True when the prompt has a node whose tiles can run as tile tasks (ImageUpscaleWithModel, VAEDecodeTiled).
bool has_model_tiles(const Json& prompt);

// The tile task workflow of node `node_id` (of `kind`) for one tile job (nodes::model_tile_job).
// invalid_argument naming the node when it is missing, of another class, has no model link, or a link
// points at a missing node.
Result<Json> model_tile_workflow(const Json& prompt, const std::string& node_id, const nodes::ModelTileKind& kind,
                                 const std::string& tile_job);
// What a worker needs for them: the upstream's node classes, the tile node class, the checkpoints named.
Requirements model_tile_requirements(const Json& prompt, const std::string& node_id,
                                     const nodes::ModelTileKind& kind);

// The coordinator's choice: tile tasks while some live remote worker can run them, else the node runs here.
// Each finished tile is a `progress` event; the prompt's plan (mode "tiles") gets, under "model_tiles", per
// node id {"class", "tiles", "per_worker": {url: tiles}, "tile_workers": [url per tile]}.
nodes::ModelTileRunnerFor cluster_model_tile_runner(std::weak_ptr<Cluster> cluster);

// Swaps ImageUpscaleWithModel's and VAEDecodeTiled's implementation for ones that use it (schemas unchanged).
void register_cluster_model_tiles(graph::NodeRegistry& registry, std::shared_ptr<Cluster> cluster);

}  // namespace netdist::cluster
