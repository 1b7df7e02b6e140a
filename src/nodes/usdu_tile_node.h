// The internal node class a worker runs for one step of an Ultimate SD Upscale job handed out as a cluster
// tile task (cluster/tile_jobs.h), and the `tile_job` value that carries the step to it.
//
// NetdistUsduTiles (category netdist/internal, an output node, registered with the shard nodes): the inputs
// of UltimateSDUpscaleNoUpscale except upscaled_image (model, positive, negative, vae and the sampling
// widgets, copied from the prompt's USDU node), plus `tile_job`, a JSON string:
//   {"image": [w, h]   the USDU node's input image (crop_cond's init size),
//    "canvas": [w, h], "crops": [[x1, y1, x2, y2], ...] (the step's tiles, usdu_plan.h UsduTile::crop),
//    "size": [w, h] (each tile's pixels), "count": n (tiles: crops × images, image-major),
//    "pixels": base64 of n·h·w·3 bytes, RGB rows}
// It runs usdu_redraw_tiles (VAE encode → sampler → decode, exactly the 1-process code) and gives the
// redrawn tiles as its UI "netdist_latent" (a safetensors "samples" uint8 [n, h, w, 3]), which a shard
// runner reads as a shard's rows. Errors: invalid_argument naming tile_job and what is wrong.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/status.h"
#include "graph/node_registry.h"
#include "nodes/usdu_nodes.h"

namespace netdist::nodes {

inline constexpr const char* kUsduTileNode = "NetdistUsduTiles";

void register_usdu_tile_node(graph::NodeRegistry& registry);

// The tile_job of step wave.step_ids[k] (its input tiles wave.inputs[k]).
nlohmann::ordered_json usdu_tile_job(const UsduWave& wave, size_t k);

struct UsduTileJob {
  int64_t image_width = 0, image_height = 0, canvas_width = 0, canvas_height = 0;
  UsduStep step;                // tiles with their crops only
  std::vector<PilImage> tiles;  // the input tiles
};
Result<UsduTileJob> parse_usdu_tile_job(const std::string& text);

// Tiles of one size ↔ uint8 [n, h, w, 3]. from_u8: invalid_argument naming `what` unless it is such a tensor.
at::Tensor usdu_tiles_to_u8(const std::vector<PilImage>& tiles);
Result<std::vector<PilImage>> usdu_tiles_from_u8(const at::Tensor& tiles, const std::string& what);

}  // namespace netdist::nodes
