// The engine side of include/netdist/model_patches.h: what a Model handle carries (Model::patches_) and the
// exact arithmetic of ComfyUI's patch functions, in its order of operations (fp32 CPU results match
// ComfyUI's bit for bit or within rounding: engine/model_patches_test.cpp).
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include <ATen/ATen.h>

#include "engine/unet/unet.h"
#include "netdist/model_patches.h"

namespace netdist::patches {

struct FreeUPatch {
  bool v2 = false;
  double b1 = 1.1, b2 = 1.2, s1 = 0.9, s2 = 0.2;
};

struct ModelPatches {
  std::vector<FreeUPatch> output_block;  // run in order on every output block (ComfyUI output_block_patch)
  std::optional<double> rescale_cfg;     // RescaleCFG's multiplier (ComfyUI sampler_cfg_function)
  bool empty() const { return output_block.empty() && !rescale_cfg; }
};

// ComfyUI Fourier_filter(x, threshold, scale): fftn over the last two dims in float32, fftshift, the centre
// (2·threshold)² square scaled, ifftshift, ifftn, real part, back to x's dtype.
at::Tensor fourier_filter(const at::Tensor& x, int64_t threshold, double scale);

// One FreeU / FreeU_V2 output_block_patch on (h, hsp) for a UNet with `model_channels`: h is scaled in
// place, hsp replaced.
void apply_freeu(const FreeUPatch& p, int64_t model_channels, at::Tensor& h, at::Tensor& hsp);

// The UNet's output-block hook for `patches` (empty function when there are none).
std::function<void(at::Tensor&, at::Tensor&)> output_block_hook(const ModelPatches& patches,
                                                                int64_t model_channels);

// ComfyUI cfg_function: the guided x0 prediction from cond_pred/uncond_pred (x0 predictions) at x, sigma
// [B]: RescaleCFG's sampler_cfg_function when set, else uncond + (cond − uncond)·cfg. Without an
// unconditional pass (cfg 1), pass zeros as uncond_pred, as ComfyUI's calc_cond_batch leaves it.
at::Tensor combine_cfg(const ModelPatches& patches, const at::Tensor& cond_pred,
                       const at::Tensor& uncond_pred, double cfg, const at::Tensor& x,
                       const at::Tensor& sigma);

// Sets the UNet's output_block_patch from `patches` (may be null) for its lifetime; use under the model's
// lock.
class OutputBlockScope {
 public:
  OutputBlockScope(unet::UNetModelImpl& unet, const ModelPatches* patches) : unet_(unet) {
    if (patches != nullptr)
      unet_.output_block_patch = output_block_hook(*patches, unet_.config().model_channels);
  }
  ~OutputBlockScope() { unet_.output_block_patch = nullptr; }
  OutputBlockScope(const OutputBlockScope&) = delete;
  OutputBlockScope& operator=(const OutputBlockScope&) = delete;

 private:
  unet::UNetModelImpl& unet_;
};

}  // namespace netdist::patches
