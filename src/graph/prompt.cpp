#include "graph/prompt.h"

namespace netdist::graph {

std::optional<Link> as_link(const Json& value) {
  if (!value.is_array() || value.size() != 2 || !value[0].is_string()) return std::nullopt;
  const Json& index = value[1];
  Link link;
  link.node_id = value[0].get<std::string>();
  if (index.is_boolean()) {
    link.output_index = index.get<bool>() ? 1 : 0;
  } else if (index.is_number_unsigned()) {
    uint64_t u = index.get<uint64_t>();
    if (u > uint64_t(INT64_MAX)) return std::nullopt;
    link.output_index = static_cast<int64_t>(u);
  } else if (index.is_number_integer()) {
    link.output_index = index.get<int64_t>();
  } else {
    return std::nullopt;
  }
  return link;
}

const PromptInput* PromptNode::find_input(const std::string& name) const {
  for (const PromptInput& input : inputs) {
    if (input.name == name) return &input;
  }
  return nullptr;
}

Result<Prompt> Prompt::parse(Json json) {
  if (!json.is_object()) return Status::invalid_argument("prompt must be a JSON object of nodes");
  Prompt prompt;
  for (auto it = json.begin(); it != json.end(); ++it) {
    const Json& node = it.value();
    if (!node.is_object() || !node.contains("class_type")) {
      return Status::invalid_argument("Cannot execute because a node is missing the class_type property.: Node ID '#" +
                                      it.key() + "'");
    }
    if (!node["class_type"].is_string()) {
      return Status::invalid_argument("node '" + it.key() + "': class_type must be a string");
    }
    PromptNode parsed;
    parsed.id = it.key();
    parsed.class_type = node["class_type"].get<std::string>();
    auto inputs = node.find("inputs");
    if (inputs != node.end() && inputs->is_object()) {
      for (auto in = inputs->begin(); in != inputs->end(); ++in) {
        parsed.inputs.push_back(PromptInput{in.key(), in.value(), as_link(in.value())});
      }
    }
    prompt.index_[parsed.id] = prompt.nodes_.size();
    prompt.nodes_.push_back(std::move(parsed));
  }
  prompt.json_ = std::move(json);
  return prompt;
}

const PromptNode* Prompt::find(const std::string& id) const {
  auto it = index_.find(id);
  return it == index_.end() ? nullptr : &nodes_[it->second];
}

}  // namespace netdist::graph
