// AutoencoderKL (SD1.x / SD2.x / SDXL VAE) as ComfyUI runs it (comfy/ldm/models/autoencoder.py, comfy/sd.py VAE).
//
// Parameter names are the checkpoint names below "first_stage_model." (encoder.down.0.block.0.norm1.weight,
// decoder.mid.attn_1.q.weight [512,512,1,1], quant_conv.weight, post_quant_conv.weight, ...). Parameters are
// allocated uninitialized in the given TensorOptions (torch::kMeta builds a shape-only model); fill them with
// runtime::load_module_weights. Pixel scaling ([0,1] ↔ [-1,1]) and the latent scale factor (0.18215 SD1/SD2,
// 0.13025 SDXL) are the caller's: ComfyUI feeds encode() image·2−1 and turns decode() output into
// clamp((x+1)/2, 0, 1). Not thread-safe: one call at a time per instance.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "core/status.h"
#include "engine/runtime/weights.h"
#include "engine/vae/vae_blocks.h"

namespace netdist::vae {

struct VaeConfig {
  int64_t ch = 128;
  std::vector<int64_t> ch_mult = {1, 2, 4, 4};
  int64_t num_res_blocks = 2;
  int64_t z_channels = 4;
  int64_t embed_dim = 4;
  bool double_z = true;
  // quant_conv / post_quant_conv present. SD3 and Flux VAEs have neither (ComfyUI then builds an
  // AutoencodingEngine: encoder → latent, latent → decoder); embed_dim is z_channels then.
  bool use_quant_conv = true;
  int64_t in_channels = 3;
  int64_t out_channels = 3;

  // The SD1.x/SD2.x/SDXL VAE (they share one architecture).
  static VaeConfig sd();
  // ch 32, ch_mult [1, 2], 1 res block: 2× down-sampling, for tests.
  static VaeConfig tiny();

  // 2^(levels-1): pixels per latent cell along each axis (8 for sd()).
  int64_t downscale() const { return int64_t{1} << (ch_mult.size() - 1); }

  Status validate() const;
  bool operator==(const VaeConfig&) const = default;
  std::string to_string() const;
};

// Reads the config from tensor names and shapes under `prefix` (e.g. "first_stage_model."): ch and
// in_channels from encoder.conv_in, levels from decoder.up.*, ch_mult from each level's block widths,
// num_res_blocks from decoder.up.0.block.*, z_channels from decoder.conv_in, double_z from encoder.conv_out,
// embed_dim from post_quant_conv (use_quant_conv false and embed_dim = z_channels when neither quant_conv nor
// post_quant_conv is there, as in SD3/Flux VAEs). Errors name the missing or inconsistent tensor.
Result<VaeConfig> detect_vae_config(const runtime::WeightMap& weights, std::string_view prefix);

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  // ND_ASSERTs config.validate().
  explicit AutoencoderKLImpl(const VaeConfig& config, const at::TensorOptions& options = at::kFloat);

  // image [B, in_channels, H, W] in [-1, 1], model dtype, H and W multiples of downscale() (ComfyUI crops
  // to that before encoding) → moments [B, 2·embed_dim, H/d, W/d]: mean then log-variance along dim 1.
  at::Tensor encode_moments(const at::Tensor& image);

  // The latent mean (the distribution's mode) [B, embed_dim, H/d, W/d]. ComfyUI's VAEEncode instead draws
  // mean + std·N(0,1) from torch's global RNG (DiagonalGaussianRegularizer(sample=True)); use
  // latent_sample() with caller-drawn noise to reproduce that. For SD VAEs std is ~1e-3 or less.
  at::Tensor encode(const at::Tensor& image);

  // z [B, embed_dim, h, w] (already divided by the scale factor) in the model dtype →
  // image [B, out_channels, h·d, w·d] in about [-1, 1], model dtype.
  at::Tensor decode(const at::Tensor& z);

  // ComfyUI VAE.decode_tiled_: the mean of three tiled decodes with latent tiles (2·tile × tile/2),
  // (tile/2 × 2·tile) and (tile × tile) (height × width), `overlap` latent cells between neighbours,
  // each tile's output weighted by a linear feather over overlap·d pixels at its edges.
  // z as for decode(); returns float32 [B, out_channels, h·d, w·d] on z's device. VAEDecodeTiled's
  // tile_size/overlap in pixels map to tile = tile_size/d, overlap = overlap/d.
  at::Tensor decode_tiled(const at::Tensor& z, int64_t tile = 64, int64_t overlap = 16);

  const VaeConfig& config() const { return config_; }

 private:
  VaeConfig config_;
  Encoder encoder_{nullptr};
  Decoder decoder_{nullptr};
  layers::Conv2d quant_conv_{nullptr};
  layers::Conv2d post_quant_conv_{nullptr};
};
TORCH_MODULE(AutoencoderKL);

// moments [B, 2·C, h, w] → mean [B, C, h, w].
at::Tensor latent_mean(const at::Tensor& moments);
// moments, noise [B, C, h, w] → mean + exp(0.5·clamp(logvar, -30, 20))·noise (DiagonalGaussianDistribution.sample).
at::Tensor latent_sample(const at::Tensor& moments, const at::Tensor& noise);

}  // namespace netdist::vae
