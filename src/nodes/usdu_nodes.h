// The node classes of ssitu/ComfyUI_UltimateSDUpscale on the engine: UltimateSDUpscaleNoUpscale and
// UltimateSDUpscale (its upscale model through include/netdist/upscale_model.h), with the custom node's
// class names, inputs (names, types, defaults, ranges, the mode strings, tooltips) and output. The tile loop
// is usdu_plan.h; each tile is VAEEncode → common_ksampler (the node's seed, steps, cfg, sampler, scheduler
// and `denoise`, for every redraw and seam-fix pass) → VAEDecode (VAEDecodeTiled 512/64 with tiled_decode),
// with ConditioningSetArea areas cropped to the tile as the node's crop_cond does.
#pragma once

#include <functional>
#include <vector>

#include "graph/node_registry.h"
#include "netdist/engine.h"
#include "nodes/pil_ops.h"
#include "nodes/usdu_plan.h"

namespace netdist::nodes {

void register_usdu_nodes(graph::NodeRegistry& registry);

// IMAGE [N, H, W, 3] float in [0, 1] → 8-bit images as the node's tensor_to_pil makes them (trunc(255·x),
// NaN → 0, clipped), and back (x = v / 255).
Result<std::vector<PilImage>> usdu_images_from_tensor(const at::Tensor& images, const std::string& input);
at::Tensor usdu_images_to_tensor(const std::vector<PilImage>& images);

// What a tile's sampler call needs besides the pixels.
struct UsduSampling {
  std::shared_ptr<Model> model, vae;
  Conditioning positive, negative;
  SampleRequest request;  // seed, steps, cfg, sampler, scheduler, denoise (latent filled per call)
  bool tiled_decode = false;
  int64_t image_width = 0, image_height = 0;  // the input image (crop_cond's init_size)
};

// ConditioningSetArea areas of `cond` as crop_cond leaves them for a tile cropped at `region` of a
// canvas_w × canvas_h canvas: scaled from the input image to the canvas, intersected with the region, moved
// to the tile's origin; an entry whose area misses the region loses its area and strength.
Conditioning usdu_crop_conditioning(const Conditioning& cond, const PilBox& region, int64_t image_w,
                                    int64_t image_h, int64_t canvas_w, int64_t canvas_h);

// Encode → sample → decode of one step's tiles (usdu_step_inputs' order); progress as the sampler's.
Result<std::vector<PilImage>> usdu_redraw_tiles(const UsduSampling& s, const UsduStep& step,
                                                const std::vector<PilImage>& tiles, int64_t canvas_w,
                                                int64_t canvas_h, const ProgressFn& progress);

// The sampling settings of a USDU node's inputs (model, positive, negative, vae, seed, steps, cfg,
// sampler_name, scheduler, denoise, tiled_decode) for an input image of image_w × image_h; the tile node of a
// cluster tile task (usdu_tiles.h) reads the same inputs. invalid_argument naming a missing input.
Result<UsduSampling> usdu_sampling(const graph::NodeInputs& in, int64_t image_w, int64_t image_h);

// One dependency wave of a USDU job (usdu_tiles.h): its steps (indices into `steps`) and each one's input
// tiles (usdu_step_inputs of the canvas as the earlier waves left it).
struct UsduWave {
  const UsduSampling& sampling;
  const UsduCanvas& canvas;
  const std::vector<UsduStep>& steps;
  std::vector<size_t> step_ids;
  std::vector<std::vector<PilImage>> inputs;  // per entry of step_ids
  int64_t tiles_done = 0, tiles_total = 0;    // steps of the job before this wave, and all of them
  int64_t wave_index = 0, wave_count = 0;     // this wave's rank among the job's waves, and their count
  std::string mode = "exact";                 // usdu_tiles.h tile mode name
};
// Redraws a wave's steps: each entry the redrawn tiles of the step of the same index in wave.step_ids.
using UsduWaveRunner = std::function<Result<std::vector<std::vector<PilImage>>>(graph::NodeContext&, const UsduWave&)>;
// The wave redrawn in this process, step after step; progress as the sampler's.
Result<std::vector<std::vector<PilImage>>> usdu_redraw_wave_here(graph::NodeContext& ctx, const UsduWave& wave);
// The node's inputs in the custom node's order; `with_upscale`: UltimateSDUpscale's (image, upscale_by,
// upscale_model), else UltimateSDUpscaleNoUpscale's (upscaled_image).
std::vector<graph::InputSpec> usdu_input_specs(bool with_upscale);
// The node of class `class_type` (UltimateSDUpscale or UltimateSDUpscaleNoUpscale) running its waves with
// `runner` (the cluster coordinator's, cluster/tile_jobs.h); for NodeRegistry::replace_factory.
graph::NodeFactory usdu_node_factory(const std::string& class_type, UsduWaveRunner runner);

}  // namespace netdist::nodes
