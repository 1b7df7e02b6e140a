// comfy_extras/nodes_clip_sdxl.py's CLIPTextEncodeSDXL with ComfyUI's class name, inputs (clip, width, height,
// crop_w, crop_h, target_width, target_height, text_g, text_l; INT defaults written 1024.0 as ComfyUI does) and
// output: text_g through clip_g, text_l through clip_l, the sizes into the SDXL ADM vector (engine.h
// encode_prompt_sdxl). A CLIP without clip_g fails the prompt naming the node and the checkpoint.
// CLIPTextEncodeSDXLRefiner waits for refiner checkpoints (ADM 2560), which the engine refuses at load.
#pragma once

#include "graph/node_registry.h"

namespace netdist::nodes {

void register_sdxl_text_nodes(graph::NodeRegistry& registry);

}  // namespace netdist::nodes
