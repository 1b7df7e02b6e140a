// Classifier-free-guidance batching of conditioning entries, as ComfyUI's comfy/samplers.py does it:
// get_area_and_mult, _calc_cond_batch, and process_conds' create_cond_with_same_area_if_none.
//
// Units: areas are latent cells {height, width, y, x} (ConditioningSetArea's pixels // 8), as given: the
// size is clamped to the latent where the area is used (get_area_and_mult). x [B, C, h, w], sigma [B],
// context [1, L, D], y [1, adm] or undefined; all on one device, float32. Thread-safety: pure functions (the
// model function is called serially).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <ATen/ATen.h>

#include "core/status.h"

namespace netdist {
struct ControlApply;  // netdist/controlnet.h
}

namespace netdist::cond {

struct CondRow {
  at::Tensor context;  // [1, L, D]
  at::Tensor y;        // [1, adm] or undefined
  float strength = 1.0f;
  std::optional<std::array<int64_t, 4>> area;  // {h, w, y, x} latent cells, unclamped
  // An inpainting UNet's concat input for the sampled rows [B, Cc, h, w] (engine/inpaint.h) or undefined:
  // cropped to the entry's area and appended to x's channels, so the model function then gets
  // [N, C + Cc, ah, aw] and still returns C channels.
  at::Tensor concat;
  // The entry's ControlNet (ComfyUI cond "control") or null: only entries with the same one share a call.
  std::shared_ptr<const ControlApply> control;
  bool control_apply_to_uncond = false;  // ControlNetApply's flag (apply_empty_x_to_equal_area)
  // ConditioningSetMask's mask for the sampled rows [B, 1, h, w] (resized to the latent, mask_strength applied;
  // cond_masks.h) or undefined: the entry's weight is mask (narrowed to its area) · strength, no feather.
  at::Tensor mask;
  // ConditioningSetTimestepRange as sigmas (cond_masks.h percent_to_sigma): the entry is skipped at a step
  // whose sigma[0] is above sigma_start or below sigma_end (compared in float32, as ComfyUI's tensor compare).
  std::optional<double> sigma_start, sigma_end;
};

// The UNet's x0 prediction for a batch: x [N, C, ah, aw], sigma [N], context [N, L, D], y [N, adm] or
// undefined → [N, C, ah, aw].
using ModelFn = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& sigma,
                                         const at::Tensor& context, const at::Tensor& y)>;

// ConditioningSetArea's area {height, width, y, x} in pixels → latent cells (// 8). Fails naming the area
// when, on a latent_h × latent_w latent, it starts outside it or its clamped size is narrower than an
// 8-cell feather it needs (ComfyUI raises there too).
Result<std::array<int64_t, 4>> resolve_area(const std::array<int, 4>& pixels, int64_t latent_h,
                                            int64_t latent_w);

// The area clamped to the latent: size min(latent − offset, size).
std::array<int64_t, 4> clamp_area(const std::array<int64_t, 4>& area, int64_t latent_h, int64_t latent_w);

// The weight of an entry's prediction over its clamped area: strength everywhere, times (t+1)/8 on the 8
// cells next to every area edge that is not a latent edge ([1, 1, ah, aw], broadcast over batch and channels;
// same values as ComfyUI's [B, C, ah, aw] mult). An entry with a mask: its mask over the area · strength
// ([B, 1, ah, aw]), no feather.
at::Tensor area_mult(const CondRow& row, int64_t latent_h, int64_t latent_w);

// process_conds' "make sure each cond area has an opposite one with the same area": for every area entry
// of one list that the other list does not already hold with that exact area, the other list gains a copy
// of it (area, strength) carrying the context/y of its smallest entry covering that area (a full entry
// when no area entry covers it). Positive entries first, then negative ones (including those added).
void add_opposite_areas(std::vector<CondRow>& positive, std::vector<CondRow>& negative);

// Called before each model call with the first entry of the call (all its entries share `control`), so the
// model function can add that entry's ControlNet residuals.
using CallHook = std::function<void(const CondRow& first)>;

// Whether get_area_and_mult uses the entry at this step (its timestep range; sigma [B], first element).
bool in_timestep_range(const CondRow& row, const at::Tensor& sigma);

// For each list (nullptr = skipped, result undefined): sum over its entries (those in their timestep range) of prediction·mult over the
// entry's area, divided by the summed mult (+1e-37). Entries whose area size, y presence and context
// lengths can be concatenated (lcm of lengths at most 4× the shorter) run as one model call, in ComfyUI's
// order (all lists' entries listed in order, each call takes the compatible ones last-to-first).
std::vector<at::Tensor> calc_cond_batch(const ModelFn& model,
                                        const std::vector<const std::vector<CondRow>*>& conds,
                                        const at::Tensor& x, const at::Tensor& sigma, const CallHook& hook = {});

// samplers.py apply_empty_x_to_equal_area for "control": when no negative entry without an area has a
// ControlNet, the negative entries without an area get those of the positive entries flagged
// control_apply_to_uncond (ControlNetApply), the i-th flagged one on negative entry i mod count.
void apply_control_to_uncond(const std::vector<CondRow>& positive, std::vector<CondRow>& negative);

}  // namespace netdist::cond
