// ComfyUI's latent operation node classes (nodes.py LatentComposite, LatentBlend, LatentCrop, LatentFlip,
// LatentRotate; comfy_extras/nodes_latent.py LatentBatch), with ComfyUI's names, inputs, defaults, ranges,
// categories and arithmetic on samples [N, C, h, w] float32 (pixel inputs // 8; Python slicing semantics,
// ops_common.h py_slice). The output LATENT keeps the first input's other fields (batch_index, ...), as
// ComfyUI's samples.copy() does:
//   LatentComposite  samples_from pasted at (x, y) // 8, optionally with ComfyUI's linear feather ramps.
//   LatentBlend      samples2 resized (bicubic, center crop) when its shape differs, then
//                    samples1 · f + samples2 · (1 - f).
//   LatentCrop       x, y clamped to keep 8 latent cells, then the width // 8 × height // 8 window.
//   LatentFlip / LatentRotate   torch.flip / torch.rot90(k, dims [3, 2]).
//   LatentBatch      samples2 resized (bilinear, center crop) to samples1's size, concatenated;
//                    batch_index = samples1's (or 0..n1-1) followed by samples2's (or 0..n2-1).
// A latent of another rank or with no elements, or batches that cannot be combined, is invalid_argument
// naming the node and input.
#pragma once

#include "graph/node_registry.h"

namespace netdist::nodes {

void register_latent_ops_nodes(graph::NodeRegistry& registry);

}  // namespace netdist::nodes
