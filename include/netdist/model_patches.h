// Model patches that ComfyUI nodes set on a clone of a MODEL (issue #20): FreeU and FreeU_V2
// (comfy_extras/nodes_freelunch.py: an output_block_patch on the UNet's skip and hidden features) and
// RescaleCFG (comfy_extras/nodes_model_advanced.py: a sampler_cfg_function). A patched model is a new handle
// sharing weights, LoRA patches, model sampling and lock with its input (as apply_lora's); patches chain:
// output-block patches run in the order they were added, and a later cfg function replaces an earlier one,
// as ComfyUI's set_model_output_block_patch / set_model_sampler_cfg_function do.
#pragma once

#include <memory>

#include "core/status.h"
#include "netdist/engine.h"

namespace netdist {

struct ModelPatchSpec {
  enum class Kind { kFreeU, kFreeUV2, kRescaleCfg };
  Kind kind = Kind::kFreeU;
  double b1 = 1.1, b2 = 1.2, s1 = 0.9, s2 = 0.2;  // FreeU / FreeU_V2
  double multiplier = 0.7;                        // RescaleCFG
};

// A new handle on `model` with `spec` added; `model` is unchanged. invalid_argument for a model without a
// diffusion model or a non-finite parameter.
Result<std::shared_ptr<Model>> with_model_patch(const std::shared_ptr<Model>& model,
                                                const ModelPatchSpec& spec);

}  // namespace netdist
