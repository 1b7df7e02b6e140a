// Tiled diffusion: the TiledDiffusion node of shiimizu/ComfyUI-TiledDiffusion (tiled_diffusion.py) on a
// Model handle. Every UNet call of sample() on the returned handle runs over overlapping latent tiles whose
// x0 predictions are blended before the sampler step: MultiDiffusion (each cell the mean of the tiles that
// cover it) or Mixture of Diffusers (a gaussian weight per tile cell, normalised per latent cell).
//
// Units: tile_width, tile_height and tile_overlap are pixels, as the node takes them; the engine divides them
// by the latent's 8× downscale (the node's `// compression`). Grid, weights and batching follow the node
// exactly (src/engine/tiled_diffusion.h has the formulas): tiles are clamped to the latent, the overlap to
// min(tile_width, tile_height)/8 − 4 cells, and tiles run tile_batch_size (rebalanced) per UNet call.
//
// Step groups (include/netdist/step_group.h): with a group, each member runs a contiguous share of the tile
// batches (shares sized by a per-member speed vector), the tile outputs are all-gathered and every member
// blends all tiles in the fixed tile order. The batches depend only on the grid and tile_batch_size, never on
// who renders them, so the sampled latent is bit-identical for any number of members on one device type.
//
// Thread-safety: apply_tiled_diffusion is a pure function of its inputs; the returned handle follows
// engine.h's rules for a Model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace netdist {

class Model;

enum class TileMethod { kMultiDiffusion, kMixtureOfDiffusers };

struct TiledDiffusionOptions {
  TileMethod method = TileMethod::kMixtureOfDiffusers;  // the node's default
  int64_t tile_width = 768;   // pixels (node default 96·8)
  int64_t tile_height = 768;  // pixels
  int64_t tile_overlap = 64;  // pixels (node default 8·8)
  int64_t tile_batch_size = 4;
};

// The node's method names: "MultiDiffusion", "Mixture of Diffusers". "SpotDiffusion" (random per-step tile
// shifts) is unsupported, and anything else invalid_argument; both name the method.
Result<TileMethod> parse_tile_method(const std::string& method);
std::string tile_method_name(TileMethod method);

// A handle sharing `model`'s weights, LoRA patches and lock whose sample() calls are tiled as `options`
// say (replacing an earlier tiling, as a second TiledDiffusion node does). invalid_argument naming the option
// for tile sizes under 8 pixels, a negative overlap or tile_batch_size < 1; for a model without a UNet.
Result<std::shared_ptr<Model>> apply_tiled_diffusion(const std::shared_ptr<Model>& model,
                                                     const TiledDiffusionOptions& options);

}  // namespace netdist
