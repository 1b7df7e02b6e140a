// Tiled application of an image-to-image function (ComfyUI comfy/utils.py tiled_scale_multidim, 2-D case).
#pragma once

#include <cstdint>
#include <functional>

#include <ATen/ATen.h>

namespace netdist::vae {

// samples [B, C, H, W] → float32 [B, out_channels, H·upscale, W·upscale] on samples' device.
// Each image is cut into tiles of at most tile_h × tile_w with starts 0, step tile − overlap (last start
// < H − overlap); `fn` maps a [1, C, th, tw] tile to [1, out_channels, th·upscale, tw·upscale]; outputs are
// summed with a mask that ramps linearly ((t+1)/f, f = overlap·upscale) over the f pixels at every tile edge
// and divided by the summed mask. An image that fits in one tile is just fn(image).
at::Tensor tiled_scale(const at::Tensor& samples, const std::function<at::Tensor(const at::Tensor&)>& fn,
                       int64_t tile_h, int64_t tile_w, int64_t overlap, int64_t upscale, int64_t out_channels);

// The same with upscale_amount = 1/downscale, as VAE.encode_tiled_ calls it (pixels → latents): tiles of at
// most tile_h × tile_w pixels at starts 0, tile − overlap, …; each tile's output lands at round(start /
// downscale) and its edges ramp over round(overlap / downscale) cells (Python's round: half to even); the
// output is [B, out_channels, round(H / downscale), round(W / downscale)]. The caller makes sure that a side
// larger than its tile has tile > overlap (ComfyUI loops forever or divides by zero otherwise).
at::Tensor tiled_downscale(const at::Tensor& samples, const std::function<at::Tensor(const at::Tensor&)>& fn,
                           int64_t tile_h, int64_t tile_w, int64_t overlap, int64_t downscale,
                           int64_t out_channels);

}  // namespace netdist::vae
