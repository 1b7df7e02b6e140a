// Test helper: tiny single-file checkpoints shaped like a family the engine refuses (an SDXL refiner, an
// inpainting UNet, ...): the UNet of UNetConfig::tiny() with the family's tell (input channels, ADM width)
// under model.diffusion_model., a tiny VAE under first_stage_model. and a tiny CLIP under the family's
// text-encoder prefix, written with the real safetensors writer. Weights are zeros: only shapes matter.
#pragma once

#include <map>
#include <string>

#include <torch/torch.h>

#include "engine/runtime/tensor_io.h"
#include "engine/text/clip_text_model.h"
#include "engine/unet/unet.h"
#include "engine/vae/vae.h"

namespace netdist::testing {

struct TinyCheckpointShape {
  int64_t model_channels = 64;  // 64: level widths 64 and 128 split into 64-wide heads
  int64_t in_channels = 4;     // 9 inpainting, 5 depth, 8 instruct-pix2pix / edit
  int64_t adm_channels = 0;    // 2560 SDXL refiner, 2816 SDXL
  std::string text_prefix = "cond_stage_model.transformer.";  // refiner: conditioner.embedders.0.model.
  std::map<std::string, std::string> metadata;
};

inline void add_module(runtime::WeightMap& out, torch::nn::Module& module, const std::string& prefix) {
  for (const auto& p : module.named_parameters(true)) out[prefix + p.key()] = at::zeros_like(p.value());
  for (const auto& b : module.named_buffers(true)) out[prefix + b.key()] = at::zeros_like(b.value());
}

inline Status write_tiny_checkpoint(const std::string& path, const TinyCheckpointShape& shape) {
  runtime::WeightMap w;
  unet::UNetConfig u = unet::UNetConfig::tiny();
  u.model_channels = shape.model_channels;
  u.in_channels = shape.in_channels;
  u.adm_in_channels = shape.adm_channels;
  u.use_linear_in_transformer = shape.adm_channels > 0;  // SDXL-family UNets use linear proj_in/out
  unet::UNetModel unet(u);
  add_module(w, *unet, "model.diffusion_model.");
  vae::AutoencoderKL vae(vae::VaeConfig::tiny());
  add_module(w, *vae, "first_stage_model.");
  text::ClipTextConfig c = text::ClipTextConfig::tiny();
  c.hidden_size = 64;  // one 64-wide head: the width detection reads checkpoints' CLIP heads at
  c.num_heads = 1;
  c.intermediate_size = 128;
  text::ClipTextModel clip(c);
  add_module(w, *clip, shape.text_prefix);
  if (shape.text_prefix == "cond_stage_model.transformer.") {  // SD1's CLIP-L ships no projection
    w.erase(shape.text_prefix + "text_model.text_projection.weight");
    w.erase(shape.text_prefix + "text_projection.weight");
  }
  return runtime::save_safetensors(path, w, shape.metadata);
}

}  // namespace netdist::testing
