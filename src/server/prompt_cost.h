// Predicted sampling work of a prompt, from its API-format JSON alone (no graph, no libtorch): the queue's
// `sjf` policy and the cluster's cost model use it.
//
// One work unit is one sampler step of one 64×64 image (an 8×8 latent): a sampler node costs
//   steps × batch × (width × height) / (64 · 64)
// where steps is KSampler "steps" (KSamplerAdvanced: min(end_at_step, steps) − start_at_step, at least 0)
// and width, height and batch come from following the "latent_image" link: EmptyLatentImage gives them,
// RepeatLatentBatch multiplies the batch by "amount", LatentFromBatch takes "length" rows, a sampler passes
// its own input latent on. Anything else (VAEEncode of an image, unknown nodes, broken links) counts as one
// 512×512 image, the SD1 default. Literal inputs that are not numbers count as their defaults. A prompt
// costs the sum over its sampler nodes; a prompt without one costs 0.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace netdist::server {

struct SamplerWork {
  int64_t steps = 0;
  int64_t batch = 1;
  int64_t width = 512, height = 512;  // image pixels (the latent is width/8 × height/8)
  // Units per image row: steps × width × height / 4096.
  double units_per_row() const;
  double units() const { return units_per_row() * static_cast<double>(batch); }
};

inline constexpr const char* kSamplerClasses[] = {"KSampler", "KSamplerAdvanced"};

// The work of sampler node `node_id`; nullopt when it is not a KSampler/KSamplerAdvanced of `prompt`.
std::optional<SamplerWork> sampler_work(const nlohmann::ordered_json& prompt, const std::string& node_id);

// Sum of sampler_work(...).units() over every sampler node of `prompt` (0 for a non-object).
double predict_prompt_units(const nlohmann::ordered_json& prompt);

}  // namespace netdist::server
