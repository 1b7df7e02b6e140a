// The ldm/sgm UNet (SD1.x, SD2.x, SDXL) as ComfyUI runs it (openaimodel.UNetModel without control or patches).
//
// Parameter names are the checkpoint names below "model.diffusion_model." (time_embed.0.weight,
// input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight, label_emb.0.0.weight, out.2.weight, ...), so
// runtime::load_module_weights(unet, weights, "model.diffusion_model.", file) fills a model built from
// detect_unet_config(). Parameters are allocated uninitialized in the given TensorOptions (dtype, device;
// torch::kMeta builds a shape-only model). Not thread-safe: one forward at a time per instance.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "engine/unet/unet_blocks.h"
#include "engine/unet/unet_config.h"

namespace netdist::unet {

// One entry of input_blocks / middle_block / output_blocks (ComfyUI TimestepEmbedSequential): children "0",
// "1", ... each a Conv2d (input_blocks.0 only), ResBlock, SpatialTransformer, Downsample or Upsample.
class EmbedSequentialImpl : public torch::nn::Module {
 public:
  void add(layers::Conv2d conv);
  void add(ResBlock block);
  void add(SpatialTransformer block);
  void add(Downsample block);
  void add(Upsample block);

  // x [B, C, H, W], emb [B, time_embed_dim], context [B, M, context_dim]; upsample_size is the H, W an
  // Upsample child must produce (the next skip tensor's), when there is one.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& emb, const at::Tensor& context,
                     std::optional<std::pair<int64_t, int64_t>> upsample_size);

 private:
  struct Layer {
    layers::Conv2d conv{nullptr};
    ResBlock res{nullptr};
    SpatialTransformer transformer{nullptr};
    Downsample down{nullptr};
    Upsample up{nullptr};
  };
  std::string next_name() const { return std::to_string(layers_.size()); }
  std::vector<Layer> layers_;
};
TORCH_MODULE(EmbedSequential);

// ControlNet residuals for one UNet call (ComfyUI's control dict, as openaimodel's apply_control consumes it):
// each list is used from its back — `input` after input block 0, 1, ... (its last entry first), `middle` after
// the middle block, `output` on the skip tensor each output block takes (last entry on the first output block,
// i.e. the skip of the last input block). An undefined entry or an exhausted list adds nothing. Entries are
// [B, C, h, w] in the model's dtype, added in place (h += ctrl).
struct UNetControl {
  std::vector<at::Tensor> input, middle, output;
};

class UNetModelImpl : public torch::nn::Module {
 public:
  // ND_ASSERTs config.validate(); check it (or detect it) first.
  explicit UNetModelImpl(const UNetConfig& config, const at::TensorOptions& options = at::kFloat);

  // x [B, in_channels, h, w] in the model's dtype (h, w any size ≥ 1; odd sizes are handled as ComfyUI does),
  // timesteps [B] (float, the discrete-time t = sigma_to_t(sigma)), context [B, 77·k, context_dim] in the
  // model's dtype, y [B, adm_in_channels] when config.adm_in_channels > 0 (else undefined).
  // Returns the model output (eps or v) [B, out_channels, h, w] in x's dtype.
  // `control`: ControlNet residuals (UNetControl) or nullptr.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& timesteps, const at::Tensor& context,
                     const at::Tensor& y = at::Tensor(), const UNetControl* control = nullptr);

  const UNetConfig& config() const { return config_; }

  // ComfyUI's output_block_patch hook: when set, forward calls it on (h, hsp) before each output block
  // concatenates them (FreeU: engine/model_patches.h). sample() sets it under the model's lock.
  std::function<void(at::Tensor& h, at::Tensor& hsp)> output_block_patch;

 private:
  // time_embed and (with an ADM input) label_emb, as ComfyUI names them.
  void build_embeddings(int64_t time_dim, const at::TensorOptions& options);
  UNetConfig config_;
  layers::Linear time_embed_0_{nullptr};
  layers::Linear time_embed_2_{nullptr};
  layers::Linear label_emb_0_{nullptr};
  layers::Linear label_emb_2_{nullptr};
  std::vector<EmbedSequential> input_blocks_;
  EmbedSequential middle_block_{nullptr};
  std::vector<EmbedSequential> output_blocks_;
  layers::GroupNorm out_norm_{nullptr};
  layers::Conv2d out_conv_{nullptr};
};
TORCH_MODULE(UNetModel);

}  // namespace netdist::unet
