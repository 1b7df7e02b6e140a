// What ComfyUI's process_conds does to a conditioning entry before sampling, beyond plain areas
// (comfy/samplers.py resolve_areas_and_cond_masks_multidim, calculate_start_end_timesteps):
//   - ConditioningSetAreaPercentage's fractions → latent cells: max(1, round(h·H)), max(1, round(w·W)),
//     round(y·H), round(x·W) (round half to even, as Python's round);
//   - ConditioningSetMask's mask → bilinear (align_corners false) to the latent when its size differs;
//     "mask bounds" → the area becomes the bounding box of max(|mask|) over its rows, at least 8×8 cells
//     ((8, 8, 0, 0) for an all-zero mask); the weight of row r of a batch of B is row r of mask[:B]
//     repeated B / min(M, B) times (get_area_and_mult), times mask_strength;
//   - ConditioningSetTimestepRange's percents → sigmas through the model sampling's percent_to_sigma.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/ATen.h>

#include "core/status.h"
#include "engine/cond_batch.h"
#include "engine/sampling/model_sampling.h"
#include "netdist/engine.h"

namespace netdist::cond {

// ComfyUI's model_sampling.percent_to_sigma: discrete σ(float32((1 − p)·999)) (999999999.9 at p <= 0, 0 at
// p >= 1); discrete flow time_snr_shift(shift, 1 − p) and Flux flux_time_shift(shift, 1, 1 − p) (1 at p <= 0,
// 0 at p >= 1).
double percent_to_sigma(const sampling::ModelSampling& sampling, double percent);

// The sampled rows [row_begin, row_end) of a batch of `batch` latents of latent_h × latent_w cells.
struct CondShape {
  int64_t batch = 1, row_begin = 0, row_end = 1, latent_h = 0, latent_w = 0;
  at::Device device = at::kCPU;
};

// Sets row.area, row.mask, row.sigma_start/sigma_end from the entry (`where` names it in errors: "positive
// entry 0"). Errors (invalid_argument): an area outside the latent or narrower than the 8-cell feather it
// needs (entries without a mask; resolve_area), a mask that is not [M, H, W] / [H, W] floating point or
// whose M does not divide the batch (ComfyUI fails there too), a percentage outside [0, 1].
Status resolve_entry(const CondEntry& entry, const CondShape& shape, const sampling::ModelSampling& sampling,
                     const std::string& where, CondRow& row);

}  // namespace netdist::cond
