#include "cluster/plan.h"

#include <algorithm>

namespace netdist::cluster {

nlohmann::ordered_json plan_to_json(const Plan& plan) {
  return {{"mode", plan.mode}, {"workers", plan.workers}, {"predicted_s", plan.predicted_s}};
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
