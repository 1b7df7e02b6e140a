// Building blocks of the ldm UNet (ComfyUI comfy/ldm/modules/diffusionmodules/openaimodel.py and
// comfy/ldm/modules/attention.py). Child names reproduce the ldm checkpoint names. All blocks compute in the
// dtype of their input and parameters (which must agree) and accept NCHW or channels_last inputs.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "engine/unet/layers.h"

namespace netdist::unet {

// Sinusoidal embedding: t [B] (any float dtype) → [B, dim] float32, cat[cos(t·f), sin(t·f)] with
// f_i = exp(-ln(max_period)·i/(dim/2)), zero-padded when dim is odd (openaimodel timestep_embedding).
at::Tensor timestep_embedding(const at::Tensor& timesteps, int64_t dim, double max_period = 10000.0);

// ResBlock: in_layers [GroupNorm(32, eps 1e-5), SiLU, Conv3×3], emb_layers [SiLU, Linear], out_layers
// [GroupNorm, SiLU, Dropout, Conv3×3], skip_connection Conv1×1 when channels change.
// forward(x [B, in, H, W], emb [B, emb_channels]) → [B, out, H, W].
class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int64_t channels, int64_t emb_channels, int64_t out_channels, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& emb);

 private:
  layers::GroupNorm in_norm_{nullptr};
  layers::Conv2d in_conv_{nullptr};
  layers::Linear emb_linear_{nullptr};
  layers::GroupNorm out_norm_{nullptr};
  layers::Conv2d out_conv_{nullptr};
  layers::Conv2d skip_{nullptr};
};
TORCH_MODULE(ResBlock);

// Multi-head attention with to_q/to_k/to_v (no bias) and to_out.0 (Linear with bias).
// forward(x [B, N, query_dim], context [B, M, context_dim] or undefined for self-attention) → [B, N, query_dim].
class CrossAttentionImpl : public torch::nn::Module {
 public:
  CrossAttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads, int64_t head_dim,
                     const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context);

 private:
  int64_t heads_;
  int64_t head_dim_;
  layers::Linear to_q_{nullptr};
  layers::Linear to_k_{nullptr};
  layers::Linear to_v_{nullptr};
  layers::Linear to_out_{nullptr};
};
TORCH_MODULE(CrossAttention);

// FeedForward with GEGLU: net.0.proj Linear(dim, 2·4·dim) → (a, gate) = chunk(2) → a·gelu(gate) (exact GELU)
// → net.2 Linear(4·dim, dim). x [..., dim] → [..., dim].
class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t dim, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);

 private:
  layers::Linear proj_{nullptr};
  layers::Linear out_{nullptr};
};
TORCH_MODULE(FeedForward);

// x += attn1(norm1(x)); x += attn2(norm2(x), context); x += ff(norm3(x)); LayerNorm eps 1e-5.
// x [B, N, dim], context [B, M, context_dim].
class BasicTransformerBlockImpl : public torch::nn::Module {
 public:
  BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t head_dim, int64_t context_dim,
                            const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context);

 private:
  CrossAttention attn1_{nullptr};
  CrossAttention attn2_{nullptr};
  FeedForward ff_{nullptr};
  layers::LayerNorm norm1_{nullptr};
  layers::LayerNorm norm2_{nullptr};
  layers::LayerNorm norm3_{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

// norm GroupNorm(32, eps 1e-6) → proj_in (1×1 conv, or Linear after flattening when use_linear) →
// transformer_blocks → proj_out → + x. x [B, C, H, W], context [B, M, context_dim] → [B, C, H, W].
class SpatialTransformerImpl : public torch::nn::Module {
 public:
  SpatialTransformerImpl(int64_t channels, int64_t heads, int64_t head_dim, int64_t depth, int64_t context_dim,
                         bool use_linear, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context);

 private:
  bool use_linear_;
  layers::GroupNorm norm_{nullptr};
  layers::Conv2d proj_in_conv_{nullptr};
  layers::Conv2d proj_out_conv_{nullptr};
  layers::Linear proj_in_linear_{nullptr};
  layers::Linear proj_out_linear_{nullptr};
  std::vector<BasicTransformerBlock> blocks_;
};
TORCH_MODULE(SpatialTransformer);

// op: Conv3×3 stride 2 padding 1. [B, C, H, W] → [B, C, ceil(H/2), ceil(W/2)].
class DownsampleImpl : public torch::nn::Module {
 public:
  DownsampleImpl(int64_t channels, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);

 private:
  layers::Conv2d op_{nullptr};
};
TORCH_MODULE(Downsample);

// Nearest upsample to `size` (the matching skip tensor's H, W; default 2H, 2W), then conv Conv3×3.
class UpsampleImpl : public torch::nn::Module {
 public:
  UpsampleImpl(int64_t channels, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, std::optional<std::pair<int64_t, int64_t>> size);

 private:
  layers::Conv2d conv_{nullptr};
};
TORCH_MODULE(Upsample);

}  // namespace netdist::unet
