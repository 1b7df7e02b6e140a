// UpscaleModelLoader and ImageUpscaleWithModel (ComfyUI comfy_extras/nodes_upscale_model.py), on
// include/netdist/upscale_model.h. Models are listed from NodeEnv's models_dir/upscale_models and cached there;
// the UPSCALE_MODEL value is nodes/node_types.h UpscaleModelObject.
#pragma once

#include <memory>

#include "graph/node_registry.h"
#include "nodes/node_env.h"

namespace netdist::nodes {

void register_upscale_model_nodes(graph::NodeRegistry& registry, std::shared_ptr<NodeEnv> env);

}  // namespace netdist::nodes
