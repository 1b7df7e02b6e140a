// An API-format prompt: {node_id: {"class_type": ..., "inputs": {name: literal | [node_id, output_index]},
// "_meta"?: ...}}. The JSON is kept as given, in insertion order (the PNG "prompt" text and history
// replay it), beside an index of nodes and links for the executor.
// Thread-safety: a Prompt is an immutable value after parse; share it freely.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace netdist::graph {

using Json = nlohmann::ordered_json;

struct Link {
  std::string node_id;
  int64_t output_index = 0;
};

// ComfyUI's is_link: a 2-element array [string, int] (a bool index counts as 0/1, as in Python). A float
// index, which Python also calls a link, is never valid in a validated prompt and is not a link here.
std::optional<Link> as_link(const Json& value);

struct PromptInput {
  std::string name;
  Json value;                // the JSON as given (a link stays a 2-element array)
  std::optional<Link> link;  // set when value is a link
};

struct PromptNode {
  std::string id;
  std::string class_type;
  std::vector<PromptInput> inputs;  // in the prompt's order; empty if "inputs" is missing or not an object
  const PromptInput* find_input(const std::string& name) const;
};

class Prompt {
 public:
  // Fails (kInvalidArgument, with ComfyUI's wording and the node id) if the prompt is not an object, a
  // node is not an object, or a node lacks a string class_type. Links to missing nodes are not errors here:
  // ComfyUI reports them during validation, and only for nodes an output depends on.
  static Result<Prompt> parse(Json json);

  const Json& json() const { return json_; }
  const std::vector<PromptNode>& nodes() const { return nodes_; }
  const PromptNode* find(const std::string& id) const;

 private:
  Json json_;
  std::vector<PromptNode> nodes_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace netdist::graph
