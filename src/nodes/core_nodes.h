// ComfyUI's core node classes, with its exact class names, inputs, defaults and ranges
// (reference: ComfyUI nodes.py), implemented on the netdist engine.
#pragma once

#include <memory>

#include "graph/node_registry.h"
#include "nodes/node_env.h"

namespace netdist::nodes {

// Registers every core node class into `registry`. The classes keep `env` alive.
void register_core_nodes(graph::NodeRegistry& registry, std::shared_ptr<NodeEnv> env);

}  // namespace netdist::nodes
