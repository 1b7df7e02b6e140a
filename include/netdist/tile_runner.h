// Tiled model calls whose tiles run somewhere else (issue #18: ImageUpscaleWithModel and VAEDecodeTiled tiles
// as cluster tasks, cluster/model_tiles.h). The engine cuts the tiles exactly as its local tiled code does,
// hands them to a TileRunner, and blends the outputs it gets back with that same code, in the same order: so
// when the runner computes each tile as the local code would (upscale_tiles, decode_tiles on a model of the
// same kind and device), the result is the local result bit for bit, whoever computed which tile.
// Thread-safety: a TileRunner is called from the thread that called the engine function.
#pragma once

#include <functional>
#include <vector>

#include <ATen/ATen.h>

#include "core/status.h"

namespace netdist {

// One pass's tiles, in the local code's order: float32 CPU tensors [1, C, h, w]. Returns their outputs,
// same order, float32 [1, out_channels, h·scale, w·scale] (any device); a wrong count or shape is refused
// by the caller (invalid_argument naming the tile). Errors propagate; for the upscale, an error whose
// message says "out of memory" halves the tile as ComfyUI does.
using TileRunner = std::function<Result<std::vector<at::Tensor>>(std::vector<at::Tensor> tiles)>;

}  // namespace netdist
