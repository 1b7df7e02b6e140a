// LatentUpscale, LatentUpscaleBy, ImageScale, ImageScaleBy (ComfyUI nodes.py), on nodes/upscale.h.
#pragma once

#include <cstdint>

#include "graph/node_registry.h"

namespace netdist::nodes {

struct LatentSize {
  int64_t width, height;  // latent cells
};

// LatentUpscale's target for a latent of latent_h × latent_w cells and the node's width/height in pixels
// (not both 0): a 0 side follows the aspect ratio, each side is at least 64 px, the result is pixels // 8.
LatentSize latent_upscale_size(int64_t latent_h, int64_t latent_w, int64_t width, int64_t height);

void register_upscale_nodes(graph::NodeRegistry& registry);

}  // namespace netdist::nodes
