#include "graph/cache_key.h"

#include <algorithm>
#include <vector>

#include "graph/execution_list.h"

namespace netdist::graph {
namespace {

std::vector<const PromptInput*> sorted_inputs(const PromptNode& node) {
  std::vector<const PromptInput*> out;
  out.reserve(node.inputs.size());
  for (const PromptInput& input : node.inputs) out.push_back(&input);
  std::sort(out.begin(), out.end(), [](const PromptInput* a, const PromptInput* b) { return a->name < b->name; });
  return out;
}

}  // namespace

CacheKeys::CacheKeys(const Prompt& prompt, const NodeRegistry& registry,
                     std::function<Json(const std::string&)> is_changed, std::function<std::string()> unique)
    : prompt_(prompt), registry_(registry), is_changed_(std::move(is_changed)), unique_(std::move(unique)) {}

Json CacheKeys::immediate(const std::string& node_id, const std::unordered_map<std::string, size_t>& order) {
  const PromptNode* node = prompt_.find(node_id);
  if (node == nullptr) return Json::array({unique_()});
  Json signature = Json::array({node->class_type, is_changed_(node_id)});
  const NodeSchema* schema = registry_.find(node->class_type);
  bool with_id = schema != nullptr && schema->not_idempotent;
  if (schema != nullptr) {
    for (const HiddenInput& h : schema->hidden) with_id = with_id || h.kind == "UNIQUE_ID";
  }
  if (with_id) signature.push_back(node_id);
  for (const PromptInput* input : sorted_inputs(*node)) {
    auto link = runtime_link(input->value);
    if (link) {
      signature.push_back(Json::array({input->name, Json::array({"ANCESTOR", order.at(link->first), link->second})}));
    } else {
      signature.push_back(Json::array({input->name, input->value}));
    }
  }
  return signature;
}

const std::string& CacheKeys::key(const std::string& node_id) {
  auto found = keys_.find(node_id);
  if (found != keys_.end()) return found->second;

  std::vector<std::string> ancestors;
  std::unordered_map<std::string, size_t> order;
  struct Frame {
    std::vector<const PromptInput*> inputs;
    size_t next = 0;
  };
  std::vector<Frame> stack;
  auto push = [&](const std::string& id) {
    const PromptNode* node = prompt_.find(id);
    if (node != nullptr) stack.push_back(Frame{sorted_inputs(*node), 0});
  };
  push(node_id);
  while (!stack.empty()) {
    Frame& frame = stack.back();
    if (frame.next == frame.inputs.size()) {
      stack.pop_back();
      continue;
    }
    const PromptInput* input = frame.inputs[frame.next++];
    auto link = runtime_link(input->value);
    if (!link || order.count(link->first)) continue;
    ancestors.push_back(link->first);
    order[link->first] = ancestors.size() - 1;
    push(link->first);
  }

  Json signature = Json::array({immediate(node_id, order)});
  for (const std::string& ancestor : ancestors) signature.push_back(immediate(ancestor, order));
  return keys_[node_id] = signature.dump();
}

}  // namespace netdist::graph
