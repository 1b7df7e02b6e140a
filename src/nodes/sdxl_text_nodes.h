// comfy_extras/nodes_clip_sdxl.py's CLIPTextEncodeSDXL with ComfyUI's class name, inputs (clip, width, height,
// crop_w, crop_h, target_width, target_height, text_g, text_l; INT defaults written 1024.0 as ComfyUI does) and
// output: text_g through clip_g, text_l through clip_l, the sizes into the SDXL ADM vector (engine.h
// encode_prompt_sdxl). A CLIP without clip_g fails the prompt naming the node and the checkpoint.
// CLIPTextEncodeSDXLRefiner (ascore, width, height, text, clip): the text encoded as CLIPTextEncode does, the
// sizes and aesthetic score into an SDXL refiner's 2560-wide ADM vector (other models ignore them).
#pragma once

#include "graph/node_registry.h"

namespace netdist::nodes {

void register_sdxl_text_nodes(graph::NodeRegistry& registry);

}  // namespace netdist::nodes
