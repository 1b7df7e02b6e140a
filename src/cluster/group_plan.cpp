#include "cluster/group_plan.h"

#include <algorithm>
#include <limits>

#include "cluster/cost_model.h"
#include "server/prompt_cost.h"

namespace netdist::cluster {

namespace {

using OJson = nlohmann::ordered_json;

// What the planner reads of a prompt.
struct GroupPlanFeatures {
  bool cfg_sampler = false;         // some sampler has cfg != 1
  bool tiled = false;               // a TiledDiffusion node
  std::optional<int64_t> max_gpus;  // the smallest MultiGPU_WorkUnits max_gpus
  int64_t steps = 0;
  double exchange_bytes = 0;  // per step and member: one latent's model output, float32
};

GroupPlanFeatures group_plan_features(const OJson& prompt) {
  GroupPlanFeatures f;
  if (!prompt.is_object()) return f;
  for (auto it = prompt.begin(); it != prompt.end(); ++it) {
    const OJson& node = it.value();
    if (!node.is_object() || !node.contains("class_type") || !node["class_type"].is_string()) continue;
    const std::string cls = node["class_type"].get<std::string>();
    const OJson inputs = node.value("inputs", OJson::object());
    if (cls == "TiledDiffusion") f.tiled = true;
    if (cls == "MultiGPU_WorkUnits") {
      const int64_t gpus = inputs.is_object() && inputs.value("max_gpus", OJson()).is_number_integer()
                               ? inputs["max_gpus"].get<int64_t>()
                               : 2;
      f.max_gpus = f.max_gpus ? std::min(*f.max_gpus, gpus) : gpus;
    }
    if (cls == "KSampler" || cls == "KSamplerAdvanced") {
      if (inputs.is_object() && inputs.value("cfg", OJson()).is_number() &&
          inputs["cfg"].get<double>() != 1.0)
        f.cfg_sampler = true;
      if (auto work = server::sampler_work(prompt, it.key())) {
        f.steps += work->steps;
        f.exchange_bytes = std::max(f.exchange_bytes, double(work->batch) * 4.0 * double(work->width / 8) *
                                                          double(work->height / 8) * 4.0);
      }
    }
  }
  return f;
}

}  // namespace

Result<std::string> requested_parallel(const OJson& extra_data, const std::string& server_default) {
  std::string value = server_default;
  if (extra_data.is_object() && extra_data.contains("netdist") && extra_data["netdist"].is_object() &&
      extra_data["netdist"].contains("parallel")) {
    const OJson& v = extra_data["netdist"]["parallel"];
    if (!v.is_string())
      return Status::invalid_argument("extra_data.netdist.parallel must be a string, got " + v.dump());
    value = v.get<std::string>();
  }
  if (value != "auto" && value != "off" && value != "cfg" && value != "tiles")
    return Status::invalid_argument("extra_data.netdist.parallel '" + value +
                                    "' is not one of \"auto\", \"off\", \"cfg\", \"tiles\"");
  return value;
}

ParallelChoice choose_parallel(const OJson& prompt, const std::string& parallel, int idle,
                               std::optional<double> seconds_per_unit) {
  const GroupPlanFeatures f = group_plan_features(prompt);
  const double whole_s = seconds_per_unit ? server::predict_prompt_units(prompt) * *seconds_per_unit : 0.0;
  ParallelChoice whole{"whole", 1, whole_s};
  if (parallel == "off" || idle < 2) return whole;
  const int cap = int(std::clamp<int64_t>(f.max_gpus.value_or(2), 1, 64));
  const auto group = [&](const char* mode, int size) {
    return ParallelChoice{
        mode, size, seconds_per_unit ? predict_group_seconds(whole_s, size, f.steps, f.exchange_bytes) : 0.0};
  };
  if (parallel == "cfg") return f.cfg_sampler ? group("cfg", 2) : whole;
  if (parallel == "tiles") return f.tiled && cap >= 2 ? group("tiles", std::min(idle, cap)) : whole;
  // auto
  if (f.max_gpus) return f.cfg_sampler && cap >= 2 ? group("cfg", 2) : whole;
  std::optional<ParallelChoice> candidate;
  if (f.tiled)
    candidate = group("tiles", std::min(idle, cap));
  else if (f.cfg_sampler)
    candidate = group("cfg", 2);
  if (!candidate || !seconds_per_unit) return whole;
  return candidate->predicted_s < whole.predicted_s ? *candidate : whole;
}

}  // namespace netdist::cluster
