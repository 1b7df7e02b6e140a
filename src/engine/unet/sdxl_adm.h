// SDXL's `y` vector (ComfyUI comfy/model_base.py SDXL.encode_adm).
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

namespace netdist::unet {

// The size embeddings sdxl_adm appends to the pooled output: 6 values × 256 (SDXL's ADM is 1280 + 1536 = 2816).
inline constexpr int64_t kSdxlAdmSizeChannels = 6 * 256;

// pooled [B, 1280] (bigG pooled output) → y [B, 2816] float32 on pooled's device:
// cat(pooled, emb(height), emb(width), emb(crop_h), emb(crop_w), emb(target_height), emb(target_width)),
// each emb a 256-wide timestep_embedding (cos half, then sin half) of the pixel value.
// ComfyUI defaults: crop 0, target = the image size.
at::Tensor sdxl_adm(const at::Tensor& pooled, int64_t width, int64_t height, int64_t crop_w, int64_t crop_h,
                    int64_t target_width, int64_t target_height);

// The SDXL refiner's: 5 values × 256 (its ADM is 1280 + 1280 = 2560).
inline constexpr int64_t kSdxlRefinerAdmSizeChannels = 5 * 256;

// pooled [B, 1280] → y [B, 2560] (ComfyUI SDXLRefiner.encode_adm): cat(pooled, emb(height), emb(width),
// emb(crop_h), emb(crop_w), emb(aesthetic_score)).
at::Tensor sdxl_refiner_adm(const at::Tensor& pooled, int64_t width, int64_t height, int64_t crop_w, int64_t crop_h,
                            double aesthetic_score);

}  // namespace netdist::unet
