#include "cluster/shard.h"

#include <cmath>
#include <deque>

#include "cluster/protocol.h"
#include "nodes/core_nodes.h"

namespace netdist::cluster {

namespace {

bool is_link(const Json& v) {
  return v.is_array() && v.size() == 2 && v[0].is_string() && v[1].is_number_integer();
}

// The node and its ancestors, in prompt order.
Result<std::set<std::string>> ancestors(const Json& prompt, const std::string& node_id) {
  std::set<std::string> seen;
  std::deque<std::string> todo = {node_id};
  while (!todo.empty()) {
    const std::string id = todo.front();
    todo.pop_front();
    if (!seen.insert(id).second) continue;
    if (!prompt.contains(id))
      return Status::invalid_argument("node " + id + " is linked to but not in the prompt");
    const Json& inputs = prompt[id].value("inputs", Json::object());
    for (auto it = inputs.begin(); it != inputs.end(); ++it) {
      if (is_link(it.value())) todo.push_back(it.value()[0].get<std::string>());
    }
  }
  return seen;
}

}  // namespace

bool is_splittable_sampler(const std::string& class_type) {
  return graph::split_kind(class_type) == graph::SplitKind::batch_rows;
}

std::vector<std::string> splittable_samplers(const Json& prompt) {
  return graph::PromptAnalysis::analyze_json(prompt).splittable_samplers();
}

Result<Json> shard_workflow(const Json& prompt, const std::string& sampler_id, int64_t row_begin,
                            int64_t row_end) {
  if (!prompt.contains(sampler_id))
    return Status::invalid_argument("sampler node " + sampler_id + " is not in the prompt");
  const std::string cls = prompt[sampler_id].value("class_type", "");
  if (!is_splittable_sampler(cls))
    return Status::invalid_argument("node " + sampler_id + " (" + cls + ") is not a splittable sampler");
  if (row_begin < 0 || row_end <= row_begin)
    return Status::invalid_argument("shard rows must satisfy 0 <= begin < end");
  ND_ASSIGN_OR_RETURN(std::set<std::string> keep, ancestors(prompt, sampler_id));
  Json out = Json::object();
  for (auto it = prompt.begin(); it != prompt.end(); ++it) {
    if (!keep.count(it.key())) continue;
    Json node = {{"class_type", it.value()["class_type"]},
                 {"inputs", it.value().value("inputs", Json::object())}};
    if (it.key() == sampler_id) {
      node["class_type"] = cls == "KSampler" ? nodes::kShardKSampler : nodes::kShardKSamplerAdvanced;
      node["inputs"]["row_begin"] = row_begin;
      node["inputs"]["row_end"] = row_end;
    }
    out[it.key()] = node;
  }
  out[kShardOutputId] = {{"class_type", nodes::kShardLatentOutput},
                         {"inputs", {{"samples", Json::array({sampler_id, 0})}}}};
  return out;
}

void add_requirements(const Json& prompt, const std::set<std::string>& ids, Requirements& req) {
  for (const std::string& id : ids) {
    const Json& node = prompt[id];
    req.node_classes.insert(node.value("class_type", ""));
    const Json& inputs = node.value("inputs", Json::object());
    if (inputs.contains("ckpt_name") && inputs["ckpt_name"].is_string())
      req.checkpoints.insert(inputs["ckpt_name"].get<std::string>());
  }
}

Requirements shard_requirements(const Json& prompt, const std::string& sampler_id) {
  Requirements req;
  auto keep = ancestors(prompt, sampler_id);
  if (keep.is_ok()) add_requirements(prompt, *keep, req);
  return req;
}

Requirements prompt_requirements(const Json& prompt) {
  Requirements req;
  for (auto it = prompt.begin(); it != prompt.end(); ++it) {
    if (!it.value().is_object()) continue;
    req.node_classes.insert(it.value().value("class_type", ""));
    const Json& inputs = it.value().value("inputs", Json::object());
    if (inputs.contains("ckpt_name") && inputs["ckpt_name"].is_string())
      req.checkpoints.insert(inputs["ckpt_name"].get<std::string>());
  }
  return req;
}

std::optional<int64_t> static_batch_size(const Json& prompt, const std::string& node_id) {
  const graph::PromptAnalysis analysis = graph::PromptAnalysis::analyze_json(prompt);
  const graph::NodeAnalysis* node = analysis.find(node_id);
  if (node == nullptr || !node->output) return std::nullopt;
  return node->output->batch;
}

bool is_whole_prompt(const Json& prompt) {
  auto parsed = graph::Prompt::parse(prompt);
  return parsed.is_ok() && is_whole_prompt(graph::PromptAnalysis::analyze(*parsed));
}

bool is_whole_prompt(const graph::PromptAnalysis& analysis) { return analysis.runs_whole(); }

std::vector<std::string> missing_requirements(const Requirements& req, const Json& capabilities) {
  const protocol::Capabilities caps = protocol::capabilities_from_json(capabilities);
  const std::set<std::string> classes(caps.node_classes.begin(), caps.node_classes.end());
  std::set<std::string> models;
  for (const protocol::ModelEntry& m : caps.models) models.insert(m.name);
  std::vector<std::string> out;
  for (const std::string& m : req.checkpoints) {
    if (!models.count(m)) out.push_back("checkpoint '" + m + "'");
  }
  for (const std::string& c : req.node_classes) {
    if (!classes.count(c)) out.push_back("node class '" + c + "'");
  }
  return out;
}

std::vector<int64_t> shard_bounds(const std::vector<int64_t>& groups, const std::vector<double>& speeds) {
  const size_t group_count = groups.size() - 1;
  if (speeds.empty() || speeds.size() >= group_count) return groups;
  double total_speed = 0;
  for (double v : speeds) total_speed += v;
  const double rows = double(groups.back());
  std::vector<int64_t> bounds = {0};
  size_t at = 0;  // index into groups of the last cut
  double share = 0;
  for (size_t k = 0; k + 1 < speeds.size(); ++k) {
    share += speeds[k] / total_speed;
    const double target = share * rows;
    const size_t last_allowed = group_count - (speeds.size() - 1 - k);  // leave a group for each later run
    size_t best = at + 1;
    for (size_t i = at + 1; i <= last_allowed; ++i) {
      if (std::abs(double(groups[i]) - target) < std::abs(double(groups[best]) - target)) best = i;
    }
    bounds.push_back(groups[best]);
    at = best;
  }
  bounds.push_back(groups.back());
  return bounds;
}

}  // namespace netdist::cluster
