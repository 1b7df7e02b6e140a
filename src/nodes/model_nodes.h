// LoraLoader, VAELoader and VAEDecodeTiled (ComfyUI nodes.py), on engine.h's apply_lora, load_vae and
// decode_tiled. LoRA and VAE files are listed from NodeEnv's models_dir/loras and models_dir/vae. Also registers
// the upscale-model nodes (upscale_model_nodes.h) and MultiGPU_WorkUnits (comfy_extras/nodes_multigpu.py): its
// class and inputs; the model passes through.
#pragma once

#include <memory>

#include "graph/node_registry.h"
#include "nodes/node_env.h"

namespace netdist::nodes {

void register_model_nodes(graph::NodeRegistry& registry, std::shared_ptr<NodeEnv> env);

}  // namespace netdist::nodes
