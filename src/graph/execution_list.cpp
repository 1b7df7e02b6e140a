#include "graph/execution_list.h"

#include <algorithm>
#include <unordered_set>

namespace netdist::graph {

std::optional<std::pair<std::string, Json>> runtime_link(const Json& value) {
  if (!value.is_array() || value.size() != 2 || !value[0].is_string()) return std::nullopt;
  if (!value[1].is_number() && !value[1].is_boolean()) return std::nullopt;
  return std::make_pair(value[0].get<std::string>(), value[1]);
}

ExecutionList::ExecutionList(const Prompt& prompt, const NodeRegistry& registry,
                             std::function<bool(const std::string&)> is_cached)
    : prompt_(prompt), registry_(registry), is_cached_(std::move(is_cached)) {}

void ExecutionList::add_node(const std::string& node_id) {
  std::vector<std::string> stack = {node_id};
  std::vector<std::pair<std::string, std::string>> links;
  while (!stack.empty()) {
    std::string id = std::move(stack.back());
    stack.pop_back();
    if (state_.count(id)) continue;
    const PromptNode* node = prompt_.find(id);
    if (node == nullptr) continue;
    pending_.push_back(id);
    state_[id] = State{};
    for (const PromptInput& input : node->inputs) {
      auto link = runtime_link(input.value);
      if (!link || prompt_.find(link->first) == nullptr || is_cached_(link->first)) continue;
      stack.push_back(link->first);
      links.emplace_back(link->first, id);
    }
  }
  for (const auto& [from, to] : links) add_link(from, to);
}

void ExecutionList::add_link(const std::string& from, const std::string& to) {
  if (is_cached_(from)) return;
  add_node(from);
  State& source = state_.at(from);
  if (std::find(source.blocking.begin(), source.blocking.end(), to) == source.blocking.end()) {
    source.blocking.push_back(to);
    state_.at(to).block_count += 1;
  }
}

bool ExecutionList::is_output(const std::string& node_id) const {
  const PromptNode* node = prompt_.find(node_id);
  const NodeSchema* schema = node ? registry_.find(node->class_type) : nullptr;
  return schema != nullptr && schema->output_node;
}

bool ExecutionList::blocks_output(const std::string& node_id, int hops) const {
  for (const std::string& blocked : state_.at(node_id).blocking) {
    if (hops == 1 ? is_output(blocked) : blocks_output(blocked, hops - 1)) return true;
  }
  return false;
}

std::optional<std::string> ExecutionList::stage(std::vector<std::string>* cycle) {
  std::vector<std::string> ready;
  for (const std::string& id : pending_) {
    if (state_.at(id).block_count == 0) ready.push_back(id);
  }
  if (ready.empty()) {
    *cycle = nodes_in_cycle();
    return std::nullopt;
  }
  for (const std::string& id : ready) {
    if (is_output(id)) return id;
  }
  for (int hops = 1; hops <= 2; ++hops) {
    for (const std::string& id : ready) {
      if (blocks_output(id, hops)) return id;
    }
  }
  return ready.front();
}

void ExecutionList::complete(const std::string& node_id) {
  auto it = state_.find(node_id);
  ND_ASSERT(it != state_.end(), "completing a node that is not pending: " + node_id);
  for (const std::string& blocked : it->second.blocking) state_.at(blocked).block_count -= 1;
  pending_.erase(std::find(pending_.begin(), pending_.end(), node_id));
  state_.erase(it);
}

std::vector<std::string> ExecutionList::nodes_in_cycle() const {
  std::unordered_map<std::string, std::unordered_set<std::string>> blocked_by;
  for (const std::string& id : pending_) blocked_by[id];
  for (const std::string& from : pending_) {
    for (const std::string& to : state_.at(from).blocking) blocked_by[to].insert(from);
  }
  std::vector<std::string> remaining = pending_;
  while (true) {
    std::vector<std::string> removable;
    for (const std::string& id : remaining) {
      if (blocked_by[id].empty()) removable.push_back(id);
    }
    if (removable.empty()) break;
    for (const std::string& id : removable) {
      for (auto& [to, from_set] : blocked_by) from_set.erase(id);
      remaining.erase(std::find(remaining.begin(), remaining.end(), id));
    }
  }
  return remaining;
}

}  // namespace netdist::graph
