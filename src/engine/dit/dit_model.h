// A loaded diffusion transformer (SD3 / SD3.5 MMDiT or Flux) with what ComfyUI's BaseModel adds around it for
// these families: the family's model sampling (supported_models.py: SD3 ModelSamplingDiscreteFlow shift 3,
// multiplier 1000; Flux dev ModelSamplingFlux shift 1.15; Flux schnell discrete flow shift 1, multiplier 1),
// its 16-channel latent format (latent_formats.py SD3 / Flux) and apply_model for the CONST (flow)
// parameterisation. Loading takes a separate diffusion-model file (names without prefix, as UNETLoader
// reads them) or a single-file checkpoint (model.diffusion_model.*); weights in any stored dtype, float8
// included (upcast exactly by the safetensors reader), are converted to the compute dtype.
//
// Not wired into engine::Model yet (the sampler nodes call the UNet through Model): see README.md.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <ATen/ATen.h>

#include "core/status.h"
#include "engine/dit/flux.h"
#include "engine/dit/mmdit.h"
#include "engine/runtime/weights.h"
#include "engine/sampling/model_sampling.h"

namespace netdist::dit {

enum class DitFamily { kSd3, kFluxDev, kFluxSchnell };  // kSd3: SD3 Medium, SD3.5 Medium and Large

std::string_view dit_family_name(DitFamily family);  // "SD3", "Flux dev", "Flux schnell"

// comfy/latent_formats.py: process_in(x) = (x − shift) · scale, process_out(x) = x / scale + shift.
struct DitLatentFormat {
  int64_t channels = 16;
  double scale_factor = 1.5305;
  double shift_factor = 0.0609;
  at::Tensor process_in(const at::Tensor& x) const { return (x - shift_factor) * scale_factor; }
  at::Tensor process_out(const at::Tensor& x) const { return x / scale_factor + shift_factor; }
};
DitLatentFormat dit_latent_format(DitFamily family);  // SD3 1.5305 / 0.0609, Flux 0.3611 / 0.1159

// The model sampling ComfyUI picks for the family (supported_models.py sampling_settings).
sampling::ModelSampling dit_model_sampling(DitFamily family);

struct DitDetection {
  DitFamily family = DitFamily::kSd3;
  std::string prefix;  // "" (diffusion-model file) or "model.diffusion_model."
};

// Which transformer the tensors hold, from names alone (comfy/model_detection.py's tells:
// joint_blocks.0.context_block.attn.qkv.weight → MMDiT, double_blocks.0.img_attn.norm.key_norm.scale → Flux,
// guidance_in.in_layer.weight → dev). kNotFound naming both tells when neither is there.
Result<DitDetection> detect_dit(const runtime::WeightMap& weights);

class DiffusionTransformer {
 public:
  // Detects, builds in `dtype` on `device` and loads the weights. `what` names the source in errors.
  static Result<std::unique_ptr<DiffusionTransformer>> load(const runtime::WeightMap& weights,
                                                            const std::string& what, at::ScalarType dtype,
                                                            at::Device device);

  // ComfyUI BaseModel.apply_model for CONST models: x [B, 16, h, w] float32 (the sampler's latent), sigma [B]
  // float32, context [B, L, width], y [B, pooled] (SD3: 2048, Flux: 768), guidance [B] (Flux dev; undefined
  // otherwise). Returns the denoised x0 = x − out·σ, float32 on x's device. Size limits and missing guidance
  // are Status errors, libtorch failures too.
  Result<at::Tensor> denoise(const at::Tensor& x, const at::Tensor& sigma, const at::Tensor& context,
                             const at::Tensor& y, const at::Tensor& guidance);

  DitFamily family() const { return family_; }
  const sampling::ModelSampling& sampling() const { return sampling_; }
  const DitLatentFormat& latent_format() const { return latent_; }
  at::ScalarType dtype() const { return dtype_; }
  torch::nn::Module& module();

 private:
  DiffusionTransformer(DitFamily family, at::ScalarType dtype);
  DitFamily family_;
  at::ScalarType dtype_;
  sampling::ModelSampling sampling_;
  DitLatentFormat latent_;
  MMDiT mmdit_{nullptr};
  Flux flux_{nullptr};
};

}  // namespace netdist::dit
