// Inpainting in the sampler, as ComfyUI does it: the LATENT "noise_mask" (SetLatentNoiseMask,
// VAEEncodeForInpaint, InpaintModelConditioning) applied around every denoiser call (comfy/samplers.py
// KSamplerX0Inpaint), and the concat conditioning of 9-channel inpainting UNets (comfy/model_base.py
// BaseModel.concat_cond with concat_keys ("mask", "masked_image")).
//
// Tensors: masks are float32 CPU, any shape whose last two dims are H×W (reshaped to [-1, 1, H, W]);
// latents [N, C, h, w] float32. The helpers repeat ComfyUI's comfy/utils.py functions op for op (bilinear
// interpolation with align_corners false, computed on the CPU as ComfyUI does for a CPU mask).
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/ATen.h>

#include "core/status.h"
#include "engine/cond_batch.h"
#include "engine/sampling/model_sampling.h"
#include "engine/sampling/samplers.h"
#include "netdist/engine.h"

namespace netdist::inpaint {

// invalid_argument naming `input` ("latent_image's noise_mask") unless `mask` is a floating-point tensor of
// rank 2 to 4 with at least one row and pixel.
Status check_mask(const at::Tensor& mask, const std::string& input);

// comfy.utils.repeat_to_batch_size along dim 0: the first n rows, or the rows repeated ceil(n / rows) times
// and cut to n.
at::Tensor repeat_to_batch_size(const at::Tensor& t, int64_t n);

// comfy.utils.resize_to_batch_size: n rows picked by nearest index (the concat conditioning's batching).
at::Tensor resize_to_batch_size(const at::Tensor& t, int64_t n);

// comfy.utils.reshape_mask for a 4-D shape [N, C, h, w] (sampler_helpers.prepare_mask): [-1, 1, H, W],
// bilinear to h×w, channels repeated to C, rows by repeat_to_batch_size to N.
at::Tensor reshape_mask(const at::Tensor& mask, at::IntArrayRef shape);

// comfy.utils.common_upscale(t, width, height, "bilinear", "center"): the centre crop of t's aspect ratio,
// bilinear to height×width. t: [B, C, H, W].
at::Tensor upscale_bilinear_center(const at::Tensor& t, int64_t width, int64_t height);

// KSamplerX0Inpaint around `inner`: with denoise mask m ([B, C, h, w] on x's device, the sampled rows)
// each call sees x·m + noise_scaling(σ, noise, latent)·(1 − m) and returns out·m + latent·(1 − m); `noise`
// is the sampling's initial noise (unscaled), `latent` the scaled latent_image, both [B, C, h, w].
sampling::Denoiser masked_denoiser(sampling::Denoiser inner, const sampling::ModelSampling& ms, at::Tensor mask,
                                   at::Tensor noise, at::Tensor latent);

// The noise KSamplerX0Inpaint re-noises the kept latent with, for rows [row_begin, row_end): the sampling's
// initial noise, except for "ddim" (ComfyUI's sampler_object: euler with inpaint_options random), which draws
// CPU randn of the whole batch's shape from seed + 1.
at::Tensor inpaint_noise(const std::string& sampler, uint64_t seed, at::IntArrayRef full_shape, const at::Tensor& noise,
                         int64_t row_begin, int64_t row_end);

// BaseModel.concat_cond of an inpainting UNet for one conditioning entry: [N, 5, h, w] = mask (1 channel)
// and masked-image latent (4), for a noise of shape `noise_shape` [N, 4, h, w]. `latent_image` is the
// sampling's scaled latent [N, 4, h, w]; `denoise_mask` the prepared sampler mask [N, 4, h, w] or undefined;
// `concat_latent_image` / `concat_mask` the entry's InpaintModelConditioning values (unscaled latent, mask)
// or undefined; `scale` the family's latent scale factor (process_latent_in). Without any mask: ones and
// ComfyUI's blank inpaint image (the latent of a mid-grey picture).
at::Tensor concat_cond(at::IntArrayRef noise_shape, const at::Tensor& latent_image, const at::Tensor& denoise_mask,
                       const at::Tensor& concat_latent_image, const at::Tensor& concat_mask, double scale);

// Sets rows[i].concat from conditioning[i] (prepare_cond's rows, one per entry) for the sampled rows
// [row_begin, row_end) of the batch, on `device`: concat_cond over the whole batch (`latent` the unscaled
// latent_image [N, 4, h, w] CPU, `mask` the prepared noise mask [N, 4, h, w] CPU or undefined), so that a
// split batch gets the rows the unsplit one has.
void add_concat(std::vector<cond::CondRow>& rows, const Conditioning& conditioning, const at::Tensor& latent,
                const at::Tensor& mask, double scale, int64_t row_begin, int64_t row_end, const at::Device& device);

// What sample() inpaints into: whether the UNet takes a concat input, whether it is tiled (TiledDiffusion),
// the family's latent scale, the sampled rows and the device.
struct Target {
  bool concat = false;
  bool tiled = false;
  double scale = 1.0;
  int64_t row_begin = 0, row_end = 0;
  at::Device device = at::kCPU;
};

// sample()'s inpainting set-up: the request's noise mask checked and prepared for the whole batch
// (reshape_mask to the latent's shape; undefined without one), and for a concat UNet every row's concat
// (add_concat on both lists). invalid_argument for a bad mask; unsupported for a tiled concat UNet; a
// libtorch failure → internal.
Result<at::Tensor> prepare(const SampleRequest& req, const Target& target, std::vector<cond::CondRow>& pos,
                           const Conditioning& positive, std::vector<cond::CondRow>& neg,
                           const Conditioning& negative);

}  // namespace netdist::inpaint
