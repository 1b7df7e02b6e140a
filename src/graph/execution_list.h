// The order nodes run in: ComfyUI's ExecutionList (comfy_execution/graph.py), a topological dissolve of
// the nodes the outputs need, skipping nodes whose outputs are cached.
//
// add_node(output) walks the links depth-first (last input first, as Python's stack pop does) and records
// each node in discovery order. stage() picks among the nodes whose inputs are all done, in discovery
// order: an output node first, else a node feeding an output, else a node two links before an output, else
// the first. Links to node ids that are not in the prompt are ignored (ComfyUI would crash on them;
// validation rejects them for every node an output needs).
// Thread-safety: none; one ExecutionList belongs to one execute() call.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "graph/node_registry.h"
#include "graph/prompt.h"

namespace netdist::graph {

// ComfyUI's runtime is_link: [string, number] (a float or bool index counts; validation rejects floats).
std::optional<std::pair<std::string, Json>> runtime_link(const Json& value);

class ExecutionList {
 public:
  ExecutionList(const Prompt& prompt, const NodeRegistry& registry, std::function<bool(const std::string&)> is_cached);

  void add_node(const std::string& node_id);
  bool empty() const { return pending_.empty(); }
  // The next node to run; nullopt if nothing is ready, which means a cycle: *cycle gets its nodes.
  std::optional<std::string> stage(std::vector<std::string>* cycle);
  // Marks the staged node done, unblocking the nodes that use it.
  void complete(const std::string& node_id);

 private:
  struct State {
    int block_count = 0;
    std::vector<std::string> blocking;  // nodes waiting for this one
  };
  void add_link(const std::string& from, const std::string& to);
  bool is_output(const std::string& node_id) const;
  bool blocks_output(const std::string& node_id, int hops) const;
  std::vector<std::string> nodes_in_cycle() const;

  const Prompt& prompt_;
  const NodeRegistry& registry_;
  std::function<bool(const std::string&)> is_cached_;
  std::vector<std::string> pending_;  // discovery order
  std::unordered_map<std::string, State> state_;
};

}  // namespace netdist::graph
