// The cldm ControlNet (ComfyUI comfy/cldm/cldm.py ControlNet) and how one UNet call gets its residuals
// (comfy/controlnet.py ControlNet.get_control / control_merge, broadcast_image_to; comfy/samplers.py
// pre_run_control's percent_to_sigma). Internal to src/engine/; nodes use include/netdist/controlnet.h.
//
// Module parameter names are ComfyUI's state-dict names without a prefix: time_embed.*, label_emb.*,
// input_blocks.*, zero_convs.N.0.*, input_hint_block.{0,2,...,14}.*, middle_block.*, middle_block_out.0.*.
// The input part is the UNet's (engine/unet), built from the same UNetConfig (its output fields unused).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "engine/cond_batch.h"
#include "engine/runtime/weights.h"
#include "engine/sampling/model_sampling.h"
#include "engine/unet/unet.h"
#include "netdist/controlnet.h"

namespace netdist::control {

class ControlNetModelImpl : public torch::nn::Module {
 public:
  // ND_ASSERTs config.validate_structure() for the input part; use detect_controlnet_config first.
  ControlNetModelImpl(const unet::UNetConfig& config, int64_t hint_channels,
                      const at::TensorOptions& options);

  // x [B, in_channels, h, w] (the UNet's scaled input), hint [B, hint_channels, 8h, 8w], timesteps [B],
  // context [B, L, context_dim], y [B, adm] or undefined. Returns {input: {}, middle: [1], output: one per
  // input block} as cldm's forward (no strength applied).
  unet::UNetControl forward(const at::Tensor& x, const at::Tensor& hint, const at::Tensor& timesteps,
                            const at::Tensor& context, const at::Tensor& y);

  const unet::UNetConfig& config() const { return config_; }
  int64_t hint_channels() const { return hint_channels_; }
  // Channels of each zero conv, in input-block order (what the UNet's skips must have).
  const std::vector<int64_t>& skip_channels() const { return skip_channels_; }

 private:
  unet::UNetConfig config_;
  int64_t hint_channels_;
  std::vector<int64_t> skip_channels_;
  layers::Linear time_embed_0_{nullptr}, time_embed_2_{nullptr};
  layers::Linear label_emb_0_{nullptr}, label_emb_2_{nullptr};
  std::vector<layers::Conv2d> hint_convs_;
  std::vector<unet::EmbedSequential> input_blocks_;
  std::vector<layers::Conv2d> zero_convs_;
  unet::EmbedSequential middle_block_{nullptr};
  layers::Conv2d middle_out_{nullptr};
};
TORCH_MODULE(ControlNetModel);

// The ControlNet config from state-dict names under `prefix` (ComfyUI's model_config_from_unet on the
// ControlNet keys): the input blocks and middle block as detect_unet_config reads them; heads as the
// supported models choose (8 heads for the SD1 shape, 64-channel heads otherwise). invalid_argument naming
// the prefix when the keys are not a ControlNet.
Result<unet::UNetConfig> detect_controlnet_config(const runtime::WeightMap& weights,
                                                  const std::string& prefix);

}  // namespace netdist::control

namespace netdist {

class ControlNet {
 public:
  std::string path_;
  control::ControlNetModel model_{nullptr};
  at::ScalarType dtype_ = at::kFloat;
  at::Device device_ = at::kCPU;
  // load_controlnet's global_average_pooling: files named *_shuffle / *_shuffle_fp16 (ComfyUI's rule).
  bool global_average_pooling_ = false;
};

}  // namespace netdist

namespace netdist::control {

// ComfyUI's ModelSampling.percent_to_sigma: 1e9-ish (999999999.9) at ≤ 0, 0 at ≥ 1, else
// sigma((1 − percent)·999) as a float32 value (discrete); flow schedules as theirs.
double percent_to_sigma(const sampling::ModelSampling& ms, double percent);

// Whether `net` fits a UNet of `config`: same context width, ADM width and skip channels. invalid_argument
// naming the ControlNet file and `model_path` otherwise ("a ControlNet of another family than the model").
Status check_fits(const ControlNet& net, const unet::UNetConfig& config, const std::string& model_path);

// The residuals of one UNet call (ComfyUI ControlNet.get_control over the chain, previous first): x the
// scaled latent input [k·B, C, h, w] of k conditioning blocks of the same B images (global rows row_begin ..
// row_begin + B), t the UNet timesteps [k·B], context/y as the UNet gets them, `sigma` the call's sigma.
// Returns nullopt when no ControlNet of the chain is active at sigma.
std::optional<unet::UNetControl> chain_control(const ControlApply& apply, const sampling::ModelSampling& ms,
                                               const at::Tensor& x, const at::Tensor& t,
                                               const at::Tensor& context, const at::Tensor& y, double sigma,
                                               int64_t row_begin, int64_t images);

// The hint rows [k·B, C, 8h, 8w] that chain_control feeds `apply.net` (rows row_begin.. of the batch,
// hint row i % M, resized nearest-exact with a centre crop, repeated for k blocks), in `options`.
at::Tensor hint_rows(const ControlApply& apply, int64_t row_begin, int64_t images, int64_t blocks, int64_t h,
                     int64_t w, const at::TensorOptions& options);

// The checks sample() makes on an entry's chain: each ControlNet fits the UNet (check_fits), lives on the
// model's device, and its hint is [M, hint_channels, H, W] floating point (invalid_argument naming "image").
Status check_chain(const ControlApply& apply, const unet::UNetConfig& config, const at::Device& device,
                   const std::string& model_path);

// Whether any entry of the lists has a ControlNet.
bool any_control(const std::vector<cond::CondRow>& positive, const std::vector<cond::CondRow>& negative);

// Appends the chain's residuals for one micro-batch call to `inputs` (after the UNet's inputs): its middle
// count, then middle and output tensors; nothing when no ControlNet is active at sigma[0]. x is the scaled
// latent rows of the call ([k·B, C, h, w], block-major), inputs[1] the timesteps, inputs[2] the context,
// inputs[3] y when present; row_begin the global row of the call's first image, `images` the rows per block.
void append_call_control(const ControlApply& apply, const sampling::ModelSampling& ms, const at::Tensor& x,
                         std::vector<at::Tensor>& inputs, const at::Tensor& sigma, int64_t row_begin,
                         int64_t images);

// The residuals append_call_control added after the first `base` inputs, or nullopt.
std::optional<unet::UNetControl> call_control_from(const std::vector<at::Tensor>& inputs, size_t base);

// Tracks which entries' ControlNet the current model call is for (cond::CallHook).
struct CallTracker {
  const ControlApply* current = nullptr;
  cond::CallHook hook() {
    return [this](const cond::CondRow& first) { current = first.control.get(); };
  }
};

}  // namespace netdist::control
