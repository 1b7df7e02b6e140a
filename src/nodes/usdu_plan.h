// Ultimate SD Upscale (ssitu/ComfyUI_UltimateSDUpscale over Coyote-A's ultimate-upscale script, pinned
// 2322caa4) without the model: the canvas size, the tile passes in the script's order (redraw Linear or
// Chess, then the seam fix: Band Pass, Half Tile, Half Tile + Intersections), each pass's mask, crop region,
// processing size and blurred mask exactly as the script's process_images works them out, and the pixel
// work around the sampler (crops, PIL LANCZOS resizes, the masked alpha composite) on 8-bit images. The
// sampler itself (VAE encode → KSampler → VAE decode of the tiles) is a callback, so that the node
// (usdu_nodes.cpp), the tests and the cluster's tile tasks run the same code.
//
// What the node does, as the Python does it (and netdist reproduces):
// - canvas = round(w·upscale_by / 8)·8 (Python round: ties to even), likewise h; the image is resized to it
//   with LANCZOS (a copy when the size is already right); without an upscale model the script first
//   upscales image 0 by its integer factors (2, 3, 4) with LANCZOS when the canvas is larger than the image.
// - rows = ceil(canvas_h / tile_height), cols = ceil(canvas_w / tile_width).
// - every pass samples with the node's seed and its `denoise`: the ComfyUI port sets the A1111 field
//   denoising_strength for the seam fix, which its sampler never reads, so `seam_fix_denoise` has no effect.
// - redraw passes: processing size round((tile + padding) / 8)·8, crop padding `tile_padding`, blur
//   `mask_blur`; Band Pass: size (seam_fix_width + 2·seam_fix_padding) × canvas height (columns) or canvas
//   width × that (rows), blur 0; Half Tile: size tile_width × tile_height, padding seam_fix_padding, blur
//   seam_fix_mask_blur; the intersections: the same with padding 0.
//
// Images are PilImage RGB (pil_ops.h). Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "nodes/pil_ops.h"

namespace netdist::nodes {

enum class UsduRedrawMode { kLinear, kChess, kNone };
enum class UsduSeamFixMode { kNone, kBandPass, kHalfTile, kHalfTileIntersections };

// The node's enum strings, in its order: "Linear", "Chess", "None" and "None", "Band Pass", "Half Tile",
// "Half Tile + Intersections".
const std::vector<std::string>& usdu_redraw_mode_names();
const std::vector<std::string>& usdu_seam_fix_mode_names();
Result<UsduRedrawMode> parse_usdu_redraw_mode(const std::string& name);
Result<UsduSeamFixMode> parse_usdu_seam_fix_mode(const std::string& name);

struct UsduSettings {
  int64_t tile_width = 512, tile_height = 512;
  int64_t mask_blur = 8, padding = 32;
  UsduRedrawMode redraw = UsduRedrawMode::kLinear;
  UsduSeamFixMode seam_fix = UsduSeamFixMode::kNone;
  int64_t seam_fix_width = 64, seam_fix_mask_blur = 8, seam_fix_padding = 16;
  bool force_uniform_tiles = true;
  int64_t batch_size = 1;  // redraw tiles per sampler call (needs force_uniform_tiles when > 1)
};

struct UsduCanvas {
  int64_t width = 0, height = 0, rows = 0, cols = 0;
  std::vector<int> scales;  // the script's integer upscale steps (empty: the canvas is not larger)
};

// The canvas for an image of image_width × image_height. Errors name a canvas of zero size.
Result<UsduCanvas> usdu_canvas(int64_t image_width, int64_t image_height, double upscale_by,
                               const UsduSettings& settings);

// One process_images call for one tile position.
struct UsduTile {
  std::string kind;  // "redraw", "band_col", "band_row", "half_row", "half_col", "corner"
  int64_t xi = 0, yi = 0;
  PilBox crop;                              // the region read and pasted back (canvas pixels)
  int64_t tile_width = 0, tile_height = 0;  // the size the crop is resized to for the VAE
  PilImage mask;                            // the (blurred) mask inside `crop`, "L"
  PilBox written;  // the pixels the tile can change: the mask's non-zero box, canvas pixels
};

// Tiles sampled in one call (several only for redraw with batch_size > 1), in the script's order.
struct UsduStep {
  std::vector<UsduTile> tiles;
};

// Every step of the job on a canvas, in order. Errors name the setting that makes a pass impossible.
Result<std::vector<UsduStep>> usdu_plan(const UsduSettings& settings, const UsduCanvas& canvas);

// The sampler: `tiles` (RGB, each tile_width × tile_height of its UsduTile; image-major when several images
// are redrawn: image 0's tiles of the step, then image 1's, …) → the redrawn tiles in the same order, of any
// size (they are resized back to the crop with LANCZOS when it differs, as the script does).
using UsduRedrawFn = std::function<Result<std::vector<PilImage>>(const std::vector<PilImage>& tiles)>;

// The input images for the tile passes: `images` resized to the canvas as the script's USDUpscaler does;
// `model_upscaled` (the upscale model's output for the same images, or empty) replaces them when the
// canvas asks for an upscale.
std::vector<PilImage> usdu_prepare_images(const std::vector<PilImage>& images,
                                          const std::vector<PilImage>& model_upscaled,
                                          const UsduCanvas& canvas);

// The crops of one step from `images` (the canvas-sized batch as it is now), resized to the tile size,
// image-major: what the step's sampler call gets.
std::vector<PilImage> usdu_step_inputs(const std::vector<PilImage>& images, const UsduStep& step);

// Puts a step's redrawn tiles (usdu_step_inputs' order) back into `images`. Errors name a count mismatch.
Status usdu_apply_step(std::vector<PilImage>& images, const UsduStep& step,
                       const std::vector<PilImage>& redrawn);

// Runs every step on `images` (already prepared) in order.
Status usdu_run(std::vector<PilImage>& images, const std::vector<UsduStep>& steps,
                const UsduRedrawFn& redraw);

// Dependency waves: wave[i] = 1 + the largest wave of an earlier step j whose written pixels overlap the
// pixels step i reads, or whose read pixels overlap the pixels step i writes (0 when none). Steps of one wave
// read nothing another step of the wave writes, so running a wave's steps in parallel on the canvas as the
// previous waves left it, then pasting their results back in step order, gives the sequential result.
std::vector<int> usdu_waves(const std::vector<UsduStep>& steps);

}  // namespace netdist::nodes
