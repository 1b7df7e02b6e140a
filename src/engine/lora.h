// LoRA weight patches as ComfyUI computes them (comfy/lora.py: model_lora_keys_unet, model_lora_keys_clip,
// load_lora; calculate_weight's "lora" patch; comfy/model_patcher.py patch_weight_to_device).
//
// How a patched model shares the base model: apply_lora (engine.h) returns a new Model handle whose
// modules, tokenizer and mutex are the base's, plus a list of patches. Every engine call on a handle with
// patches applies them in place, under the shared mutex, for the duration of the call (PatchScope) and
// restores the saved original tensors afterwards — ComfyUI's backup/patch/unpatch, per call. So the base
// model and every other handle see unpatched weights whenever they hold the lock, at the cost of one
// float32 up@down per patched weight per call and a copy of each patched weight while it runs.
//
// Patched weight (float32, then cast to the weight's dtype):
//   W' = W + Σ_patches scale · reshape(up.flatten(1) @ down.flatten(1), W.shape)
//   scale = strength · alpha / rank (rank = down.size(0)), or strength when the file has no alpha.
// Conv LoRA: down [r, in, kh, kw], up [out, r, 1, 1] flatten to matrices; the product is reshaped to W.
//
// Supported tensors per LoRA key x (ComfyUI's order): x.lora_up.weight / x.lora_down.weight (kohya),
// x_lora.up.weight / x_lora.down.weight (diffusers attention processors), x.lora_B.weight / x.lora_A.weight
// (PEFT), x.lora.up.weight / x.lora.down.weight, x.lora_B / x.lora_A, x.lora_linear_layer.up/down.weight;
// x.alpha. LoCon mid weights, DoRA scales, LoHa, LoKr, GLoRA and diff/set patches are not supported: their
// keys are logged as not loaded, like any key no model weight claims.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "core/status.h"
#include "engine/runtime/weights.h"

namespace netdist::lora {

struct LowRank {
  at::Tensor up;    // [out, r] or [out, r, 1, 1]; float32 CPU
  at::Tensor down;  // [r, in] or [r, in, kh, kw]; float32 CPU
  double scale = 1.0;
};

// Canonical weight name (e.g. "model.diffusion_model.input_blocks.1.1.proj_in.weight") → its patches, in
// the order they were added (chained LoraLoader nodes).
using WeightPatches = std::map<std::string, std::vector<LowRank>>;

// LoRA key (without the .lora_up.weight / .alpha suffix) → canonical weight name, in insertion order;
// a later entry for the same key replaces the earlier one (a Python dict).
class KeyMap {
 public:
  void set(const std::string& lora_key, const std::string& weight);
  const std::vector<std::pair<std::string, std::string>>& entries() const { return entries_; }

 private:
  std::vector<std::pair<std::string, std::string>> entries_;
  std::map<std::string, size_t> index_;
};

// model_lora_keys_unet for UNet weights `unet_names` (canonical, under `unet_prefix`), with
// `ldm_to_diffusers` naming each UNet weight's diffusers name (relative to the prefix) where it has one.
void add_unet_keys(KeyMap& map, const std::vector<std::string>& unet_names, const std::string& unet_prefix,
                   const std::map<std::string, std::string>& ldm_to_diffusers);
// model_lora_keys_clip for text-encoder weights (canonical: clip_l./clip_h./clip_g.transformer.*).
void add_clip_keys(KeyMap& map, const std::vector<std::string>& clip_names);

struct Loaded {
  std::map<std::string, LowRank> patches;  // canonical weight name → patch with scale = alpha / rank (or 1)
  std::vector<std::string> not_loaded;     // file keys nothing used (logged "lora key not loaded: …")
};

// load_lora: reads the patch of every key of `map` present in `lora` (tensors converted to float32 CPU).
// `shapes` holds the model's weight shapes: a patch whose product does not have the weight's element count
// is logged ("ERROR lora …") and dropped, as ComfyUI does. Fails naming `what` on a tensor of the wrong
// rank or an up/down pair whose rank dimensions differ.
Result<Loaded> load_lora(const runtime::WeightMap& lora, const KeyMap& map,
                         const std::map<std::string, std::vector<int64_t>>& shapes, const std::string& what);

// The weight W' of the header comment for `weight` (any dtype/device) → same dtype and device.
at::Tensor patched_weight(const at::Tensor& weight, const std::vector<LowRank>& patches);

// Applies the patches whose names start with `prefix` to `module`'s parameters for the scope's lifetime;
// the destructor copies the saved originals back, and so does a constructor that throws (out of memory) before
// the error leaves it. The caller holds the model's lock. Not copyable.
class PatchScope {
 public:
  PatchScope(torch::nn::Module& module, const std::string& prefix, const WeightPatches& patches);
  ~PatchScope();
  PatchScope(const PatchScope&) = delete;
  PatchScope& operator=(const PatchScope&) = delete;

 private:
  std::vector<std::pair<at::Tensor, at::Tensor>> saved_;  // (parameter, original copy)
};

}  // namespace netdist::lora
