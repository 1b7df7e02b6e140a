// ComfyUI's tiled execution of an image model (comfy/utils.py tiled_scale → tiled_scale_multidim, 2-D,
// output_device "cpu"), bit for bit: the same tile starts, feather masks multiplied in the same float32
// order, sums and the final division.
#pragma once

#include <cstdint>
#include <functional>

#include <ATen/ATen.h>

#include "core/status.h"

namespace netdist::upscale {

// comfy.utils.get_tiled_scale_steps: tiles per image.
int64_t tiled_scale_steps(int64_t width, int64_t height, int64_t tile, int64_t overlap);

// The start offsets along one axis of `size` pixels: {0} when it fits in a tile, else 0, tile − overlap, …
// below size − overlap (every tile is min(tile, size − start) long).
std::vector<int64_t> tile_starts(int64_t size, int64_t tile, int64_t overlap);

// The feather mask of one output tile [rows, cols] (float32, CPU): ones, then for each axis (rows first)
// and t in [0, feather) the t-th and (len−1−t)-th lines multiplied by (t+1)/feather — skipped for an axis
// with feather >= len — exactly as tiled_scale_multidim builds it.
at::Tensor tile_mask(int64_t rows, int64_t cols, int64_t feather);

// One tile's model call: [1, C, th, tw] on the model's device → [1, out_channels, th·scale, tw·scale].
using TileFn = std::function<at::Tensor(const at::Tensor&)>;
// After each tile: (done, total) over all images; returning false stops with Status cancelled.
using TileProgress = std::function<bool(int64_t done, int64_t total)>;

// samples [N, C, H, W] (any device) → float32 [N, out_channels, H·scale, W·scale] on the CPU.
// tile > overlap >= 0. Throws what `fn` throws (out of memory included).
Result<at::Tensor> tiled_scale(const at::Tensor& samples, const TileFn& fn, int64_t tile, int64_t overlap,
                               int64_t scale, int64_t out_channels, const TileProgress& progress);

}  // namespace netdist::upscale
