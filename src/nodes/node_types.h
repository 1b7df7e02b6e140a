// The payloads that flow between node implementations (graph::Object subclasses), in ComfyUI's types.
// All are immutable once a node returns them (the executor caches and shares them).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "graph/value.h"
#include "netdist/engine.h"
#include "netdist/upscale_model.h"

namespace netdist::nodes {

// MODEL, CLIP and VAE all refer to one loaded checkpoint; CLIP also carries CLIPSetLastLayer's choice.
struct ModelObject : graph::Object {
  std::shared_ptr<Model> model;
  std::string name;
  bool tiled = false;  // patched by TiledDiffusion (a step group may render its tiles: step_group_binding.h)
  std::string type_name() const override { return "MODEL"; }
  std::string repr() const override { return "<ModelPatcher " + name + ">"; }
};

struct ClipObject : graph::Object {
  std::shared_ptr<Model> model;
  std::string name;
  std::optional<int> clip_layer;
  std::string type_name() const override { return "CLIP"; }
  std::string repr() const override { return "<CLIP " + name + ">"; }
};

struct VaeObject : graph::Object {
  std::shared_ptr<Model> model;
  std::string name;
  std::string type_name() const override { return "VAE"; }
  std::string repr() const override { return "<VAE " + name + ">"; }
};

// UPSCALE_MODEL (UpscaleModelLoader): a loaded upscale model, shared with NodeEnv's cache.
struct UpscaleModelObject : graph::Object {
  std::shared_ptr<UpscaleModel> model;
  std::string name;
  std::string type_name() const override { return "UPSCALE_MODEL"; }
  std::string repr() const override { return "<ImageModelDescriptor " + name + ">"; }
};

struct ConditioningObject : graph::Object {
  Conditioning conditioning;
  std::string type_name() const override { return "CONDITIONING"; }
};

// LATENT: {"samples": [N,4,h,w] float32 CPU, "batch_index": noise indices (optional), "noise_mask":
// [M, 1, H, W] float32 CPU (optional, undefined when absent: SetLatentNoiseMask, VAEEncodeForInpaint,
// InpaintModelConditioning; the samplers denoise only where it is 1, engine.h SampleRequest::noise_mask)}.
struct LatentObject : graph::Object {
  at::Tensor samples;
  std::optional<std::vector<int64_t>> batch_index;
  at::Tensor noise_mask;
  std::string type_name() const override { return "LATENT"; }
};

// IMAGE: [N, H, W, C] float32 CPU in [0, 1].
struct ImageObject : graph::Object {
  at::Tensor images;
  std::string type_name() const override { return "IMAGE"; }
};

// MASK: [N, H, W] float32 CPU in [0, 1].
struct MaskObject : graph::Object {
  at::Tensor mask;
  std::string type_name() const override { return "MASK"; }
};

// The custom-sampling types (comfy_extras/nodes_custom_sampler.py; custom_sampling_nodes.h).
// SAMPLER (KSamplerSelect): one of engine/sampling's samplers, by ComfyUI name.
struct SamplerObject : graph::Object {
  std::string sampler_name;
  std::string type_name() const override { return "SAMPLER"; }
  std::string repr() const override { return "<KSAMPLER " + sampler_name + ">"; }
};

// SIGMAS: a 1-D float32 CPU schedule (may be empty).
struct SigmasObject : graph::Object {
  at::Tensor sigmas;
  std::string type_name() const override { return "SIGMAS"; }
};

// NOISE: RandomNoise (ComfyUI's initial noise of `seed`) or DisableNoise (zeros, seed 0 for per-step noise).
struct NoiseObject : graph::Object {
  bool add_noise = true;
  uint64_t seed = 0;
  std::string type_name() const override { return "NOISE"; }
};

// GUIDER: BasicGuider (positive only, cfg 1, no negative) or CFGGuider on a MODEL.
struct GuiderObject : graph::Object {
  std::shared_ptr<Model> model;
  std::string name;
  Conditioning positive, negative;
  double cfg = 1.0;
  std::string type_name() const override { return "GUIDER"; }
};

}  // namespace netdist::nodes
