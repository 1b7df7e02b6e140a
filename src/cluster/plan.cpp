#include "cluster/plan.h"

#include <algorithm>

namespace netdist::cluster {

nlohmann::ordered_json plan_to_json(const Plan& plan) {
  nlohmann::ordered_json out = {{"mode", plan.mode}, {"workers", plan.workers}, {"predicted_s", plan.predicted_s}};
  if (plan.detail.is_object()) {
    for (auto it = plan.detail.begin(); it != plan.detail.end(); ++it) {
      if (!out.contains(it.key())) out[it.key()] = it.value();
    }
  }
  return out;
}

void merge_plan(Plan& into, const Plan& more) {
  if (into.mode.empty()) {
    into = more;
    return;
  }
  if (into.mode != more.mode && ("+" + into.mode + "+").find("+" + more.mode + "+") == std::string::npos)
    into.mode += "+" + more.mode;
  for (const std::string& w : more.workers) {
    if (std::find(into.workers.begin(), into.workers.end(), w) == into.workers.end()) into.workers.push_back(w);
  }
  into.predicted_s += more.predicted_s;
  if (more.detail.is_object()) {
    if (!into.detail.is_object()) into.detail = nlohmann::ordered_json::object();
    for (auto it = more.detail.begin(); it != more.detail.end(); ++it) into.detail[it.key()] = it.value();
  }
}

void PlanLog::record(const std::string& prompt_id, const Plan& plan) {
  std::lock_guard<std::mutex> lock(mutex_);
  merge_plan(plans_[prompt_id], plan);
}

std::optional<Plan> PlanLog::take(const std::string& prompt_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = plans_.find(prompt_id);
  if (it == plans_.end()) return std::nullopt;
  Plan out = std::move(it->second);
  plans_.erase(it);
  return out;
}

}  // namespace netdist::cluster
