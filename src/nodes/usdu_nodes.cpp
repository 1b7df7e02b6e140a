#include "nodes/usdu_nodes.h"

#include <algorithm>
#include <cmath>

#include "engine/sampling/samplers.h"
#include "engine/sampling/schedulers.h"
#include "nodes/node_types.h"
#include "nodes/node_util.h"
#include "nodes/usdu_tiles.h"

namespace netdist::nodes {

using graph::Json;
using graph::NodeContext;
using graph::NodeInputs;
using graph::Value;

namespace {

constexpr int64_t kUsduMaxResolution = 8192;  // the custom node's MAX_RESOLUTION
constexpr const char* kUsduNoUpscale = "UltimateSDUpscaleNoUpscale";
constexpr const char* kUsduUpscale = "UltimateSDUpscale";

graph::InputSpec usdu_tip(graph::InputSpec spec, std::string tooltip) {
  spec.tooltip = std::move(tooltip);
  return spec;
}

// USDU_base_inputs() in the custom node's order; `with_upscale` keeps upscale_by and upscale_model.
std::vector<graph::InputSpec> usdu_inputs(bool with_upscale) {
  using graph::float_input;
  using graph::int_input;
  using graph::link_input;
  std::vector<graph::InputSpec> in;
  in.push_back(
      usdu_tip(link_input(with_upscale ? "image" : "upscaled_image", "IMAGE"), "The image to upscale."));
  in.push_back(usdu_tip(link_input("model", "MODEL"), "The model to use for image-to-image."));
  in.push_back(usdu_tip(link_input("positive", "CONDITIONING"), "The positive conditioning for each tile."));
  in.push_back(usdu_tip(link_input("negative", "CONDITIONING"), "The negative conditioning for each tile."));
  in.push_back(usdu_tip(link_input("vae", "VAE"), "The VAE model to use for tiles."));
  if (with_upscale) {
    in.push_back(
        usdu_tip(float_input("upscale_by", 2, 0.05, 4, 0.05), "The factor to upscale the image by."));
  }
  in.push_back(usdu_tip(int_input("seed", 0, 0, Json(uint64_t(0xffffffffffffffffULL))),
                        "The seed to use for image-to-image."));
  in.push_back(usdu_tip(int_input("steps", 20, 1, 10000, 1), "The number of steps to use for each tile."));
  in.push_back(usdu_tip(float_input("cfg", 8.0, 0.0, 100.0), "The CFG scale to use for each tile."));
  graph::InputSpec sampler = graph::combo_input("sampler_name", {});
  sampler.options_provider = [] { return sampling::supported_sampler_names(); };
  in.push_back(usdu_tip(sampler, "The sampler to use for each tile."));
  in.push_back(usdu_tip(graph::combo_input("scheduler", sampling::scheduler_names()),
                        "The scheduler to use for each tile."));
  in.push_back(
      usdu_tip(float_input("denoise", 0.2, 0.0, 1.0, 0.01), "The denoising strength to use for each tile."));
  if (with_upscale) {
    in.push_back(usdu_tip(link_input("upscale_model", "UPSCALE_MODEL"),
                          "The upscaler model for upscaling the image."));
  }
  in.push_back(usdu_tip(graph::combo_input("mode_type", usdu_redraw_mode_names()),
                        "The tiling order to use for the redraw step."));
  in.push_back(usdu_tip(int_input("tile_width", 512, 64, kUsduMaxResolution, 8), "The width of each tile."));
  in.push_back(
      usdu_tip(int_input("tile_height", 512, 64, kUsduMaxResolution, 8), "The height of each tile."));
  in.push_back(usdu_tip(int_input("mask_blur", 8, 0, 64, 1), "The blur radius for the mask."));
  in.push_back(usdu_tip(int_input("tile_padding", 32, 0, kUsduMaxResolution, 8),
                        "The padding to apply between tiles."));
  in.push_back(
      usdu_tip(graph::combo_input("seam_fix_mode", usdu_seam_fix_mode_names()), "The seam fix mode to use."));
  in.push_back(usdu_tip(float_input("seam_fix_denoise", 1.0, 0.0, 1.0, 0.01),
                        "The denoising strength to use for the seam fix."));
  in.push_back(usdu_tip(int_input("seam_fix_width", 64, 0, kUsduMaxResolution, 8),
                        "The width of the bands used for the Band Pass seam fix mode."));
  in.push_back(
      usdu_tip(int_input("seam_fix_mask_blur", 8, 0, 64, 1), "The blur radius for the seam fix mask."));
  in.push_back(usdu_tip(int_input("seam_fix_padding", 16, 0, kUsduMaxResolution, 8),
                        "The padding to apply for the seam fix tiles."));
  in.push_back(
      usdu_tip(graph::bool_input("force_uniform_tiles", true),
               "Force all tiles to be the same as the set tile size, even when tiles could be smaller. This "
               "can help prevent the model from working with irregular tile sizes."));
  in.push_back(usdu_tip(graph::bool_input("tiled_decode", false),
                        "Whether to use tiled decoding when decoding tiles."));
  in.push_back(usdu_tip(
      int_input("batch_size", 1, 1, 4096, 1),
      "The number of tiles to process in a batch. Higher values can reduce processing time but use "
      "more VRAM. Yields different results than individual tiles. Only affects the main redraw step, "
      "not the seam fix step."));
  return in;
}

Result<UsduSettings> usdu_settings(const NodeInputs& in) {
  UsduSettings s;
  s.tile_width = in.get_int("tile_width");
  s.tile_height = in.get_int("tile_height");
  s.mask_blur = in.get_int("mask_blur");
  s.padding = in.get_int("tile_padding");
  ND_ASSIGN_OR_RETURN(s.redraw, parse_usdu_redraw_mode(in.get_string("mode_type")));
  ND_ASSIGN_OR_RETURN(s.seam_fix, parse_usdu_seam_fix_mode(in.get_string("seam_fix_mode")));
  s.seam_fix_width = in.get_int("seam_fix_width");
  s.seam_fix_mask_blur = in.get_int("seam_fix_mask_blur");
  s.seam_fix_padding = in.get_int("seam_fix_padding");
  s.force_uniform_tiles = in.get_bool("force_uniform_tiles");
  s.batch_size = in.has("batch_size") ? in.get_int("batch_size") : 1;
  return s;
}

// The model's output for the batch (ImageUpscaleWithModel), called only when the canvas asks for an upscale.
using UsduUpscaleFn = std::function<Result<at::Tensor>(const at::Tensor& images)>;

// Every step on the prepared canvas images: in order here (exact mode without a runner, the script's own
// loop), or in dependency waves (usdu_tiles.h) through `runner` (null: redrawn here).
Status run_usdu_steps(NodeContext& ctx, const UsduSampling& s, const UsduCanvas& canvas,
                      const std::vector<UsduStep>& steps, std::vector<PilImage>& canvas_images, UsduTileMode mode,
                      const UsduWaveRunner& runner) {
  Status progress_status;
  ProgressFn progress = [&](int step, int total) {
    progress_status = ctx.progress(step, total);
    return progress_status.is_ok();
  };
  if (!runner && mode == UsduTileMode::kExact) {
    for (const UsduStep& step : steps) {
      auto redrawn = usdu_redraw_tiles(s, step, usdu_step_inputs(canvas_images, step), canvas.width,
                                       canvas.height, progress);
      if (!progress_status.is_ok()) return progress_status;
      if (!redrawn.is_ok()) return redrawn.status();
      ND_RETURN_IF_ERROR(usdu_apply_step(canvas_images, step, *redrawn));
    }
    return Status::ok();
  }
  int64_t done = 0, index = 0;
  const std::vector<int> waves = usdu_mode_waves(steps, mode);
  const int64_t count = usdu_wave_stats(waves).waves;
  return usdu_run_waves(
      canvas_images, steps, waves,
      [&](const std::vector<size_t>& ids,
          std::vector<std::vector<PilImage>> inputs) -> Result<std::vector<std::vector<PilImage>>> {
        UsduWave wave{s, canvas, steps, ids, std::move(inputs), done, static_cast<int64_t>(steps.size()),
                      index++, count, usdu_tile_mode_name(mode)};
        done += static_cast<int64_t>(ids.size());
        return runner ? runner(ctx, wave) : usdu_redraw_wave_here(ctx, wave);
      });
}

// UltimateSDUpscale.upscale for both classes.
Result<std::vector<Value>> run_usdu(NodeContext& ctx, const NodeInputs& in, const std::string& class_type,
                                    const std::string& image_input, double upscale_by,
                                    const UsduUpscaleFn& upscale, const UsduWaveRunner& runner) {
  ND_ASSIGN_OR_RETURN(auto image, need<ImageObject>(in, image_input));
  ND_ASSIGN_OR_RETURN(UsduSettings settings, in_node(usdu_settings(in), class_type));
  ND_ASSIGN_OR_RETURN(UsduTileMode mode, in_node(usdu_tile_mode(ctx.extra_data()), class_type));
  ND_ASSIGN_OR_RETURN(std::vector<PilImage> images,
                      in_node(usdu_images_from_tensor(image->images, image_input), class_type));
  ND_ASSIGN_OR_RETURN(UsduSampling s, in_node(usdu_sampling(in, images[0].width, images[0].height), class_type));
  ND_ASSIGN_OR_RETURN(
      UsduCanvas canvas,
      in_node(usdu_canvas(images[0].width, images[0].height, upscale_by, settings), class_type));
  ND_ASSIGN_OR_RETURN(std::vector<UsduStep> steps, in_node(usdu_plan(settings, canvas), class_type));
  std::vector<PilImage> upscaled;
  if (!canvas.scales.empty() && upscale) {
    ND_ASSIGN_OR_RETURN(at::Tensor up, in_node(upscale(image->images), class_type));
    ND_ASSIGN_OR_RETURN(upscaled, in_node(usdu_images_from_tensor(up, "upscale_model"), class_type));
  }
  std::vector<PilImage> canvas_images = usdu_prepare_images(images, upscaled, canvas);
  Status ran = run_usdu_steps(ctx, s, canvas, steps, canvas_images, mode, runner);
  if (!ran.is_ok()) return ran.code() == StatusCode::kCancelled ? ran : ran.with_context(class_type);
  auto out = std::make_shared<ImageObject>();
  out->images = usdu_images_to_tensor(canvas_images);
  return std::vector<Value>{object(out)};
}

Result<std::vector<Value>> run_usdu_no_upscale(NodeContext& ctx, const NodeInputs& in,
                                               const UsduWaveRunner& runner) {
  return run_usdu(ctx, in, kUsduNoUpscale, "upscaled_image", 1.0, nullptr, runner);
}

// UltimateSDUpscale: the script's Upscaler runs ImageUpscaleWithModel on the input batch when the canvas is
// larger than the image (every factor step upscales the original batch, so one call gives its result).
Result<std::vector<Value>> run_usdu_with_model(NodeContext& ctx, const NodeInputs& in,
                                               const UsduWaveRunner& runner) {
  ND_ASSIGN_OR_RETURN(auto upscale_model, need<UpscaleModelObject>(in, "upscale_model"));
  Status progress_status;
  UsduUpscaleFn upscale = [&](const at::Tensor& images) -> Result<at::Tensor> {
    auto up = upscale_image(*upscale_model->model, images, [&](int done, int total) {
      progress_status = ctx.progress(done, total);
      return progress_status.is_ok();
    });
    if (!progress_status.is_ok()) return progress_status;
    return up;
  };
  return run_usdu(ctx, in, kUsduUpscale, "image", in.get_float("upscale_by"), upscale, runner);
}

}  // namespace

Result<std::vector<PilImage>> usdu_images_from_tensor(const at::Tensor& images, const std::string& input) {
  if (!images.defined() || images.dim() != 4 || images.size(0) < 1 || images.size(3) != 3 ||
      images.size(1) < 1 || images.size(2) < 1) {
    return Status::invalid_argument("input '" + input + "' must be an RGB IMAGE [N, H, W, 3]");
  }
  at::Tensor px =
      (at::nan_to_num(images.to(at::kFloat).contiguous(), 0.0) * 255.0f).clamp(0.0, 255.0).to(at::kByte);
  std::vector<PilImage> out;
  for (int64_t b = 0; b < px.size(0); ++b) {
    PilImage im = pil_new(px.size(2), px.size(1), 3);
    at::Tensor row = px[b].contiguous();
    std::copy_n(row.data_ptr<uint8_t>(), im.pixels.size(), im.pixels.begin());
    out.push_back(std::move(im));
  }
  return out;
}

at::Tensor usdu_images_to_tensor(const std::vector<PilImage>& images) {
  ND_ASSERT(!images.empty(), "usdu_images_to_tensor: no images");
  at::Tensor out =
      at::empty({static_cast<int64_t>(images.size()), images[0].height, images[0].width, 3}, at::kByte);
  for (size_t b = 0; b < images.size(); ++b) {
    ND_ASSERT(images[b].width == images[0].width && images[b].height == images[0].height,
              "usdu: image sizes differ");
    std::copy_n(images[b].pixels.begin(), images[b].pixels.size(),
                out[static_cast<int64_t>(b)].data_ptr<uint8_t>());
  }
  return out.to(at::kFloat) / 255.0f;
}

Conditioning usdu_crop_conditioning(const Conditioning& cond, const PilBox& region, int64_t image_w,
                                    int64_t image_h, int64_t canvas_w, int64_t canvas_h) {
  Conditioning out = cond;
  for (CondEntry& e : out) {
    if (!e.area) continue;
    // ComfyUI keeps the area in latent cells: (h, w, y, x) // 8.
    const int64_t h = (*e.area)[0] / 8 * 8, w = (*e.area)[1] / 8 * 8, y = (*e.area)[2] / 8 * 8,
                  x = (*e.area)[3] / 8 * 8;
    auto scale_lo = [](int64_t v, int64_t to, int64_t from) {
      return static_cast<int64_t>(std::floor(static_cast<double>(v * to) / static_cast<double>(from)));
    };
    auto scale_hi = [](int64_t v, int64_t to, int64_t from) {
      return static_cast<int64_t>(std::ceil(static_cast<double>(v * to) / static_cast<double>(from)));
    };
    const int64_t x1 = std::max(scale_lo(x, canvas_w, image_w), region.x1);
    const int64_t y1 = std::max(scale_lo(y, canvas_h, image_h), region.y1);
    const int64_t x2 = std::min(scale_hi(x + w, canvas_w, image_w), region.x2);
    const int64_t y2 = std::min(scale_hi(y + h, canvas_h, image_h), region.y2);
    if (x1 >= x2 || y1 >= y2) {
      e.area.reset();
      e.strength = 1.0f;
      continue;
    }
    const int64_t ox1 = x1 - region.x1, oy1 = y1 - region.y1, ox2 = x2 - region.x1, oy2 = y2 - region.y1;
    e.area = std::array<int, 4>{static_cast<int>((oy2 - oy1) / 8 * 8), static_cast<int>((ox2 - ox1) / 8 * 8),
                                static_cast<int>(oy1 / 8 * 8), static_cast<int>(ox1 / 8 * 8)};
  }
  return out;
}

Result<std::vector<PilImage>> usdu_redraw_tiles(const UsduSampling& s, const UsduStep& step,
                                                const std::vector<PilImage>& tiles, int64_t canvas_w,
                                                int64_t canvas_h, const ProgressFn& progress) {
  ND_ASSERT(!tiles.empty() && !step.tiles.empty(), "usdu_redraw_tiles: no tiles");
  for (const PilImage& t : tiles) {
    if (t.width != tiles[0].width || t.height != tiles[0].height) {
      return Status::invalid_argument(
          "the tiles of one batch differ in size (batch_size > 1 needs uniform tiles)");
    }
  }
  const PilBox& region = step.tiles[0].crop;  // crop_cond reads the first region of a batch
  const Conditioning positive =
      usdu_crop_conditioning(s.positive, region, s.image_width, s.image_height, canvas_w, canvas_h);
  const Conditioning negative =
      usdu_crop_conditioning(s.negative, region, s.image_width, s.image_height, canvas_w, canvas_h);
  ND_ASSIGN_OR_RETURN(at::Tensor latent, encode(*s.vae, usdu_images_to_tensor(tiles)));
  SampleRequest req = s.request;
  req.latent = latent;
  ND_ASSIGN_OR_RETURN(at::Tensor sampled, sample(*s.model, positive, negative, req, progress));
  ND_ASSIGN_OR_RETURN(at::Tensor decoded,
                      s.tiled_decode ? decode_tiled(*s.vae, sampled, 512, 64) : decode(*s.vae, sampled));
  return usdu_images_from_tensor(decoded, "decoded tiles");
}

std::vector<graph::InputSpec> usdu_input_specs(bool with_upscale) { return usdu_inputs(with_upscale); }

Result<UsduSampling> usdu_sampling(const graph::NodeInputs& in, int64_t image_w, int64_t image_h) {
  ND_ASSIGN_OR_RETURN(auto model, need<ModelObject>(in, "model"));
  ND_ASSIGN_OR_RETURN(auto positive, need<ConditioningObject>(in, "positive"));
  ND_ASSIGN_OR_RETURN(auto negative, need<ConditioningObject>(in, "negative"));
  ND_ASSIGN_OR_RETURN(auto vae, need<VaeObject>(in, "vae"));
  UsduSampling s;
  s.model = model->model;
  s.vae = vae->model;
  s.positive = positive->conditioning;
  s.negative = negative->conditioning;
  s.request.seed = in.get_uint64("seed");
  s.request.steps = static_cast<int>(in.get_int("steps"));
  s.request.cfg = in.get_float("cfg");
  s.request.sampler = in.get_string("sampler_name");
  s.request.scheduler = in.get_string("scheduler");
  s.request.denoise = in.get_float("denoise");
  s.tiled_decode = in.get_bool("tiled_decode");
  s.image_width = image_w;
  s.image_height = image_h;
  return s;
}

Result<std::vector<std::vector<PilImage>>> usdu_redraw_wave_here(graph::NodeContext& ctx, const UsduWave& wave) {
  Status progress_status;
  ProgressFn progress = [&](int step, int total) {
    progress_status = ctx.progress(step, total);
    return progress_status.is_ok();
  };
  std::vector<std::vector<PilImage>> out;
  for (size_t k = 0; k < wave.step_ids.size(); ++k) {
    auto redrawn = usdu_redraw_tiles(wave.sampling, wave.steps[wave.step_ids[k]], wave.inputs[k], wave.canvas.width,
                                     wave.canvas.height, progress);
    if (!progress_status.is_ok()) return progress_status;
    if (!redrawn.is_ok()) return redrawn.status();
    out.push_back(std::move(*redrawn));
  }
  return out;
}

graph::NodeFactory usdu_node_factory(const std::string& class_type, UsduWaveRunner runner) {
  const bool with_model = class_type == kUsduUpscale;
  RunFn fn = [with_model, runner](NodeContext& ctx, const NodeInputs& in) {
    return with_model ? run_usdu_with_model(ctx, in, runner) : run_usdu_no_upscale(ctx, in, runner);
  };
  return [fn] { return std::make_unique<FnNode>(fn); };
}

void register_usdu_nodes(graph::NodeRegistry& r) {
  graph::NodeSchema u =
      make_schema(kUsduUpscale, "Ultimate SD Upscale", "image/upscaling", usdu_inputs(true), {"IMAGE"});
  u.description = "Upscales an image and runs image-to-image on tiles from the input image.";
  u.output_tooltips = {"The final upscaled image."};
  u.python_module = "custom_nodes.ComfyUI_UltimateSDUpscale";
  r.add(u, usdu_node_factory(kUsduUpscale, nullptr));
  graph::NodeSchema s = make_schema(kUsduNoUpscale, "Ultimate SD Upscale (No Upscale)", "image/upscaling",
                                    usdu_inputs(false), {"IMAGE"});
  s.description = "Runs image-to-image on tiles from the input image.";
  s.output_tooltips = {"The final refined image."};
  s.python_module = "custom_nodes.ComfyUI_UltimateSDUpscale";
  r.add(s, usdu_node_factory(kUsduNoUpscale, nullptr));
}

}  // namespace netdist::nodes
