// The Flux.1 transformer (dev, schnell) as the pinned ComfyUI runs it (comfy/ldm/flux/model.py, layers.py,
// math.py: Flux.forward without control, patches or attention mask).
//
// Parameter names are ComfyUI's below "model.diffusion_model." (a separate diffusion-model file has them
// with no prefix): img_in, time_in.{in_layer,out_layer}, vector_in.*, guidance_in.* (dev only), txt_in,
// double_blocks.N.{img,txt}_{mod.lin,attn.qkv,attn.norm.query_norm.scale,attn.norm.key_norm.scale,attn.proj,
// mlp.0,mlp.2}, single_blocks.N.{linear1,linear2,norm.*.scale,modulation.lin}, final_layer.{linear,
// adaLN_modulation.1}. Parameters are allocated uninitialized in the given TensorOptions (torch::kMeta
// builds a shape-only model). Not thread-safe: one forward at a time per instance.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "core/status.h"
#include "engine/dit/dit_layers.h"
#include "engine/runtime/weights.h"

namespace netdist::dit {

struct FluxConfig {
  int64_t in_channels = 16;  // latent channels (img_in takes in_channels · 4)
  int64_t out_channels = 16;
  int64_t vec_in_dim = 768;
  int64_t context_in_dim = 4096;
  int64_t hidden = 3072;
  int64_t heads = 24;
  int64_t mlp_hidden = 12288;  // hidden · mlp_ratio (4.0)
  int64_t depth = 19;          // double-stream blocks
  int64_t depth_single = 38;   // single-stream blocks
  std::vector<int64_t> axes_dim{16, 56, 56};
  double theta = 10000.0;
  bool guidance_embed = true;  // dev: guidance_in present

  int64_t head_dim() const { return hidden / heads; }
  std::string describe() const;
};

// The config of the Flux model whose tensors are weights[prefix + name] (shapes only: meta tensors work),
// as comfy/model_detection.py does for `double_blocks.0.img_attn.norm.key_norm.scale`, except that
// hidden, heads (hidden / the norm scale's size), vec/context widths and the MLP width are read from the
// shapes instead of fixed at Flux.1's; axes_dim is [d/8, 7d/16, 7d/16] of the head size d ([16, 56, 56]
// for d = 128). Errors name the missing or inconsistent tensor.
Result<FluxConfig> detect_flux_config(const runtime::WeightMap& weights, std::string_view prefix);

// flux/layers.py SelfAttention's parameters (qkv, norm.{query,key}_norm.scale, proj).
class FluxAttentionImpl : public torch::nn::Module {
 public:
  FluxAttentionImpl(const FluxConfig& config, const at::TensorOptions& options);
  // x [B, L, C] → q, k, v [B, H, L, d] with q and k rms-normalized.
  std::vector<at::Tensor> qkv(const at::Tensor& x);
  at::Tensor proj(const at::Tensor& x) { return proj_->forward(x); }

 private:
  int64_t heads_;
  layers::Linear qkv_{nullptr};
  layers::Linear proj_{nullptr};
  at::Tensor query_norm_;
  at::Tensor key_norm_;
};
TORCH_MODULE(FluxAttention);

class DoubleStreamBlockImpl : public torch::nn::Module {
 public:
  DoubleStreamBlockImpl(const FluxConfig& config, const at::TensorOptions& options);
  // img [B, N, C], txt [B, L, C], vec [B, C], pe [B, 1, L + N, d/2, 2, 2] → (img, txt).
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& img, const at::Tensor& txt,
                                            const at::Tensor& vec, const at::Tensor& pe);

 private:
  struct Stream {
    layers::Linear mod{nullptr};
    FluxAttention attn{nullptr};
    layers::Linear mlp0{nullptr};
    layers::Linear mlp2{nullptr};
  };
  Stream make_stream(const std::string& name, const FluxConfig& config, const at::TensorOptions& options);
  Stream img_;
  Stream txt_;
};
TORCH_MODULE(DoubleStreamBlock);

class SingleStreamBlockImpl : public torch::nn::Module {
 public:
  SingleStreamBlockImpl(const FluxConfig& config, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& vec, const at::Tensor& pe);

 private:
  int64_t hidden_;
  int64_t heads_;
  int64_t mlp_hidden_;
  layers::Linear linear1_{nullptr};
  layers::Linear linear2_{nullptr};
  at::Tensor query_norm_;
  at::Tensor key_norm_;
  layers::Linear mod_{nullptr};
};
TORCH_MODULE(SingleStreamBlock);

class FluxImpl : public torch::nn::Module {
 public:
  explicit FluxImpl(const FluxConfig& config, const at::TensorOptions& options = at::kFloat);

  // x [B, in_channels, H, W] in the model's dtype (any H, W ≥ 1), timesteps [B] (sigma: Flux's model
  // sampling has multiplier 1), context [B, L, context_in_dim], y [B, ≥ vec_in_dim] (the pooled CLIP-L),
  // guidance [B] (dev; undefined for schnell). Returns [B, out_channels, H, W] in x's dtype.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& timesteps, const at::Tensor& context,
                     const at::Tensor& y, const at::Tensor& guidance);

  const FluxConfig& config() const { return config_; }

 private:
  FluxConfig config_;
  layers::Linear img_in_{nullptr};
  SiluMlp time_in_{nullptr};
  SiluMlp vector_in_{nullptr};
  SiluMlp guidance_in_{nullptr};
  layers::Linear txt_in_{nullptr};
  std::vector<DoubleStreamBlock> double_blocks_;
  std::vector<SingleStreamBlock> single_blocks_;
  layers::Linear final_linear_{nullptr};
  AdaLnModulation final_ada_{nullptr};
};
TORCH_MODULE(Flux);

// The RoPE table of flux/layers.py EmbedND for ids [B, N, axes]: [B, 1, N, d/2, 2, 2] float32.
at::Tensor flux_rope_embed(const at::Tensor& ids, const std::vector<int64_t>& axes_dim, double theta);

}  // namespace netdist::dit
