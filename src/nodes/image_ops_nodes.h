// ComfyUI's image operation node classes (nodes.py ImageInvert, EmptyImage, ImagePadForOutpaint;
// comfy_extras/nodes_images.py ImageCrop; comfy_extras/nodes_post_processing.py ImageBlend, ImageBlur,
// ImageSharpen), with ComfyUI's names, inputs, defaults, ranges, categories and arithmetic on IMAGE
// [N, H, W, C] float32:
//   ImageCrop            x, y clamped to the last column/row, then the width × height window (clipped).
//   ImageBlend           image2 resized (bicubic, center crop) when its shape differs; normal, multiply, screen,
//                        overlay, soft_light (with ComfyUI's g()), difference (image1 - image2, not |·|); then
//                        image1 · (1 - f) + blended · f, clamped to [0, 1].
//   ImageBlur/Sharpen    ComfyUI's gaussian_kernel on linspace(-1, 1), reflect padding, depthwise conv2d, the
//                        same ATen calls (sharpen: kernel · -(alpha · 10), centre + 1 - sum; clamped). The
//                        radius must be smaller than the image's height and width (reflect padding).
//   ImagePadForOutpaint  grey (0.5) border, mask 1 outside the image and ((feathering - d) / feathering)² inside
//                        where d is the distance to a padded side below `feathering`. The mask is [1, H, W]
//                        (ComfyUI returns [H, W]; every mask consumer reads both alike).
// Bad shapes are invalid_argument naming the node and input.
#pragma once

#include "graph/node_registry.h"

namespace netdist::nodes {

void register_image_ops_nodes(graph::NodeRegistry& registry);

}  // namespace netdist::nodes
