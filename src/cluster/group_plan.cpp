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
  int64_t batch = 1;          // the largest sampler batch
  double exchange_bytes = 0;  // one model output of the largest sampler batch, float32
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
        f.batch = std::max(f.batch, work->batch);
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
  if (value != "auto" && value != "off" && value != "cfg" && value != "tiles" && value != "cfg+tiles" &&
      value != "rows")
    return Status::invalid_argument("extra_data.netdist.parallel '" + value +
                                    "' is not one of \"auto\", \"off\", \"cfg\", \"tiles\", "
                                    "\"cfg+tiles\", \"rows\"");
  return value;
}

std::string plan_mode_name(const std::string& group_mode) {
  return group_mode == "rows+cfg" ? "rows" : group_mode;
}

namespace {

// What a prompt allows, and each mode's prediction.
struct GroupPlanner {
  GroupPlanFeatures f;
  int idle = 0, cap = 2;
  std::optional<double> seconds_per_unit, exchange_s;
  double whole_s = 0;

  ParallelChoice group(const char* mode, int size) const {
    const GroupModeCost cost = group_mode_cost(mode, size, f.exchange_bytes, f.cfg_sampler);
    return ParallelChoice{mode, size,
                          seconds_per_unit ? predict_group_seconds(whole_s, f.steps, cost, exchange_s) : 0.0};
  }
  int row_pairs() const { return int(std::min<int64_t>(f.batch, idle / 2)); }
  std::optional<ParallelChoice> rows() const {
    if (!f.cfg_sampler || f.batch < 2 || row_pairs() < 2) return std::nullopt;
    return group("rows+cfg", 2 * row_pairs());
  }
  std::optional<ParallelChoice> cfg_tiles() const {
    if (!f.tiled || !f.cfg_sampler || idle < 4) return std::nullopt;
    return group("cfg+tiles", 4);
  }
  std::optional<ParallelChoice> tiles() const {
    if (!f.tiled || cap < 2) return std::nullopt;
    return group("tiles", std::min(idle, cap));
  }
  std::optional<ParallelChoice> cfg() const {
    if (!f.cfg_sampler || f.batch > 1) return std::nullopt;
    return group("cfg", 2);
  }
};

}  // namespace

ParallelChoice choose_parallel(const OJson& prompt, const std::string& parallel, int idle,
                               std::optional<double> seconds_per_unit, std::optional<double> exchange_s) {
  GroupPlanner p;
  p.f = group_plan_features(prompt);
  p.idle = idle;
  p.seconds_per_unit = seconds_per_unit;
  p.exchange_s = exchange_s;
  p.whole_s = seconds_per_unit ? server::predict_prompt_units(prompt) * *seconds_per_unit : 0.0;
  p.cap = int(std::clamp<int64_t>(p.f.max_gpus.value_or(2), 1, 64));
  ParallelChoice whole{"whole", 1, p.whole_s};
  if (parallel == "off" || idle < 2) return whole;
  const auto first = [&](std::initializer_list<std::optional<ParallelChoice>> in_order) {
    for (const auto& c : in_order) {
      if (c) return *c;
    }
    return whole;
  };
  if (parallel == "cfg") return first({p.cfg()});
  if (parallel == "tiles") return first({p.tiles()});
  if (parallel == "cfg+tiles") return first({p.cfg_tiles(), p.tiles(), p.cfg()});
  if (parallel == "rows" && p.rows()) return *p.rows();
  // auto
  if (p.f.max_gpus) return p.f.cfg_sampler && p.cap >= 2 && p.f.batch == 1 ? p.group("cfg", 2) : whole;
  if (!seconds_per_unit) return whole;
  ParallelChoice best = whole;
  for (const auto& c : {p.cfg_tiles(), p.tiles(), p.rows(), p.cfg()}) {
    if (c && c->predicted_s < best.predicted_s) best = *c;
  }
  return best;
}

bool plans_rows_group(const OJson& prompt, const std::string& parallel, int idle,
                      std::optional<double> seconds_per_unit, std::optional<double> exchange_s) {
  if (parallel != "rows" && parallel != "auto") return false;
  const ParallelChoice c = choose_parallel(prompt, parallel, idle, seconds_per_unit, exchange_s);
  if (c.mode != "rows+cfg") return false;
  if (parallel == "rows") return true;
  // auto: against the row shards the batch would otherwise be cut into (one per worker, up to the batch).
  const GroupPlanFeatures f = group_plan_features(prompt);
  const double whole_s = server::predict_prompt_units(prompt) * seconds_per_unit.value_or(0);
  return c.predicted_s < whole_s / double(std::max<int64_t>(1, std::min<int64_t>(f.batch, idle)));
}

Plan group_plan_record(const protocol::GroupSpec& spec, double predicted_s) {
  Plan plan{plan_mode_name(spec.mode), spec.names, predicted_s, nlohmann::ordered_json::object()};
  if (!spec.speeds.empty() && (spec.mode == "tiles" || spec.mode == "cfg+tiles")) plan.detail["speeds"] = spec.speeds;
  if (spec.mode != "cfg+tiles" && spec.mode != "rows+cfg") return plan;
  // c10d_group.h make_cfg_grid: pair p = ranks 2p, 2p + 1; cross group c = ranks c, c + 2, ...
  nlohmann::ordered_json pairs = nlohmann::ordered_json::array(), cross = nlohmann::ordered_json::array();
  for (size_t p = 0; 2 * p + 1 < spec.names.size(); ++p) pairs.push_back({spec.names[2 * p], spec.names[2 * p + 1]});
  for (size_t c = 0; c < 2; ++c) {
    nlohmann::ordered_json group = nlohmann::ordered_json::array();
    for (size_t r = c; r < spec.names.size(); r += 2) group.push_back(spec.names[r]);
    cross.push_back(group);
  }
  plan.detail["cfg_pairs"] = pairs;
  plan.detail[spec.mode == "cfg+tiles" ? "tile_groups" : "row_groups"] = cross;
  return plan;
}

}  // namespace netdist::cluster
