#include "server/prompt_cost.h"

#include <algorithm>

namespace netdist::server {

double SamplerWork::units_per_row() const {
  return static_cast<double>(steps) * static_cast<double>(width) * static_cast<double>(height) / (64.0 * 64.0);
}

SamplerWork sampler_work(const graph::SamplerAnalysis& sampler) {
  SamplerWork work;
  work.steps = sampler.steps;
  work.batch = std::max<int64_t>(1, sampler.latent.batch.value_or(1));
  work.width = sampler.latent.width ? std::max<int64_t>(0, *sampler.latent.width * 8) : 512;
  work.height = sampler.latent.height ? std::max<int64_t>(0, *sampler.latent.height * 8) : 512;
  return work;
}

std::optional<SamplerWork> sampler_work(const graph::PromptAnalysis& analysis, const std::string& node_id) {
  const graph::SamplerAnalysis* sampler = analysis.sampler(node_id);
  if (sampler == nullptr) return std::nullopt;
  return sampler_work(*sampler);
}

double predict_prompt_units(const graph::PromptAnalysis& analysis) {
  double units = 0.0;
  for (const graph::SamplerAnalysis& s : analysis.samplers()) units += sampler_work(s).units();
  return units;
}

std::optional<SamplerWork> sampler_work(const nlohmann::ordered_json& prompt, const std::string& node_id) {
  return sampler_work(graph::PromptAnalysis::analyze_json(prompt), node_id);
}

double predict_prompt_units(const nlohmann::ordered_json& prompt) {
  return predict_prompt_units(graph::PromptAnalysis::analyze_json(prompt));
}

}  // namespace netdist::server
