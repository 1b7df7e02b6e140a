// The TiledDiffusion node of shiimizu/ComfyUI-TiledDiffusion (tiled_diffusion.py): MODEL → MODEL carrying
// the tiling of include/netdist/tiled_diffusion.h, with the node's class name, inputs, ranges, defaults and
// category. Methods "MultiDiffusion" and "Mixture of Diffusers"; "SpotDiffusion" is listed (workflows
// validate as in ComfyUI) and refused when the node runs, kUnsupported naming it.
#pragma once

#include "graph/node_registry.h"

namespace netdist::nodes {

void register_tiled_diffusion_nodes(graph::NodeRegistry& registry);

}  // namespace netdist::nodes
