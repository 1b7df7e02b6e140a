// ComfyUI's inpainting nodes (nodes.py), with its class names, inputs, defaults and outputs:
//   SetLatentNoiseMask        LATENT + MASK → LATENT with "noise_mask" = mask as [-1, 1, H, W]
//   VAEEncodeForInpaint       pixels cropped to multiples of 8 (centred), masked pixels set to 0.5 before
//                             encoding, noise_mask = the mask grown by grow_mask_by (box convolution), rounded
//   InpaintModelConditioning  positive/negative gain concat_latent_image (the latent of the neutralised
//                             pixels) and concat_mask; the latent is the original pixels' (noise_mask option)
// The samplers honour the LATENT's noise_mask (engine.h SampleRequest::noise_mask); inpainting UNets read the
// conditioning's concat values (engine/inpaint.h). Bad input (a mask without H×W, a mask batch that does
// not broadcast over the pixels, an image smaller than one latent cell) → invalid_argument naming the node
// and input.
#pragma once

#include <ATen/ATen.h>

#include "core/status.h"
#include "graph/node_registry.h"

namespace netdist::nodes {

void register_inpaint_nodes(graph::NodeRegistry& registry);

// The pixel part shared by VAEEncodeForInpaint and InpaintModelConditioning: `mask` resized (bilinear) to
// the pixels, both cropped to multiples of 8 around the centre, and the pixels where the rounded mask is 1
// set to 0.5 (first three channels). `class_type` names the node in errors.
struct InpaintPixels {
  at::Tensor pixels;  // [N, H8, W8, C], neutralised
  at::Tensor mask;    // [M, 1, H8, W8], not rounded
};
Result<InpaintPixels> inpaint_pixels(const at::Tensor& pixels, const at::Tensor& mask, const std::string& class_type);

// VAEEncodeForInpaint's noise mask: the mask rounded and grown by `grow` pixels (ComfyUI's conv2d with a
// grow×grow box of ones, padding ceil((grow − 1) / 2), clamped to [0, 1]), cut to H×W and rounded.
at::Tensor grow_mask(const at::Tensor& mask, int64_t grow);

}  // namespace netdist::nodes
