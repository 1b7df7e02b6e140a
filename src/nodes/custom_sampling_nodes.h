// ComfyUI's custom-sampling nodes (comfy_extras/nodes_custom_sampler.py): KSamplerSelect, BasicScheduler,
// RandomNoise, DisableNoise, BasicGuider, CFGGuider, SamplerCustomAdvanced, SamplerCustom, SplitSigmas,
// FlipSigmas; and the model-sampling nodes of comfy_extras/nodes_model_advanced.py: ModelSamplingDiscrete
// (eps, v_prediction, x0; lcm is refused), ModelSamplingSD3, ModelSamplingAuraFlow, ModelSamplingFlux — with
// ComfyUI's class names, inputs, defaults, ranges, outputs and python_module.
//
// The samplers drive the engine's sample path (include/netdist/engine.h, sample_with_denoised with
// SampleRequest::sigmas), so SamplerCustomAdvanced with BasicGuider/CFGGuider, KSamplerSelect, BasicScheduler
// and RandomNoise gives KSampler's latent bit for bit where ComfyUI's does (same sampler, scheduler, steps,
// denoise, cfg and seed; KSampler drops the penultimate sigma for dpm_2, dpm_2_ancestral, uni_pc and
// uni_pc_bh2, BasicScheduler does not). The model-sampling nodes return a new MODEL handle
// (with_model_sampling). The types are node_types.h's SamplerObject, SigmasObject, NoiseObject and
// GuiderObject. These run where the prompt runs: the cluster does not split their batches (docs/api.md).
#pragma once

#include "graph/node_registry.h"

namespace netdist::nodes {

void register_custom_sampling_nodes(graph::NodeRegistry& registry);

}  // namespace netdist::nodes
