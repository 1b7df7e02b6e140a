// Resampling of latents and images as ComfyUI's comfy.utils.common_upscale does it (LatentUpscale,
// LatentUpscaleBy, ImageScale, ImageScaleBy).
//
// Layout: samples [N, C, H, W] float32 CPU (LATENT as is; IMAGE moved to channels-first by the caller).
// Methods:
//   nearest-exact, bilinear (align_corners false), area (adaptive average pooling), bicubic
//       (align_corners false, no antialias): torch.nn.functional.interpolate with an output size, i.e. the
//       same ATen kernels ComfyUI calls;
//   bislerp: ComfyUI's spherical-linear blend along width then height (comfy.utils.bislerp);
//   lanczos: PIL's Image.resize(LANCZOS) on uint8 pixels, reimplemented (Lanczos-3 kernel widened by the
//       downscale factor, coefficients normalised and rounded to 22-bit fixed point, horizontal pass then
//       vertical pass, each rounded and clipped to uint8), with ComfyUI's conversion around it:
//       uint8 = trunc(clip(255·x, 0, 255)) and back x = uint8 / 255. Values must be images (C ≤ 4);
//       channels are resampled independently, so an RGBA image is not alpha-premultiplied as PIL would
//       (ComfyUI's IMAGE is RGB). Matches Pillow 9.4 bit for bit on the golden test in upscale_test.cpp.
// crop "center" first trims the input to the target aspect ratio (Python round: ties to even).
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/ATen.h>

#include "core/status.h"

namespace netdist::nodes {

// → [N, C, height, width]. Errors name an unknown method or crop, or a non-positive size.
Result<at::Tensor> common_upscale(const at::Tensor& samples, int64_t width, int64_t height,
                                  const std::string& method, const std::string& crop);

// comfy.utils.bislerp: samples [N, C, H, W] → [N, C, height, width] float32.
at::Tensor bislerp(const at::Tensor& samples, int64_t width, int64_t height);

// PIL LANCZOS resize of [N, C, H, W] values in [0, 1] (C ≤ 4), through uint8 as ComfyUI does.
at::Tensor lanczos(const at::Tensor& samples, int64_t width, int64_t height);

// Python's round() of a double to an integer: ties to even.
int64_t py_round(double v);

}  // namespace netdist::nodes
