// Weight maps and loading them into torch::nn modules.
//
// Every model module (CLIP, UNet, VAE) is a torch::nn::Module whose parameter and buffer names are the
// canonical ldm/sgm checkpoint names below its prefix (e.g. the UNet's "input_blocks.1.0.in_layers.0.weight"
// under "model.diffusion_model."). Checkpoint layouts that differ (diffusers folders, OpenCLIP fused qkv)
// are converted to these names by src/engine/models/ before loading, so loading itself is one generic
// name-by-name copy with shape checks.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "core/status.h"

namespace netdist::runtime {

// Tensor name → tensor. Tensors may be views into a memory-mapped file (read-only; copy before writing).
using WeightMap = std::unordered_map<std::string, at::Tensor>;

struct LoadOptions {
  // Names under the prefix that the module does not have are an error unless listed as ignorable
  // prefixes here (e.g. "model_ema.", position_ids buffers some exporters add).
  std::vector<std::string> ignore_unexpected;
  // Allow module parameters that are absent from the map (they keep their initial values).
  bool allow_missing = false;
};

// Copies weights[prefix + name] into every parameter and buffer of `module` (converting dtype to the
// parameter's dtype and device). Fails naming the first missing tensor, shape mismatch, or unexpected key.
// `what` names the source in messages (a file name). Not thread-safe with respect to `module`.
Status load_module_weights(torch::nn::Module& module, const WeightMap& weights, std::string_view prefix,
                           std::string_view what, const LoadOptions& options = {});

// The module's parameters and buffers as prefix + name → tensor (detached views, not copies).
WeightMap module_weights(const torch::nn::Module& module, std::string_view prefix);

// The subset of `weights` whose names start with `prefix`, with the prefix stripped.
WeightMap strip_prefix(const WeightMap& weights, std::string_view prefix);

}  // namespace netdist::runtime
