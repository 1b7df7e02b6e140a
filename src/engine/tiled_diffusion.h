// Tile grid, weights, blending and the tiled model function behind include/netdist/tiled_diffusion.h: a
// port of shiimizu/ComfyUI-TiledDiffusion's tiled_diffusion.py (split_bboxes, init_grid_bbox,
// gaussian_weights, MultiDiffusion.__call__, MixtureOfDiffusers.__call__), wrapped around the engine's
// per-batch model function (cond::ModelFn) exactly where the node's unet wrapper sits around apply_model:
// after calc_cond_batch has cropped x to a conditioning area, so each call's grid is made for its x.
//
// Units: cells of the latent (pixels / 8). Tensors: x [N, C, h, w], sigma [N], context [N, L, D], y [N, adm]
// or undefined, all float32 on one device. Thread-safety: pure functions; a tiled model function calls its
// inner function and the group from the calling thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <ATen/ATen.h>

#include "core/status.h"
#include "engine/cond_batch.h"
#include "netdist/engine.h"
#include "netdist/step_group.h"
#include "netdist/tiled_diffusion.h"

namespace netdist::tiles {

struct TileBox {
  int64_t x = 0, y = 0, w = 0, h = 0;  // cells; the slice [y, y+h) × [x, x+w)
};

// The node's grid for an h × w latent (init_grid_bbox + split_bboxes):
//   tw, th, ov = tile_width // 8, tile_height // 8, tile_overlap // 8
//   tile_w, tile_h = min(tw, w), min(th, h);  overlap = max(0, min(ov, min(tw, th) − 4))
//   cols = ⌈(w − overlap) / (tile_w − overlap)⌉ (Python's -(a // -b)), rows likewise
//   dx = (w − tile_w) / (cols − 1) as a double (0 for one column); x = min(int(col·dx), w − tile_w)
//   tiles row-major (rows outer); num_batches = ⌈tiles / tile_batch_size⌉, then tiles per batch
//   ⌈tiles / num_batches⌉, the last batch taking what is left.
// invalid_argument naming TiledDiffusion's tile_overlap when tile_w or tile_h equals the overlap (a division by
// zero in the node) or the options are out of range.
struct TileLayout {
  int64_t tile_w = 0, tile_h = 0, overlap = 0;
  std::vector<TileBox> boxes;
  std::vector<int64_t> batch_bounds;  // batch b covers boxes [batch_bounds[b], batch_bounds[b+1])
};
Result<TileLayout> tile_layout(const TiledDiffusionOptions& options, int64_t h, int64_t w);

// Mixture of Diffusers' gaussian_weights(tile_w, tile_h), float32 [tile_h, tile_w] on the CPU, computed in
// double and rounded once as the node's numpy does: w[y][x] = f(y, tile_h / 2) · f(x, (tile_w − 1) / 2) with
// f(v, m) = exp(−(v − m)² / tile_w² / 0.02) / sqrt(2π · 0.01) — tile_w² in both factors and the different
// midpoints are the node's.
at::Tensor gaussian_weights(int64_t tile_w, int64_t tile_h);

// A layout with its weights on `device`: `weights` [1, 1, h, w] float32 is the sum over tiles of the tile
// weight (1 for MultiDiffusion, gaussian_weights for Mixture of Diffusers), added in tile order.
struct TileGrid {
  TileLayout layout;
  at::Tensor weights;       // [1, 1, h, w]
  at::Tensor tile_weights;  // [tile_h, tile_w] (Mixture of Diffusers) or undefined
};
TileGrid make_grid(TileLayout layout, TileMethod method, int64_t h, int64_t w, const at::Device& device);

// The blend of one denoiser call: outs[i] [N, C, tile_h, tile_w] is tile i's x0 prediction. Accumulates in
// tile order into zeros like `like` ([N, C, h, w]): MultiDiffusion adds each tile and returns
// where(weights > 1, sum / weights, sum); Mixture of Diffusers adds out · (tile_weights · (1 / weights)[tile]).
at::Tensor blend_tiles(const TileGrid& grid, TileMethod method, const std::vector<at::Tensor>& outs,
                       const at::Tensor& like);

// Contiguous shares of `batches` tile batches for members of the given speeds (> 0): member r takes
// [bounds[r], bounds[r+1]), bounds[r] = ⌊batches · Σ_{i<r} speed_i / Σ speed + ½⌋. Empty speeds: one member.
std::vector<int64_t> share_bounds(int64_t batches, const std::vector<double>& speeds);

// How one tiled sampling is spread: no group = everything here. speeds: one positive, finite number per
// member (measured speed; empty = equal).
struct TileParallel {
  StepGroup* group = nullptr;
  std::vector<double> speeds;
};
Status check_parallel(const TileParallel& parallel);

// Every tile's output of one denoiser call (the tile batches this member owns through `inner`, the others'
// through the group's all_gather, padded to the largest share). Errors of the group are returned as they are.
Result<std::vector<at::Tensor>> run_tiles(const cond::ModelFn& inner, const TileLayout& layout,
                                          const at::Tensor& x, const at::Tensor& sigma,
                                          const at::Tensor& context, const at::Tensor& y,
                                          const TileParallel& parallel);

// The tiled model function. A failure (a grid the options cannot make, a failed group) is stored in
// *failure and thrown as a std::runtime_error, which the sampler passes up; the caller returns *failure.
cond::ModelFn tiled_model_fn(cond::ModelFn inner, const TiledDiffusionOptions& options, TileParallel parallel,
                             Status* failure);

// One sample() call's tiling (engine.cpp): prepare_call checks it before the first step — a tile_group for a
// model without TiledDiffusion is invalid_argument, and check_tiling below for a tiled one (negative skipped at
// cfg 1); wrap() tiles the per-batch model function of a tiled model (and returns it unchanged otherwise);
// status() is the tiled function's failure when it threw one, else the sampling's own Status.
class TiledCall {
 public:
  cond::ModelFn wrap(cond::ModelFn inner) const;
  Status status(Status sampled) const;

 private:
  friend Result<TiledCall> prepare_call(const std::optional<TiledDiffusionOptions>& tiling,
                                        const SampleRequest& req, const std::vector<cond::CondRow>& positive,
                                        const std::vector<cond::CondRow>& negative, bool skip_uncond);
  std::optional<TiledDiffusionOptions> options_;
  TileParallel parallel_;
  std::shared_ptr<Status> failure_ = std::make_shared<Status>();
};
Result<TiledCall> prepare_call(const std::optional<TiledDiffusionOptions>& tiling, const SampleRequest& req,
                               const std::vector<cond::CondRow>& positive,
                               const std::vector<cond::CondRow>& negative, bool skip_uncond);

// Before sampling: the grid of the whole h × w latent and of every area entry's clamped area can be made
// (so a bad tile_overlap fails before the first step, naming the node input), and the parallel spec is valid.
Status check_tiling(const TiledDiffusionOptions& options, int64_t h, int64_t w,
                    const std::vector<const std::vector<cond::CondRow>*>& conds, const TileParallel& parallel);

}  // namespace netdist::tiles
