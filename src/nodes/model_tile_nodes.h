// ImageUpscaleWithModel and VAEDecodeTiled tiles as cluster tile tasks (issue #18; the coordinator's side is
// cluster/model_tiles.h). The engine cuts the tiles and blends the results exactly as its local code does
// (netdist/tile_runner.h, upscale_image_tiled_by, decode_tiled_by), so the image is the local node's bit for
// bit on CPU workers, whoever computed which tile.
//
// Worker node classes (category netdist/internal, output nodes, registered with the shard nodes), each the
// output node of a self-contained tile workflow (the model's upstream plus this node):
//   NetdistUpscaleTiles    inputs upscale_model (UPSCALE_MODEL), tile_job → upscale_tiles
//   NetdistVaeDecodeTiles  inputs vae (VAE), tile_job                     → decode_tiles
// `tile_job` is a JSON string {"shape": [n, c, h, w], "data": base64 of the float32 values, little-endian,
// row-major}. The node gives its float32 outputs [n, c', h', w'] as its UI "netdist_latent" (a safetensors
// "samples"), which a shard runner returns as the task's tiles. Errors: invalid_argument naming the node and
// tile_job.
// Thread-safety: pure functions; the factories' nodes run on the executor's thread.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include <ATen/ATen.h>

#include "core/status.h"
#include "graph/node_registry.h"
#include "netdist/tile_runner.h"

namespace netdist::nodes {

inline constexpr const char* kUpscaleTileNode = "NetdistUpscaleTiles";
inline constexpr const char* kVaeDecodeTileNode = "NetdistVaeDecodeTiles";

void register_model_tile_nodes(graph::NodeRegistry& registry);

// tiles (float32-convertible [n, c, h, w]) ↔ tile_job text. parse: invalid_argument naming tile_job and what
// is wrong (not JSON, shape, data size, more than 2^28 values).
std::string model_tile_job(const at::Tensor& tiles);
Result<at::Tensor> parse_model_tile_job(const std::string& text);

// Which worker class runs a node's tiles, and through which of its inputs the model comes.
struct ModelTileKind {
  std::string node_class;   // "ImageUpscaleWithModel", "VAEDecodeTiled"
  std::string tile_class;   // kUpscaleTileNode, kVaeDecodeTileNode
  std::string model_input;  // "upscale_model", "vae"
};
const ModelTileKind* model_tile_kind(const std::string& node_class);  // nullptr for other classes

// The coordinator's choice for node ctx.node_id(): a runner that sends its tiles to workers, or nullopt to
// run the node here as usual. The runner reports progress and honours interrupts through ctx.
using ModelTileRunnerFor =
    std::function<std::optional<TileRunner>(graph::NodeContext& ctx, const ModelTileKind& kind)>;

// ImageUpscaleWithModel / VAEDecodeTiled with their tiles through `runner_for` (schemas unchanged: use with
// NodeRegistry::replace_factory). ImageUpscaleWithModel of an image that is one tile runs here.
graph::NodeFactory model_tile_node_factory(const ModelTileKind& kind, ModelTileRunnerFor runner_for);

}  // namespace netdist::nodes
