// VAEDecodeTiled with its tiles computed elsewhere (issue #18: VAE tiles as cluster tasks,
// cluster/model_tiles.h), on netdist/tile_runner.h. The coordinator cuts the latent exactly as decode_tiled
// (engine.h) does — three passes of tile_size/8 latent tiles (2·t × t/2, t/2 × 2·t, t × t), overlap/8 cells —
// and blends the decoded tiles with the same feather code; the worker decodes each tile with decode_tiles.
// Thread-safety: as engine.h (calls on one Model are serialised).
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

#include "core/status.h"
#include "netdist/engine.h"
#include "netdist/tile_runner.h"

namespace netdist {

// decode_tiled(model, latent, tile_size, overlap) with the tiles decoded by `runner` and blended here on the
// CPU: the same checks and errors, and, with a runner that calls decode_tiles on CPU models of the same VAE,
// the same bytes. `tiles_run`, when given, receives the number of tiles (all three passes).
Result<at::Tensor> decode_tiled_by(Model& model, const at::Tensor& latent, int64_t tile_size, int64_t overlap,
                                   const TileRunner& runner, int64_t* tiles_run = nullptr);

// The worker's half: latent tiles [n, C, h, w] (float32; C the VAE's latent channels) → each tile decoded
// alone as decode_tiled decodes it (in the VAE's dtype), float32 [n, out_channels, h·8, w·8] on the CPU,
// in about [-1, 1]. invalid_argument naming `tiles` for another shape.
Result<at::Tensor> decode_tiles(Model& model, const at::Tensor& tiles);

}  // namespace netdist
