// ComfyUI's mask node classes (nodes.py LoadImageMask; comfy_extras/nodes_mask.py MaskToImage, ImageToMask,
// SolidMask, InvertMask, GrowMask, FeatherMask, MaskComposite, LatentCompositeMasked, ImageCompositeMasked),
// with ComfyUI's names, inputs, defaults, ranges, categories and arithmetic (ops_common.h layouts):
//   LoadImageMask   the first frame of an input image (uploads as LoadImage), one channel / 255 as [1, H, W];
//                   "alpha" is 1 - A / 255 (0 where the file has no alpha, as PIL's convert("RGBA") gives).
//   GrowMask        scipy grey_dilation (expand > 0) / grey_erosion (< 0) |expand| times with a 3×3 cross
//                   (tapered_corners) or square footprint; the edge reflects, so out-of-image cells never win.
//   FeatherMask     ComfyUI's loops as written, including its quirk that right/bottom scale column/row 0 by
//                   1/right (1/bottom) and leave the last ones at factor 2/right, ...
//   MaskComposite   multiply/add/subtract, and/or/xor of round()ed masks, clamped to [0, 1]; source rows
//                   broadcast when the source has one row or as many as the destination.
// Masks of any [.., H, W] shape are read as [N, H, W]; a mask, image or latent of another rank, or with no
// elements, is invalid_argument naming the node and the input.
#pragma once

#include <memory>

#include "graph/node_registry.h"
#include "nodes/node_env.h"

namespace netdist::nodes {

void register_mask_nodes(graph::NodeRegistry& registry, std::shared_ptr<NodeEnv> env);

}  // namespace netdist::nodes
