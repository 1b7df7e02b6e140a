#include "server/prompt_cost.h"

#include <algorithm>
#include <cmath>

namespace netdist::server {

namespace {

using nlohmann::ordered_json;

// Prompts are client input: every field may have any JSON type, numbers any size. Inputs are clamped to
// ±2^31 so that products of a few of them stay far from int64 overflow.
constexpr double kInputLimit = 2147483648.0;

int64_t int_input(const ordered_json& inputs, const char* name, int64_t fallback) {
  if (!inputs.is_object()) return fallback;
  auto it = inputs.find(name);
  if (it == inputs.end() || !it->is_number()) return fallback;
  const double v = it->get<double>();
  if (std::isnan(v)) return fallback;
  return static_cast<int64_t>(std::clamp(v, -kInputLimit, kInputLimit));
}

std::string string_field(const ordered_json& node, const char* name) {
  if (!node.is_object()) return {};
  auto it = node.find(name);
  return it != node.end() && it->is_string() ? it->get<std::string>() : std::string();
}

ordered_json field(const ordered_json& node, const char* name) {
  if (!node.is_object()) return {};
  auto it = node.find(name);
  return it == node.end() ? ordered_json() : *it;
}

bool is_sampler(const ordered_json& node) {
  if (!node.is_object() || !node.contains("class_type") || !node["class_type"].is_string()) return false;
  const std::string cls = node["class_type"].get<std::string>();
  return std::any_of(std::begin(kSamplerClasses), std::end(kSamplerClasses), [&](const char* c) { return cls == c; });
}

// Width, height and batch of the latent that input `link` ([node_id, slot]) carries. `depth` bounds the walk
// so a cyclic (invalid) prompt still ends.
void resolve_latent(const ordered_json& prompt, const ordered_json& link, SamplerWork& work, int depth) {
  if (depth > 64 || !link.is_array() || link.empty()) return;
  const std::string id = link[0].is_string() ? link[0].get<std::string>() : link[0].dump();
  auto it = prompt.find(id);
  if (it == prompt.end() || !it->is_object()) return;
  const ordered_json& node = *it;
  const std::string cls = string_field(node, "class_type");
  const ordered_json inputs = field(node, "inputs");
  if (cls == "EmptyLatentImage") {
    work.width = std::max<int64_t>(0, int_input(inputs, "width", 512));
    work.height = std::max<int64_t>(0, int_input(inputs, "height", 512));
    work.batch = std::max<int64_t>(1, int_input(inputs, "batch_size", 1));
  } else if (cls == "RepeatLatentBatch") {
    resolve_latent(prompt, field(inputs, "samples"), work, depth + 1);
    work.batch = std::min<int64_t>(work.batch, int64_t(kInputLimit)) * std::max<int64_t>(1, int_input(inputs, "amount", 1));
  } else if (cls == "LatentFromBatch") {
    resolve_latent(prompt, field(inputs, "samples"), work, depth + 1);
    work.batch = std::clamp<int64_t>(int_input(inputs, "length", 1), 1, work.batch);
  } else if (is_sampler(node)) {
    resolve_latent(prompt, field(inputs, "latent_image"), work, depth + 1);
  }
}

}  // namespace

double SamplerWork::units_per_row() const {
  return static_cast<double>(steps) * static_cast<double>(width) * static_cast<double>(height) / (64.0 * 64.0);
}

std::optional<SamplerWork> sampler_work(const ordered_json& prompt, const std::string& node_id) {
  if (!prompt.is_object()) return std::nullopt;
  auto it = prompt.find(node_id);
  if (it == prompt.end() || !is_sampler(*it)) return std::nullopt;
  const ordered_json inputs = field(*it, "inputs");
  SamplerWork work;
  work.steps = std::max<int64_t>(0, int_input(inputs, "steps", 20));
  if ((*it)["class_type"] == "KSamplerAdvanced") {
    const int64_t end = std::min(work.steps, int_input(inputs, "end_at_step", 10000));
    work.steps = std::max<int64_t>(0, end - std::max<int64_t>(0, int_input(inputs, "start_at_step", 0)));
  }
  resolve_latent(prompt, field(inputs, "latent_image"), work, 0);
  return work;
}

double predict_prompt_units(const ordered_json& prompt) {
  if (!prompt.is_object()) return 0.0;
  double units = 0.0;
  for (auto it = prompt.begin(); it != prompt.end(); ++it) {
    if (auto work = sampler_work(prompt, it.key())) units += work->units();
  }
  return units;
}

}  // namespace netdist::server
