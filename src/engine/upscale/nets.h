// The upscale networks as spandrel builds them, as torch::nn modules whose parameter names are the state
// dict keys detect.h produces (so runtime::load_module_weights loads them strictly):
//  - RRDBNet (spandrel ESRGAN/__arch/RRDB.py, old layout): model.0 conv; model.1.sub.{0..nb-1} RRDB blocks
//    (three 5-conv residual dense blocks, growth 32, LeakyReLU 0.2, residuals scaled by 0.2) and
//    model.1.sub.{nb} conv, added to model.0's output; per ×2: nearest upsample, conv, LeakyReLU at model.3,
//    6, …; then HR conv + LeakyReLU and the last conv. With a pixel-unshuffle factor, the input is reflect-
//    padded to a multiple of it, unshuffled, and the output cropped.
//  - SRVGGNetCompact (spandrel Compact/__arch/SRVGG.py): body.{0,2,…} 3×3 convs with PReLU (body.{1,3,…})
//    between, pixel-shuffle, plus the nearest-upsampled input.
// forward: [N, in, H, W] float → [N, out, H·s, W·s] (s = the network's scale); no clamping (see
// upscale_model.h for spandrel's padding and clamping around it). Not thread-safe: callers serialise.
#pragma once

#include <memory>

#include "engine/runtime/torch_pch.h"
#include "engine/upscale/detect.h"

namespace netdist::upscale {

class UpscaleNetImpl : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& x) = 0;
};

// Builds the network for `config` with uninitialised float32 weights on the CPU.
std::shared_ptr<UpscaleNetImpl> make_upscale_net(const ArchConfig& config);

}  // namespace netdist::upscale
