// Predicted sampling work of a prompt, from its graph analysis (graph/analysis.h; no libtorch): the queue's
// `sjf` policy and the cluster's cost model use it.
//
// One work unit is one sampler step of one 64×64 image (an 8×8 latent): a sampler node costs
//   steps × batch × (width × height) / (64 · 64)
// with steps, batch and the latent's size (width, height = 8 × its latent sides) from the analysis: the
// sampler's latent_image through every latent node netdist has (EmptyLatentImage, Repeat/FromBatch,
// LatentUpscale(By), VAEEncode of a known image, ...). What the prompt does not fix counts as one 512×512
// image, the SD1 default: an unknown batch as 1, an unknown side as 512 pixels. A prompt costs the sum over
// its sampler nodes; a prompt without one costs 0.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "graph/analysis.h"

namespace netdist::server {

struct SamplerWork {
  int64_t steps = 0;
  int64_t batch = 1;
  int64_t width = 512, height = 512;  // image pixels (the latent is width/8 × height/8)
  // Units per image row: steps × width × height / 4096.
  double units_per_row() const;
  double units() const { return units_per_row() * static_cast<double>(batch); }
};

SamplerWork sampler_work(const graph::SamplerAnalysis& sampler);
// The work of sampler node `node_id`; nullopt when the analysis has no sampler of that id.
std::optional<SamplerWork> sampler_work(const graph::PromptAnalysis& analysis, const std::string& node_id);
// Sum of sampler_work(...).units() over every sampler of the analysis.
double predict_prompt_units(const graph::PromptAnalysis& analysis);

// The same for prompt JSON that has no analysis at hand (graph::PromptAnalysis::analyze_json: a JSON that
// does not parse costs 0 and has no sampler).
std::optional<SamplerWork> sampler_work(const nlohmann::ordered_json& prompt, const std::string& node_id);
double predict_prompt_units(const nlohmann::ordered_json& prompt);

}  // namespace netdist::server
