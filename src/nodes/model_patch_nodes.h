// Model-patch nodes (issue #20): LoraLoaderModelOnly (nodes.py), FreeU and FreeU_V2
// (comfy_extras/nodes_freelunch.py) and RescaleCFG (comfy_extras/nodes_model_advanced.py), on engine.h's
// apply_lora and model_patches.h's with_model_patch. A patched MODEL is a new handle; workers get the same
// patch because prompts and shards carry the nodes that made it.
#pragma once

#include <memory>

#include "graph/node_registry.h"
#include "nodes/node_env.h"

namespace netdist::nodes {

void register_model_patch_nodes(graph::NodeRegistry& registry, std::shared_ptr<NodeEnv> env);

}  // namespace netdist::nodes
