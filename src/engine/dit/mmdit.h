// The MMDiT of Stable Diffusion 3 / 3.5 (Medium, Large) as the pinned ComfyUI runs it
// (comfy/ldm/modules/diffusionmodules/mmdit.py, OpenAISignatureMMDITWrapper without control or patches).
//
// Parameter names are ComfyUI's below "model.diffusion_model." (a separate diffusion-model file has them
// with no prefix): x_embedder.proj.weight, pos_embed, t_embedder.mlp.0.weight, y_embedder.mlp.2.bias,
// context_embedder.weight, joint_blocks.N.{context_block,x_block}.{attn,attn2}.{qkv,proj,ln_q,ln_k},
// joint_blocks.N.*.mlp.fc1, joint_blocks.N.*.adaLN_modulation.1, final_layer.{linear,adaLN_modulation.1}.
// Parameters are allocated uninitialized in the given TensorOptions (torch::kMeta builds a shape-only
// model). Not thread-safe: one forward at a time per instance.
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

struct MMDiTConfig {
  int64_t in_channels = 16;
  int64_t out_channels = 16;
  int64_t patch_size = 2;
  int64_t depth = 24;              // hidden = 64·depth, heads = depth (head size 64), as MMDiT.__init__
  int64_t num_blocks = 24;         // joint blocks; == depth in every released file
  int64_t mlp_hidden = 0;          // fc1 width; 0 → int(hidden · 4.0)
  int64_t adm_in_channels = 0;     // y_embedder input (2048 for SD3/3.5); 0 → no y_embedder
  int64_t context_in = 0;          // context_embedder in_features (4096); 0 → identity
  int64_t pos_embed_max_size = 0;  // √num_patches of the pos_embed buffer (192, 384 for 3.5 Medium)
  bool qk_norm_rms = false;        // SD3.5: rms ln_q/ln_k over each head
  std::vector<int64_t> x_block_self_attn_layers;  // SD3.5 Medium: 0..12

  int64_t hidden() const { return 64 * depth; }
  int64_t heads() const { return depth; }
  int64_t mlp_width() const { return mlp_hidden > 0 ? mlp_hidden : hidden() * 4; }
  // "sd3", "sd35m" or "sd35l"-like, for messages and logs.
  std::string describe() const;
};

// The config of the MMDiT whose tensors are weights[prefix + name] (shapes only: meta tensors work), as
// comfy/model_detection.py detect_unet_config reads it for `joint_blocks.0.context_block.attn.qkv.weight`.
// Errors (kNotFound/kUnsupported) name the missing or unexpected tensor.
Result<MMDiTConfig> detect_mmdit_config(const runtime::WeightMap& weights, std::string_view prefix);

// mmdit.py SelfAttention: qkv (bias), optional proj, optional rms ln_q/ln_k.
class MMDiTAttentionImpl : public torch::nn::Module {
 public:
  MMDiTAttentionImpl(int64_t dim, int64_t heads, bool pre_only, bool qk_norm_rms,
                     const at::TensorOptions& options);
  // x [B, L, C] → q, k, v [B, H, L, 64] (q and k normalized per head).
  std::vector<at::Tensor> pre_attention(const at::Tensor& x);
  at::Tensor post_attention(const at::Tensor& x) { return proj_->forward(x); }

 private:
  int64_t heads_;
  layers::Linear qkv_{nullptr};
  layers::Linear proj_{nullptr};
  at::Tensor ln_q_;
  at::Tensor ln_k_;
};
TORCH_MODULE(MMDiTAttention);

// mmdit.py DismantledBlock (LayerNorm, GELU-tanh Mlp, adaLN with 2/6/9 modulations).
class DismantledBlockImpl : public torch::nn::Module {
 public:
  DismantledBlockImpl(const MMDiTConfig& config, bool pre_only, bool x_self_attn,
                      const at::TensorOptions& options);

  struct Pre {
    std::vector<at::Tensor> qkv;   // for the joint attention
    std::vector<at::Tensor> qkv2;  // x_block_self_attn only
    std::vector<at::Tensor> mods;  // the adaLN chunks
  };
  Pre pre_attention(const at::Tensor& x, const at::Tensor& c);
  // The block's output from the joint attention result (and attn2's, with x_block_self_attn).
  at::Tensor post_attention(const at::Tensor& x, const Pre& pre, const at::Tensor& attn,
                            const at::Tensor& attn2);
  bool pre_only() const { return pre_only_; }
  bool x_self_attn() const { return x_self_attn_; }

 private:
  bool pre_only_;
  bool x_self_attn_;
  MMDiTAttention attn_{nullptr};
  MMDiTAttention attn2_{nullptr};
  layers::Linear fc1_{nullptr};
  layers::Linear fc2_{nullptr};
  AdaLnModulation ada_{nullptr};
};
TORCH_MODULE(DismantledBlock);

class MMDiTImpl : public torch::nn::Module {
 public:
  explicit MMDiTImpl(const MMDiTConfig& config, const at::TensorOptions& options = at::kFloat);

  // x [B, in_channels, H, W] in the model's dtype (any H, W whose patched size fits pos_embed_max_size:
  // check_size first), timesteps [B] (the discrete-flow t = sigma · 1000), context [B, L, context_in],
  // y [B, adm_in_channels] or undefined. Returns [B, out_channels, H, W] in x's dtype.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& timesteps, const at::Tensor& context,
                     const at::Tensor& y);

  // OK when a latent of h×w fits the positional embedding; invalid_argument naming the limit otherwise.
  Status check_size(int64_t h, int64_t w) const;
  const MMDiTConfig& config() const { return config_; }

 private:
  at::Tensor cropped_pos_embed(int64_t h, int64_t w) const;
  at::Tensor unpatchify(const at::Tensor& x, int64_t h, int64_t w) const;

  MMDiTConfig config_;
  layers::Conv2d x_embedder_{nullptr};
  at::Tensor pos_embed_;
  SiluMlp t_embedder_{nullptr};
  SiluMlp y_embedder_{nullptr};
  layers::Linear context_embedder_{nullptr};
  std::vector<DismantledBlock> context_blocks_;
  std::vector<DismantledBlock> x_blocks_;
  layers::Linear final_linear_{nullptr};
  AdaLnModulation final_ada_{nullptr};
};
TORCH_MODULE(MMDiT);

}  // namespace netdist::dit
