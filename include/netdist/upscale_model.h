// Upscale models as ComfyUI loads them (UpscaleModelLoader, ImageUpscaleWithModel; ComfyUI uses the spandrel
// library): the ESRGAN family — RRDBNet in its "old" and "new" key layouts, Real-ESRGAN x2/x4 — and the compact
// SRVGGNet. Issue #18. The architecture is detected from the state dict's keys and shapes; an unknown one is
// refused at load naming the keys it did not recognise.
//
// Tensor conventions: IMAGE [N, H, W, 3] float32 on the CPU, values in [0, 1] (include/netdist/engine.h).
// Thread-safety: calls on one UpscaleModel are serialised internally.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <ATen/ATen.h>

#include "core/status.h"
#include "netdist/tile_runner.h"

namespace netdist {

struct EngineOptions;
class UpscaleModel;

// UpscaleModelLoader: a .safetensors upscale model (ComfyUI also takes .pth pickles; netdist refuses them,
// kUnsupported, with the one-line conversion to .safetensors). Errors name the file: unsupported for an
// unknown architecture (naming a few of its keys) or a pickle, invalid_argument / corruption for a file that
// is not a loadable model. On a GPU the weights are placed by the engine's memory manager (engine.h
// configure_memory): loaded onto the device when there is room, moved to RAM when other models need it.
Result<std::shared_ptr<UpscaleModel>> load_upscale_model(const std::string& path, const EngineOptions& options);

struct UpscaleModelInfo {
  std::string architecture;  // "ESRGAN", "RealESRGAN", "SRVGGNetCompact", ...
  int scale = 4;             // output pixels per input pixel, per axis
  int in_channels = 3;
  std::string path;
};
UpscaleModelInfo upscale_model_info(const UpscaleModel& model);

// ImageUpscaleWithModel: the image through the model as ComfyUI's node runs it (tiles of 512 pixels
// overlapping by 32, comfy.utils.tiled_scale; on out-of-memory the tile size halves down to 128), clamped to
// [0, 1]. progress(done, total) counts tiles; returning false interrupts (Status cancelled). The image's
// channels must be the model's input channels (3) and the model must output 3 (invalid_argument /
// unsupported otherwise). Output: float32 [N, H·scale, W·scale, 3] on the CPU. On the CPU the result is
// bit-identical whatever the process's thread count.
Result<at::Tensor> upscale_image(UpscaleModel& model, const at::Tensor& image,
                                 const std::function<bool(int done, int total)>& progress);

// How many tiles upscale_image runs for `image` [N, H, W, C] at the first tile size (512, overlap 32).
int64_t upscale_tile_count(const at::Tensor& image);

// upscale_image with its tiles computed by `runner` (netdist/tile_runner.h; the cluster's tile tasks): the
// same checks, tiles, blending and clamp, done here on the CPU; an error of the runner that says "out of
// memory" halves the tile (down to 128) and runs every tile again, as upscale_image does. With a runner
// that calls upscale_tiles on CPU models of the same file the result is upscale_image's bit for bit.
// `tiles_run`, when given, receives the tile count of the pass that succeeded.
Result<at::Tensor> upscale_image_tiled_by(UpscaleModel& model, const at::Tensor& image, const TileRunner& runner,
                                          int64_t* tiles_run = nullptr);

// The worker's half: tiles float32 [n, C, h, w] (any values; C the model's input channels) → the model's
// outputs float32 [n, out_channels, h·scale, w·scale] on the CPU, each tile run alone through spandrel's
// call (pad, run, clamp, crop) exactly as upscale_image runs it. invalid_argument for another shape.
Result<at::Tensor> upscale_tiles(UpscaleModel& model, const at::Tensor& tiles);

}  // namespace netdist
