// Tiled diffusion (src/engine/tiled_diffusion.h): shiimizu/ComfyUI-TiledDiffusion's grid, weights and blend,
// and apply_tiled_diffusion of include/netdist/tiled_diffusion.h.
#include "engine/tiled_diffusion.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "engine/model.h"

namespace netdist {

namespace {

constexpr int64_t kTileCompression = 8;  // the node's `compression` for every family netdist runs

// Python's -(big // -small): floor division rounds toward −∞.
int64_t tile_py_ceildiv(int64_t big, int64_t small) {
  const int64_t d = -small;
  int64_t q = big / d;
  if ((big % d != 0) && ((big < 0) != (d < 0))) --q;
  return -q;
}

std::string tile_cells(int64_t h, int64_t w) {
  return std::to_string(h) + "×" + std::to_string(w) + "-cell latent";
}

// One axis of split_bboxes: the tile starts along a side of `size` cells.
Result<std::vector<int64_t>> tiled_axis_starts(int64_t size, int64_t tile, int64_t overlap, const std::string& side,
                                         int64_t h, int64_t w) {
  if (tile == overlap) {
    return Status::invalid_argument("TiledDiffusion: tile_overlap (" + std::to_string(overlap * 8) +
                                    " px) equals the " + side + " of the tile (" + std::to_string(tile * 8) +
                                    " px after clamping to the " + tile_cells(h, w) +
                                    "), which leaves the tiles no stride; lower tile_overlap");
  }
  const int64_t count = tile_py_ceildiv(size - overlap, tile - overlap);
  const double step = count > 1 ? static_cast<double>(size - tile) / static_cast<double>(count - 1) : 0.0;
  std::vector<int64_t> starts;
  for (int64_t i = 0; i < count; ++i) {
    starts.push_back(std::min(static_cast<int64_t>(static_cast<double>(i) * step), size - tile));
  }
  return starts;
}

}  // namespace

Result<TileMethod> parse_tile_method(const std::string& method) {
  if (method == "MultiDiffusion") return TileMethod::kMultiDiffusion;
  if (method == "Mixture of Diffusers") return TileMethod::kMixtureOfDiffusers;
  if (method == "SpotDiffusion") {
    return Status::unsupported("TiledDiffusion: method 'SpotDiffusion' is not supported by netdist (use "
                               "'MultiDiffusion' or 'Mixture of Diffusers')");
  }
  return Status::invalid_argument("TiledDiffusion: unknown method '" + method +
                                  "' (expected 'MultiDiffusion' or 'Mixture of Diffusers')");
}

std::string tile_method_name(TileMethod method) {
  return method == TileMethod::kMultiDiffusion ? "MultiDiffusion" : "Mixture of Diffusers";
}

Result<std::shared_ptr<Model>> apply_tiled_diffusion(const std::shared_ptr<Model>& model,
                                                     const TiledDiffusionOptions& options) {
  if (!model) return Status::invalid_argument("TiledDiffusion: no model");
  if (model->unet_.is_empty())
    return Status::invalid_argument("TiledDiffusion: " + model->path_ + " has no diffusion model");
  if (options.tile_width < kTileCompression || options.tile_height < kTileCompression) {
    return Status::invalid_argument("TiledDiffusion: tile_width and tile_height must be at least 8 px (got " +
                                    std::to_string(options.tile_width) + "×" +
                                    std::to_string(options.tile_height) + ")");
  }
  if (options.tile_overlap < 0)
    return Status::invalid_argument("TiledDiffusion: tile_overlap must be >= 0");
  if (options.tile_batch_size < 1)
    return Status::invalid_argument("TiledDiffusion: tile_batch_size must be >= 1");
  auto out = std::make_shared<Model>(*model);
  out->tiling_ = options;
  return out;
}

}  // namespace netdist

namespace netdist::tiles {

Result<TileLayout> tile_layout(const TiledDiffusionOptions& options, int64_t h, int64_t w) {
  if (h < 1 || w < 1) return Status::invalid_argument("TiledDiffusion: empty latent " + tile_cells(h, w));
  if (options.tile_width < kTileCompression || options.tile_height < kTileCompression ||
      options.tile_overlap < 0 || options.tile_batch_size < 1) {
    return Status::invalid_argument("TiledDiffusion: tile sizes, overlap or tile_batch_size out of range");
  }
  const int64_t tw = options.tile_width / kTileCompression, th = options.tile_height / kTileCompression;
  TileLayout layout;
  layout.tile_w = std::min(tw, w);
  layout.tile_h = std::min(th, h);
  layout.overlap = std::max<int64_t>(0, std::min(options.tile_overlap / kTileCompression, std::min(tw, th) - 4));
  ND_ASSIGN_OR_RETURN(auto xs, tiled_axis_starts(w, layout.tile_w, layout.overlap, "width", h, w));
  ND_ASSIGN_OR_RETURN(auto ys, tiled_axis_starts(h, layout.tile_h, layout.overlap, "height", h, w));
  for (int64_t y : ys) {
    for (int64_t x : xs) layout.boxes.push_back({x, y, layout.tile_w, layout.tile_h});
  }
  const int64_t tiles = static_cast<int64_t>(layout.boxes.size());
  const int64_t batches = tile_py_ceildiv(tiles, options.tile_batch_size);
  const int64_t per_batch = tile_py_ceildiv(tiles, batches);
  for (int64_t b = 0; b < batches; ++b) layout.batch_bounds.push_back(std::min(tiles, b * per_batch));
  layout.batch_bounds.push_back(tiles);
  return layout;
}

at::Tensor gaussian_weights(int64_t tile_w, int64_t tile_h) {
  const double var = 0.01, pi = 3.14159265358979311599796346854;  // numpy.pi
  const double tw2 = static_cast<double>(tile_w * tile_w);
  auto f = [&](double v, double midpoint) {
    return std::exp(-(v - midpoint) * (v - midpoint) / tw2 / (2 * var)) / std::sqrt(2 * pi * var);
  };
  std::vector<double> xs, ys;
  for (int64_t x = 0; x < tile_w; ++x) xs.push_back(f(static_cast<double>(x), static_cast<double>(tile_w - 1) / 2));
  for (int64_t y = 0; y < tile_h; ++y) ys.push_back(f(static_cast<double>(y), static_cast<double>(tile_h) / 2));
  at::Tensor out = at::empty({tile_h, tile_w}, at::kFloat);
  float* p = out.data_ptr<float>();
  for (int64_t y = 0; y < tile_h; ++y) {
    for (int64_t x = 0; x < tile_w; ++x) p[y * tile_w + x] = static_cast<float>(ys[y] * xs[x]);
  }
  return out;
}

TileGrid make_grid(TileLayout layout, TileMethod method, int64_t h, int64_t w, const at::Device& device) {
  TileGrid grid;
  grid.weights = at::zeros({1, 1, h, w}, at::TensorOptions().dtype(at::kFloat).device(device));
  if (method == TileMethod::kMixtureOfDiffusers)
    grid.tile_weights = gaussian_weights(layout.tile_w, layout.tile_h).to(device);
  for (const TileBox& b : layout.boxes) {
    at::Tensor cell = grid.weights.narrow(2, b.y, b.h).narrow(3, b.x, b.w);
    if (grid.tile_weights.defined()) {
      cell.add_(grid.tile_weights);
    } else {
      cell.add_(1.0);
    }
  }
  grid.layout = std::move(layout);
  return grid;
}

at::Tensor blend_tiles(const TileGrid& grid, TileMethod method, const std::vector<at::Tensor>& outs,
                       const at::Tensor& like) {
  const std::vector<TileBox>& boxes = grid.layout.boxes;
  ND_ASSERT(outs.size() == boxes.size(), "one output per tile");
  at::Tensor buffer = at::zeros_like(like, at::MemoryFormat::Contiguous);
  if (method == TileMethod::kMultiDiffusion) {
    for (size_t i = 0; i < boxes.size(); ++i) {
      buffer.narrow(2, boxes[i].y, boxes[i].h).narrow(3, boxes[i].x, boxes[i].w).add_(outs[i]);
    }
    return at::where(grid.weights > 1, buffer / grid.weights, buffer);
  }
  const at::Tensor rescale = at::reciprocal(grid.weights);
  for (size_t i = 0; i < boxes.size(); ++i) {
    const TileBox& b = boxes[i];
    const at::Tensor w = grid.tile_weights * rescale.narrow(2, b.y, b.h).narrow(3, b.x, b.w);
    buffer.narrow(2, b.y, b.h).narrow(3, b.x, b.w).add_(outs[i] * w);
  }
  return buffer;
}

std::vector<int64_t> share_bounds(int64_t batches, const std::vector<double>& speeds) {
  if (speeds.empty()) return {0, batches};
  double total = 0;
  for (double s : speeds) total += s;
  std::vector<int64_t> bounds = {0};
  double sum = 0;
  for (size_t r = 0; r + 1 < speeds.size(); ++r) {
    sum += speeds[r];
    const auto b = static_cast<int64_t>(std::floor(static_cast<double>(batches) * sum / total + 0.5));
    bounds.push_back(std::clamp(b, bounds.back(), batches));
  }
  bounds.push_back(batches);
  return bounds;
}

Status check_parallel(const TileParallel& parallel) {
  if (!parallel.group) return Status::ok();
  const int size = parallel.group->size();
  if (size < 1 || parallel.group->rank() < 0 || parallel.group->rank() >= size)
    return Status::invalid_argument("tiled sampling: step group rank/size out of range");
  if (parallel.speeds.empty()) return Status::ok();
  if (static_cast<int>(parallel.speeds.size()) != size) {
    return Status::invalid_argument("tiled sampling: " + std::to_string(parallel.speeds.size()) +
                                    " tile speeds for a step group of " + std::to_string(size));
  }
  for (double s : parallel.speeds) {
    if (!std::isfinite(s) || s <= 0)
      return Status::invalid_argument("tiled sampling: tile speeds must be positive and finite");
  }
  return Status::ok();
}

namespace {

// One batch of tiles through the inner function: x cropped tile by tile and concatenated, sigma, context and
// y repeated per tile (the node's repeat_to_batch_size); output rows [i·N, (i+1)·N) are tile i's.
at::Tensor tile_run_batch(const cond::ModelFn& inner, const TileLayout& layout, int64_t begin, int64_t end,
                          const at::Tensor& x, const at::Tensor& sigma, const at::Tensor& context,
                          const at::Tensor& y) {
  std::vector<at::Tensor> crops;
  for (int64_t i = begin; i < end; ++i) {
    const TileBox& b = layout.boxes[i];
    crops.push_back(x.narrow(2, b.y, b.h).narrow(3, b.x, b.w));
  }
  const int64_t k = end - begin;
  return inner(at::cat(crops, 0), sigma.repeat({k}), context.repeat({k, 1, 1}),
               y.defined() ? y.repeat({k, 1}) : y);
}

}  // namespace

Result<std::vector<at::Tensor>> run_tiles(const cond::ModelFn& inner, const TileLayout& layout,
                                          const at::Tensor& x, const at::Tensor& sigma,
                                          const at::Tensor& context, const at::Tensor& y,
                                          const TileParallel& parallel) {
  const int64_t n = x.size(0), batches = static_cast<int64_t>(layout.batch_bounds.size()) - 1;
  const std::vector<int64_t>& tb = layout.batch_bounds;
  std::vector<at::Tensor> outs(layout.boxes.size());
  if (!parallel.group) {
    for (int64_t b = 0; b < batches; ++b) {
      at::Tensor out = tile_run_batch(inner, layout, tb[b], tb[b + 1], x, sigma, context, y);
      for (int64_t i = tb[b]; i < tb[b + 1]; ++i) outs[i] = out.slice(0, (i - tb[b]) * n, (i - tb[b] + 1) * n);
    }
    return outs;
  }
  const int size = parallel.group->size(), rank = parallel.group->rank();
  std::vector<double> speeds = parallel.speeds;
  if (speeds.empty()) speeds.assign(size, 1.0);
  const std::vector<int64_t> share = share_bounds(batches, speeds);
  int64_t most = 0;  // tiles of the largest share
  for (int r = 0; r < size; ++r) most = std::max(most, tb[share[r + 1]] - tb[share[r]]);
  std::vector<at::Tensor> local;
  for (int64_t b = share[rank]; b < share[rank + 1]; ++b)
    local.push_back(tile_run_batch(inner, layout, tb[b], tb[b + 1], x, sigma, context, y));
  // The exchanged tensor is a normal one, not an inference tensor: c10d's Gloo work writes tensors on its own
  // threads, outside sample()'s InferenceMode, which libtorch refuses for inference tensors.
  c10::InferenceMode normal_tensors(false);
  at::Tensor mine = at::zeros({std::max<int64_t>(most, 1) * n, x.size(1), layout.tile_h, layout.tile_w},
                              x.options().dtype(at::kFloat));
  int64_t row = 0;
  for (const at::Tensor& out : local) {
    mine.slice(0, row, row + out.size(0)).copy_(out);
    row += out.size(0);
  }
  ND_ASSIGN_OR_RETURN(std::vector<at::Tensor> all, parallel.group->all_gather(mine));
  if (static_cast<int>(all.size()) != size)
    return Status::internal("tiled sampling: all_gather returned " + std::to_string(all.size()) + " tensors");
  for (int r = 0; r < size; ++r) {
    for (int64_t i = tb[share[r]]; i < tb[share[r + 1]]; ++i) {
      const int64_t j = i - tb[share[r]];
      outs[i] = all[r].slice(0, j * n, (j + 1) * n);
    }
  }
  return outs;
}

cond::ModelFn tiled_model_fn(cond::ModelFn inner, const TiledDiffusionOptions& options, TileParallel parallel,
                             Status* failure) {
  return [inner = std::move(inner), options, parallel = std::move(parallel), failure](
             const at::Tensor& x, const at::Tensor& sigma, const at::Tensor& context, const at::Tensor& y) {
    auto fail = [&](const Status& s) {
      *failure = s;
      throw std::runtime_error(s.to_string());
    };
    Result<TileLayout> layout = tile_layout(options, x.size(2), x.size(3));
    if (!layout.is_ok()) fail(layout.status());
    Result<std::vector<at::Tensor>> outs = run_tiles(inner, *layout, x, sigma, context, y, parallel);
    if (!outs.is_ok()) fail(outs.status());
    const TileGrid grid = make_grid(std::move(*layout), options.method, x.size(2), x.size(3), x.device());
    return blend_tiles(grid, options.method, *outs, x);
  };
}

Status check_tiling(const TiledDiffusionOptions& options, int64_t h, int64_t w,
                    const std::vector<const std::vector<cond::CondRow>*>& conds, const TileParallel& parallel) {
  ND_RETURN_IF_ERROR(check_parallel(parallel));
  ND_RETURN_IF_ERROR(tile_layout(options, h, w).status());
  for (const auto* list : conds) {
    if (!list) continue;
    for (const cond::CondRow& row : *list) {
      if (!row.area) continue;
      const auto a = cond::clamp_area(*row.area, h, w);
      ND_RETURN_IF_ERROR(tile_layout(options, a[0], a[1]).status());
    }
  }
  return Status::ok();
}

cond::ModelFn TiledCall::wrap(cond::ModelFn inner) const {
  if (!options_) return inner;
  return tiled_model_fn(std::move(inner), *options_, parallel_, failure_.get());
}

Status TiledCall::status(Status sampled) const { return failure_->is_ok() ? sampled : *failure_; }

Result<TiledCall> prepare_call(const std::optional<TiledDiffusionOptions>& tiling, const SampleRequest& req,
                               const std::vector<cond::CondRow>& positive,
                               const std::vector<cond::CondRow>& negative, bool skip_uncond) {
  TiledCall call;
  if (!tiling) {
    if (req.tile_group)
      return Status::invalid_argument("sample: a tile group needs a model patched by TiledDiffusion");
    return call;
  }
  call.options_ = tiling;
  call.parallel_ = {req.tile_group.get(), req.tile_speeds};
  ND_RETURN_IF_ERROR(check_tiling(*tiling, req.latent.size(2), req.latent.size(3),
                                  {&positive, skip_uncond ? nullptr : &negative}, call.parallel_));
  return call;
}

}  // namespace netdist::tiles
