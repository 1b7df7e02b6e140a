// Encoder and Decoder of the ldm AutoencoderKL (ComfyUI comfy/ldm/modules/diffusionmodules/model.py),
// without timestep embedding and with attention only in the middle block (attn_resolutions = []).
// Child names reproduce the checkpoint names under "first_stage_model.encoder." / ".decoder.".
// GroupNorm is Normalize = GroupNorm(32, eps 1e-6). Inputs may be NCHW or channels_last.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "engine/unet/layers.h"

namespace netdist::vae {

struct VaeConfig;

// norm1, conv1 (3×3), norm2, conv2 (3×3), nin_shortcut (1×1) when channels change.
// [B, in, H, W] → [B, out, H, W].
class ResnetBlockImpl : public torch::nn::Module {
 public:
  ResnetBlockImpl(int64_t in_channels, int64_t out_channels, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);

 private:
  layers::GroupNorm norm1_{nullptr};
  layers::Conv2d conv1_{nullptr};
  layers::GroupNorm norm2_{nullptr};
  layers::Conv2d conv2_{nullptr};
  layers::Conv2d nin_shortcut_{nullptr};
};
TORCH_MODULE(ResnetBlock);

// Single-head self-attention over all H·W positions; q, k, v, proj_out are 1×1 convs ([C, C, 1, 1]).
// [B, C, H, W] → [B, C, H, W].
class AttnBlockImpl : public torch::nn::Module {
 public:
  AttnBlockImpl(int64_t channels, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);

 private:
  layers::GroupNorm norm_{nullptr};
  layers::Conv2d q_{nullptr};
  layers::Conv2d k_{nullptr};
  layers::Conv2d v_{nullptr};
  layers::Conv2d proj_out_{nullptr};
};
TORCH_MODULE(AttnBlock);

// image [B, in_channels, H, W] → moments [B, (double_z ? 2 : 1)·z_channels, H/2^(L-1), W/2^(L-1)].
// Each level but the last halves H, W with pad (0,1,0,1) + 3×3 stride-2 conv (H, W should be even there).
class EncoderImpl : public torch::nn::Module {
 public:
  EncoderImpl(const VaeConfig& config, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);

 private:
  layers::Conv2d conv_in_{nullptr};
  std::vector<std::vector<ResnetBlock>> blocks_;
  std::vector<layers::Conv2d> downsample_;
  ResnetBlock mid_block_1_{nullptr};
  AttnBlock mid_attn_1_{nullptr};
  ResnetBlock mid_block_2_{nullptr};
  layers::GroupNorm norm_out_{nullptr};
  layers::Conv2d conv_out_{nullptr};
};
TORCH_MODULE(Encoder);

// z [B, z_channels, h, w] → image [B, out_ch, h·2^(L-1), w·2^(L-1)] (nearest ×2 + 3×3 conv per level).
class DecoderImpl : public torch::nn::Module {
 public:
  DecoderImpl(const VaeConfig& config, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& z);

 private:
  layers::Conv2d conv_in_{nullptr};
  ResnetBlock mid_block_1_{nullptr};
  AttnBlock mid_attn_1_{nullptr};
  ResnetBlock mid_block_2_{nullptr};
  std::vector<std::vector<ResnetBlock>> blocks_;  // blocks_[level], level 0 = full resolution
  std::vector<layers::Conv2d> upsample_;          // upsample_[level], undefined for level 0
  layers::GroupNorm norm_out_{nullptr};
  layers::Conv2d conv_out_{nullptr};
};
TORCH_MODULE(Decoder);

}  // namespace netdist::vae
