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

// VAEEncodeTiled: ComfyUI's VAE.encode_tiled (comfy/sd.py encode_tiled_) of IMAGE [N, H, W, ≥3] in [0, 1]:
// the image cropped to whole latent cells as encode() crops it, then three passes of comfy.utils.tiled_scale
// with the encoder — tiles (h × w pixels) tile_size × tile_size, tile_size/2 × 2·tile_size and
// 2·tile_size × tile_size/2, each at most `overlap` pixels overlapping and feathered over overlap/8 latent
// cells — summed in that order and divided by 3. Unscaled latents float32 [N, 4, H/8, W/8] on the CPU.
// invalid_argument for the inputs encode() refuses, and when a pass would cut tiles no wider than the
// overlap (ComfyUI fails or returns NaN there), naming tile_size and overlap.
Result<at::Tensor> encode_tiled(Model& model, const at::Tensor& image, int64_t tile_size, int64_t overlap);

}  // namespace netdist
