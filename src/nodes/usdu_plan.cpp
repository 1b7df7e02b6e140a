#include "nodes/usdu_plan.h"

#include <algorithm>
#include <cmath>
#include <optional>

namespace netdist::nodes {

namespace {

int64_t usdu_py_round(double v) { return static_cast<int64_t>(std::nearbyint(v)); }
int64_t usdu_round_length(double length) { return usdu_py_round(length / 8.0) * 8; }
int64_t usdu_floor_div(int64_t a, int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);
}

int usdu_factor(int64_t num) {
  if (num == 1) return 2;
  if (num % 4 == 0) return 4;
  if (num % 3 == 0) return 3;
  if (num % 2 == 0) return 2;
  return 0;
}

// USDUpscaler.get_factors.
std::vector<int> usdu_scales(int64_t scale_factor) {
  while (usdu_factor(scale_factor) == 0) ++scale_factor;
  std::vector<int> scales;
  int64_t current = 1;
  while (current < scale_factor) {
    const int f = usdu_factor(scale_factor / current);
    scales.push_back(f);
    current *= f;
    if (f == 0) break;
  }
  return scales;
}

// usdu_utils.expand_crop.
PilBox usdu_expand_crop(PilBox r, int64_t width, int64_t height, int64_t target_w, int64_t target_h) {
  int64_t diff = target_w - r.width();
  r.x2 = std::min(r.x2 + usdu_floor_div(diff, 2), width);
  diff = target_w - (r.x2 - r.x1);
  r.x1 = std::max<int64_t>(r.x1 - diff, 0);
  diff = target_w - (r.x2 - r.x1);
  r.x2 = std::min(r.x2 + diff, width);
  diff = target_h - r.height();
  r.y2 = std::min(r.y2 + usdu_floor_div(diff, 2), height);
  diff = target_h - (r.y2 - r.y1);
  r.y1 = std::max<int64_t>(r.y1 - diff, 0);
  diff = target_h - (r.y2 - r.y1);
  r.y2 = std::min(r.y2 + diff, height);
  return r;
}

// How one pass is processed: StableDiffusionProcessing's width/height, inpaint_full_res_padding, mask_blur.
struct UsduPassParams {
  int64_t width = 0, height = 0, padding = 0, blur = 0;
};

// processing.process_images' geometry for one full-canvas mask.
Result<UsduTile> usdu_tile(const PilImage& mask_in, const UsduPassParams& p, bool uniform, std::string kind,
                           int64_t xi, int64_t yi) {
  const int64_t w = mask_in.width, h = mask_in.height;
  const std::optional<PilBox> bbox = pil_getbbox(mask_in);
  PilBox r = bbox ? *bbox : PilBox{w, h, 0, 0};
  r.x1 = std::max<int64_t>(r.x1 - p.padding, 0);
  r.y1 = std::max<int64_t>(r.y1 - p.padding, 0);
  r.x2 = std::min(r.x2 + p.padding, w);
  r.y2 = std::min(r.y2 + p.padding, h);
  if (r.x2 < w) r.x2 -= 1;
  if (r.y2 < h) r.y2 -= 1;
  const std::string where = kind + " tile (" + std::to_string(xi) + ", " + std::to_string(yi) + ")";
  if (r.width() <= 0 || r.height() <= 0 || p.width <= 0 || p.height <= 0) {
    return Status::invalid_argument("UltimateSDUpscale: the " + where + " has an empty mask or size (" +
                                    std::to_string(p.width) + "x" + std::to_string(p.height) + ")");
  }
  UsduTile t;
  t.kind = std::move(kind);
  t.xi = xi;
  t.yi = yi;
  if (uniform) {
    const double crop_ratio = static_cast<double>(r.width()) / static_cast<double>(r.height());
    const double p_ratio = static_cast<double>(p.width) / static_cast<double>(p.height);
    int64_t tw = 0, th = 0;
    if (crop_ratio > p_ratio) {
      tw = r.width();
      th = usdu_py_round(static_cast<double>(r.width()) / p_ratio);
    } else {
      tw = usdu_py_round(static_cast<double>(r.height()) * p_ratio);
      th = r.height();
    }
    t.crop = usdu_expand_crop(r, w, h, tw, th);
    t.tile_width = p.width;
    t.tile_height = p.height;
  } else {
    const int64_t tw = static_cast<int64_t>(std::ceil(static_cast<double>(r.width()) / 8.0)) * 8;
    const int64_t th = static_cast<int64_t>(std::ceil(static_cast<double>(r.height()) / 8.0)) * 8;
    t.crop = usdu_expand_crop(r, w, h, tw, th);
    t.tile_width = tw;
    t.tile_height = th;
  }
  if (p.blur > 0 && bbox) {
    // Blur only a window around the non-zero pixels: with a margin wider than the three box passes reach,
    // the window's edge pixels stay 0 through every pass, so this equals blurring the whole canvas.
    const int64_t m = 3 * (p.blur + 2) + 2;
    const PilBox win{std::max<int64_t>(0, bbox->x1 - m), std::max<int64_t>(0, bbox->y1 - m),
                     std::min(w, bbox->x2 + m), std::min(h, bbox->y2 + m)};
    const PilImage blurred = pil_gaussian_blur(pil_crop(mask_in, win), static_cast<double>(p.blur));
    t.mask = pil_crop(blurred,
                      PilBox{t.crop.x1 - win.x1, t.crop.y1 - win.y1, t.crop.x2 - win.x1, t.crop.y2 - win.y1});
  } else {
    t.mask = pil_crop(mask_in, t.crop);
  }
  const std::optional<PilBox> inner = pil_getbbox(t.mask);
  t.written = inner ? PilBox{inner->x1 + t.crop.x1, inner->y1 + t.crop.y1, inner->x2 + t.crop.x1,
                             inner->y2 + t.crop.y1}
                    : PilBox{t.crop.x1, t.crop.y1, t.crop.x1, t.crop.y1};
  return t;
}

// The tile positions of the redraw in the script's order (Chess: the "white" tiles, then the others).
std::vector<std::pair<int64_t, int64_t>> usdu_redraw_order(UsduRedrawMode mode, int64_t rows, int64_t cols) {
  std::vector<std::pair<int64_t, int64_t>> order;
  if (mode == UsduRedrawMode::kNone) return order;
  if (mode == UsduRedrawMode::kLinear) {
    for (int64_t yi = 0; yi < rows; ++yi)
      for (int64_t xi = 0; xi < cols; ++xi) order.emplace_back(xi, yi);
    return order;
  }
  auto white = [](int64_t xi, int64_t yi) { return (xi % 2 == 0) != (yi % 2 != 0); };
  for (bool color : {true, false}) {
    for (int64_t yi = 0; yi < rows; ++yi)
      for (int64_t xi = 0; xi < cols; ++xi)
        if (white(xi, yi) == color) order.emplace_back(xi, yi);
  }
  return order;
}

Status usdu_add_redraw(const UsduSettings& s, const UsduCanvas& c, std::vector<UsduStep>& steps) {
  const UsduPassParams p{usdu_round_length(static_cast<double>(s.tile_width + s.padding)),
                         usdu_round_length(static_cast<double>(s.tile_height + s.padding)), s.padding,
                         s.mask_blur};
  const auto order = usdu_redraw_order(s.redraw, c.rows, c.cols);
  const int64_t per_step = std::max<int64_t>(1, s.batch_size);
  // Chess batches never mix the two colours (the script flushes after each).
  const size_t first_colour = s.redraw == UsduRedrawMode::kChess
                                  ? static_cast<size_t>(std::count_if(
                                        order.begin(), order.end(),
                                        [](auto& q) { return (q.first % 2 == 0) != (q.second % 2 != 0); }))
                                  : order.size();
  for (size_t i = 0; i < order.size(); ++i) {
    const auto [xi, yi] = order[i];
    PilImage mask = pil_new(c.width, c.height, 1);
    pil_fill_rectangle(mask, xi * s.tile_width, yi * s.tile_height, xi * s.tile_width + s.tile_width,
                       yi * s.tile_height + s.tile_height, 255);
    ND_ASSIGN_OR_RETURN(UsduTile t, usdu_tile(mask, p, s.force_uniform_tiles, "redraw", xi, yi));
    const bool new_step = steps.empty() || steps.back().tiles.front().kind != "redraw" ||
                          static_cast<int64_t>(steps.back().tiles.size()) >= per_step || i == first_colour;
    if (new_step) steps.emplace_back();
    steps.back().tiles.push_back(std::move(t));
  }
  return Status::ok();
}

Status usdu_add_band_pass(const UsduSettings& s, const UsduCanvas& c, std::vector<UsduStep>& steps) {
  if (s.seam_fix_width <= 0) {
    return Status::invalid_argument("UltimateSDUpscale: seam_fix_width must be positive for Band Pass");
  }
  const PilImage g = pil_linear_gradient();
  PilImage mirror = pil_new(256, 256, 1);
  pil_paste(mirror, pil_resize(g, 256, 128, PilFilter::kBicubic), 0, 0);
  pil_paste(mirror, pil_resize(pil_rotate(g, 180), 256, 128, PilFilter::kBicubic), 0, 128);
  const PilImage row_gradient = pil_resize(mirror, c.width, s.seam_fix_width, PilFilter::kBicubic);
  const PilImage col_gradient =
      pil_resize(pil_rotate(mirror, 90), s.seam_fix_width, c.height, PilFilter::kBicubic);
  for (int64_t xi = 1; xi < c.cols; ++xi) {
    PilImage mask = pil_new(c.width, c.height, 1);
    pil_paste(mask, col_gradient, xi * s.tile_width - s.seam_fix_width / 2, 0);
    const UsduPassParams p{s.seam_fix_width + s.seam_fix_padding * 2, c.height, s.seam_fix_padding, 0};
    ND_ASSIGN_OR_RETURN(UsduTile t, usdu_tile(mask, p, s.force_uniform_tiles, "band_col", xi, 0));
    steps.push_back(UsduStep{{std::move(t)}});
  }
  for (int64_t yi = 1; yi < c.rows; ++yi) {
    PilImage mask = pil_new(c.width, c.height, 1);
    pil_paste(mask, row_gradient, 0, yi * s.tile_height - s.seam_fix_width / 2);
    const UsduPassParams p{c.width, s.seam_fix_width + s.seam_fix_padding * 2, s.seam_fix_padding, 0};
    ND_ASSIGN_OR_RETURN(UsduTile t, usdu_tile(mask, p, s.force_uniform_tiles, "band_row", 0, yi));
    steps.push_back(UsduStep{{std::move(t)}});
  }
  return Status::ok();
}

Status usdu_add_half_tile(const UsduSettings& s, const UsduCanvas& c, std::vector<UsduStep>& steps) {
  const int64_t tw = s.tile_width, th = s.tile_height;
  if (tw < 2 || th < 2) return Status::invalid_argument("UltimateSDUpscale: tiles of under 2 pixels");
  const PilImage g = pil_linear_gradient();
  PilImage row_gradient = pil_new(tw, th, 1);
  pil_paste(row_gradient, pil_resize(g, tw, th / 2, PilFilter::kBicubic), 0, 0);
  pil_paste(row_gradient, pil_resize(pil_rotate(g, 180), tw, th / 2, PilFilter::kBicubic), 0, th / 2);
  PilImage col_gradient = pil_new(tw, th, 1);
  pil_paste(col_gradient, pil_resize(pil_rotate(g, 90), tw / 2, th, PilFilter::kBicubic), 0, 0);
  pil_paste(col_gradient, pil_resize(pil_rotate(g, 270), tw / 2, th, PilFilter::kBicubic), tw / 2, 0);
  const UsduPassParams p{tw, th, s.seam_fix_padding, s.seam_fix_mask_blur};
  for (int64_t yi = 0; yi + 1 < c.rows; ++yi) {
    for (int64_t xi = 0; xi < c.cols; ++xi) {
      PilImage mask = pil_new(c.width, c.height, 1);
      pil_paste(mask, row_gradient, xi * tw, yi * th + th / 2);
      ND_ASSIGN_OR_RETURN(UsduTile t, usdu_tile(mask, p, s.force_uniform_tiles, "half_row", xi, yi));
      steps.push_back(UsduStep{{std::move(t)}});
    }
  }
  for (int64_t yi = 0; yi < c.rows; ++yi) {
    for (int64_t xi = 0; xi + 1 < c.cols; ++xi) {
      PilImage mask = pil_new(c.width, c.height, 1);
      pil_paste(mask, col_gradient, xi * tw + tw / 2, yi * th);
      ND_ASSIGN_OR_RETURN(UsduTile t, usdu_tile(mask, p, s.force_uniform_tiles, "half_col", xi, yi));
      steps.push_back(UsduStep{{std::move(t)}});
    }
  }
  return Status::ok();
}

Status usdu_add_intersections(const UsduSettings& s, const UsduCanvas& c, std::vector<UsduStep>& steps) {
  const int64_t tw = s.tile_width, th = s.tile_height;
  const PilImage gradient = pil_invert(pil_resize(pil_radial_gradient(), tw, th, PilFilter::kBicubic));
  const UsduPassParams p{tw, th, 0, s.seam_fix_mask_blur};
  for (int64_t yi = 0; yi + 1 < c.rows; ++yi) {
    for (int64_t xi = 0; xi + 1 < c.cols; ++xi) {
      PilImage mask = pil_new(c.width, c.height, 1);
      pil_paste(mask, gradient, xi * tw + tw / 2, yi * th + th / 2);
      ND_ASSIGN_OR_RETURN(UsduTile t, usdu_tile(mask, p, s.force_uniform_tiles, "corner", xi, yi));
      steps.push_back(UsduStep{{std::move(t)}});
    }
  }
  return Status::ok();
}

bool usdu_overlap(const PilBox& a, const PilBox& b) {
  return a.width() > 0 && a.height() > 0 && b.width() > 0 && b.height() > 0 && a.x1 < b.x2 && b.x1 < a.x2 &&
         a.y1 < b.y2 && b.y1 < a.y2;
}

}  // namespace

const std::vector<std::string>& usdu_redraw_mode_names() {
  static const std::vector<std::string> names = {"Linear", "Chess", "None"};
  return names;
}

const std::vector<std::string>& usdu_seam_fix_mode_names() {
  static const std::vector<std::string> names = {"None", "Band Pass", "Half Tile",
                                                 "Half Tile + Intersections"};
  return names;
}

Result<UsduRedrawMode> parse_usdu_redraw_mode(const std::string& name) {
  if (name == "Linear") return UsduRedrawMode::kLinear;
  if (name == "Chess") return UsduRedrawMode::kChess;
  if (name == "None") return UsduRedrawMode::kNone;
  return Status::invalid_argument("UltimateSDUpscale: unknown mode_type '" + name +
                                  "' (Linear, Chess, None)");
}

Result<UsduSeamFixMode> parse_usdu_seam_fix_mode(const std::string& name) {
  const auto& names = usdu_seam_fix_mode_names();
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return static_cast<UsduSeamFixMode>(i);
  }
  return Status::invalid_argument("UltimateSDUpscale: unknown seam_fix_mode '" + name + "'");
}

Result<UsduCanvas> usdu_canvas(int64_t image_width, int64_t image_height, double upscale_by,
                               const UsduSettings& settings) {
  if (image_width <= 0 || image_height <= 0)
    return Status::invalid_argument("UltimateSDUpscale: empty image");
  if (settings.tile_width <= 0 || settings.tile_height <= 0) {
    return Status::invalid_argument("UltimateSDUpscale: tile_width and tile_height must be positive");
  }
  UsduCanvas c;
  c.width = usdu_round_length(static_cast<double>(image_width) * upscale_by);
  c.height = usdu_round_length(static_cast<double>(image_height) * upscale_by);
  if (c.width <= 0 || c.height <= 0) {
    return Status::invalid_argument("UltimateSDUpscale: a " + std::to_string(image_width) + "x" +
                                    std::to_string(image_height) + " image upscaled by " +
                                    std::to_string(upscale_by) +
                                    " has no pixels (the canvas is rounded to multiples of 8)");
  }
  const double ratio = static_cast<double>(std::max(c.width, c.height)) /
                       static_cast<double>(std::max(image_width, image_height));
  c.scales = usdu_scales(static_cast<int64_t>(std::ceil(ratio)));
  c.rows = static_cast<int64_t>(
      std::ceil(static_cast<double>(c.height) / static_cast<double>(settings.tile_height)));
  c.cols = static_cast<int64_t>(
      std::ceil(static_cast<double>(c.width) / static_cast<double>(settings.tile_width)));
  return c;
}

Result<std::vector<UsduStep>> usdu_plan(const UsduSettings& s, const UsduCanvas& c) {
  if (s.batch_size > 1 && !s.force_uniform_tiles) {
    return Status::invalid_argument(
        "UltimateSDUpscale: batch_size greater than 1 requires force_uniform_tiles to be true");
  }
  std::vector<UsduStep> steps;
  ND_RETURN_IF_ERROR(usdu_add_redraw(s, c, steps));
  if (s.seam_fix == UsduSeamFixMode::kBandPass) ND_RETURN_IF_ERROR(usdu_add_band_pass(s, c, steps));
  if (s.seam_fix == UsduSeamFixMode::kHalfTile || s.seam_fix == UsduSeamFixMode::kHalfTileIntersections) {
    ND_RETURN_IF_ERROR(usdu_add_half_tile(s, c, steps));
  }
  if (s.seam_fix == UsduSeamFixMode::kHalfTileIntersections)
    ND_RETURN_IF_ERROR(usdu_add_intersections(s, c, steps));
  return steps;
}

std::vector<PilImage> usdu_prepare_images(const std::vector<PilImage>& images,
                                          const std::vector<PilImage>& model_upscaled,
                                          const UsduCanvas& canvas) {
  std::vector<PilImage> out;
  const bool upscales = !canvas.scales.empty();
  const bool model = upscales && !model_upscaled.empty();
  for (size_t i = 0; i < images.size(); ++i) {
    PilImage im = model ? model_upscaled[i] : images[i];
    if (i == 0 && upscales && !model) {
      // Upscaler.upscale without a model: LANCZOS by each factor (image 0 only, as the script does).
      for (int f : canvas.scales) im = pil_resize(im, im.width * f, im.height * f, PilFilter::kLanczos);
    }
    out.push_back(pil_resize(im, canvas.width, canvas.height, PilFilter::kLanczos));
  }
  return out;
}

std::vector<PilImage> usdu_step_inputs(const std::vector<PilImage>& images, const UsduStep& step) {
  std::vector<PilImage> tiles;
  for (const PilImage& image : images) {
    for (const UsduTile& t : step.tiles) {
      tiles.push_back(pil_resize(pil_crop(image, t.crop), t.tile_width, t.tile_height, PilFilter::kLanczos));
    }
  }
  return tiles;
}

Status usdu_apply_step(std::vector<PilImage>& images, const UsduStep& step,
                       const std::vector<PilImage>& redrawn) {
  if (redrawn.size() != images.size() * step.tiles.size()) {
    return Status::invalid_argument("UltimateSDUpscale: the sampler returned " +
                                    std::to_string(redrawn.size()) + " tiles for " +
                                    std::to_string(images.size() * step.tiles.size()));
  }
  for (size_t i = 0; i < images.size(); ++i) {
    for (size_t j = 0; j < step.tiles.size(); ++j) {
      const UsduTile& t = step.tiles[j];
      const PilImage& r = redrawn[i * step.tiles.size() + j];
      if (r.channels != 3 || r.width <= 0 || r.height <= 0) {
        return Status::invalid_argument("UltimateSDUpscale: a redrawn tile is not an RGB image");
      }
      pil_composite_tile(images[i], pil_resize(r, t.crop.width(), t.crop.height(), PilFilter::kLanczos),
                         t.crop, t.mask);
    }
  }
  return Status::ok();
}

Status usdu_run(std::vector<PilImage>& images, const std::vector<UsduStep>& steps,
                const UsduRedrawFn& redraw) {
  for (const UsduStep& step : steps) {
    ND_ASSIGN_OR_RETURN(std::vector<PilImage> redrawn, redraw(usdu_step_inputs(images, step)));
    ND_RETURN_IF_ERROR(usdu_apply_step(images, step, redrawn));
  }
  return Status::ok();
}

std::vector<int> usdu_waves(const std::vector<UsduStep>& steps) {
  std::vector<int> wave(steps.size(), 0);
  for (size_t i = 0; i < steps.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      bool conflict = false;
      for (const UsduTile& a : steps[j].tiles) {
        for (const UsduTile& b : steps[i].tiles) {
          conflict = conflict || usdu_overlap(a.written, b.crop) || usdu_overlap(a.crop, b.written);
        }
      }
      if (conflict) wave[i] = std::max(wave[i], wave[j] + 1);
    }
  }
  return wave;
}

}  // namespace netdist::nodes
