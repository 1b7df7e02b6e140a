// ControlNet (ComfyUI comfy/controlnet.py, comfy/cldm/cldm.py): load a ControlNet file and attach it, with
// its hint image, to conditioning entries (ControlNetApply / ControlNetApplyAdvanced), so that sample()
// adds its residuals into the UNet's skip connections.
//
//   auto cn = netdist::load_controlnet("models/controlnet/canny.safetensors", {}).value();
//   auto apply = std::make_shared<netdist::ControlApply>();
//   apply->net = cn; apply->hint = image.permute({0, 3, 1, 2});  // IMAGE [N, H, W, 3] → [N, 3, H, W]
//   for (auto& e : positive) e.control = apply;
//
// Supported: SD1.x/SD2.x/SDXL ControlNets (cldm ControlNet) in the ldm layout ("control_model." prefix, as
// the original .pth files, or none) and diff ControlNets (DiffControlNetLoader: a "difference" tensor; the
// model's UNet weights are added). Refused as kUnsupported naming the file: control-lora, diffusers-layout
// ControlNets, T2I adapters and the SD3/Flux/HunyuanDiT families. A ControlNet of another family than the
// model (context width, ADM width, skip channels) or a hint of another channel count is invalid_argument at
// sampling.
//
// Thread-safety: a ControlNet is immutable after loading and may be shared by concurrent samplings.
#pragma once

#include <memory>
#include <string>

#include <ATen/ATen.h>

#include "core/status.h"
#include "netdist/engine.h"

namespace netdist {

class ControlNet;  // engine/control/controlnet.h

// ControlNetLoader / DiffControlNetLoader. `diff_base` (DiffControlNetLoader's model) provides the UNet
// weights a diff ControlNet is stored relative to; ignored for ordinary files. The weights live on
// options.device in the precision the UNet would get. Errors name the file: unreadable, not a ControlNet,
// unsupported kind.
Result<std::shared_ptr<ControlNet>> load_controlnet(const std::string& path, const EngineOptions& options,
                                                    const Model* diff_base = nullptr);

// What a loaded ControlNet is (for messages and /object_info-independent checks).
struct ControlNetInfo {
  std::string path;
  int64_t context_dim = 0, adm_in_channels = 0, model_channels = 0, hint_channels = 3;
};
ControlNetInfo controlnet_info(const ControlNet& net);

// One ControlNet applied to conditioning entries (ComfyUI's ControlBase with set_cond_hint): `hint`
// [M, C, H, W] float32 CPU (the IMAGE moved to channels-first), resized at sampling time to the latent × 8
// (nearest-exact, centre crop); latent row i uses hint row i % M. Active while start_percent ≤ progress ≤
// end_percent (converted to sigmas as ComfyUI's percent_to_sigma). `previous`: the ControlNet the entry had
// before (chained applications add their residuals, previous first).
struct ControlApply {
  std::shared_ptr<ControlNet> net;
  at::Tensor hint;
  double strength = 1.0;
  double start_percent = 0.0, end_percent = 1.0;
  std::shared_ptr<const ControlApply> previous;
};

}  // namespace netdist
