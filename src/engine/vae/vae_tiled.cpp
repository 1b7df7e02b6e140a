#include "engine/vae/vae_tiled.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/status.h"

namespace netdist::vae {

namespace {

std::vector<int64_t> tile_starts(int64_t size, int64_t tile, int64_t overlap) {
  if (size <= tile) return {0};
  std::vector<int64_t> starts;
  for (int64_t p = 0; p < size - overlap; p += tile - overlap) starts.push_back(p);
  return starts;
}

// The per-axis feather of comfy tiled_scale_multidim, multiplied in float32 in the same order.
at::Tensor feather(int64_t length, int64_t f) {
  std::vector<float> m(static_cast<size_t>(length), 1.0f);
  if (f < length) {
    for (int64_t t = 0; t < f; ++t) {
      const float a = static_cast<float>(static_cast<double>(t + 1) / static_cast<double>(f));
      m[static_cast<size_t>(t)] *= a;
      m[static_cast<size_t>(length - 1 - t)] *= a;
    }
  }
  return at::tensor(m, at::TensorOptions().dtype(at::kFloat));
}

// Python's round(v / d) (half to even) for the positions and sizes of a downscaled tile.
int64_t tiled_round_div(int64_t v, int64_t d) {
  return static_cast<int64_t>(std::nearbyint(static_cast<double>(v) * (1.0 / static_cast<double>(d))));
}

}  // namespace

at::Tensor tiled_downscale(const at::Tensor& samples, const std::function<at::Tensor(const at::Tensor&)>& fn,
                           int64_t tile_h, int64_t tile_w, int64_t overlap, int64_t downscale,
                           int64_t out_channels) {
  ND_ASSERT(samples.dim() == 4 && downscale > 0 && overlap >= 0, "tiled_downscale expects [B, C, H, W]");
  const int64_t h = samples.size(2), w = samples.size(3);
  ND_ASSERT((h <= tile_h || tile_h > overlap) && (w <= tile_w || tile_w > overlap),
            "tiled_downscale: tiles must be larger than overlap");
  const auto fopts = samples.options().dtype(at::kFloat);
  const int64_t oh = tiled_round_div(h, downscale), ow = tiled_round_div(w, downscale);
  at::Tensor output = at::empty({samples.size(0), out_channels, oh, ow}, fopts);
  const int64_t f = tiled_round_div(overlap, downscale);
  for (int64_t b = 0; b < samples.size(0); ++b) {
    at::Tensor s = samples.narrow(0, b, 1);
    if (h <= tile_h && w <= tile_w) {
      output.narrow(0, b, 1).copy_(fn(s));
      continue;
    }
    at::Tensor out = at::zeros({1, out_channels, oh, ow}, fopts);
    at::Tensor out_div = at::zeros_like(out);
    for (int64_t y : tile_starts(h, tile_h, overlap)) {
      for (int64_t x : tile_starts(w, tile_w, overlap)) {
        const int64_t th = std::min(tile_h, h - y), tw = std::min(tile_w, w - x);
        at::Tensor ps = fn(s.narrow(2, y, th).narrow(3, x, tw)).to(at::kFloat);
        at::Tensor mask =
            (feather(ps.size(2), f).unsqueeze(1) * feather(ps.size(3), f).unsqueeze(0)).to(ps.device());
        const int64_t oy = tiled_round_div(y, downscale), ox = tiled_round_div(x, downscale);
        out.narrow(2, oy, ps.size(2)).narrow(3, ox, ps.size(3)).add_(ps * mask);
        out_div.narrow(2, oy, ps.size(2)).narrow(3, ox, ps.size(3)).add_(mask.expand_as(ps));
      }
    }
    output.narrow(0, b, 1).copy_(out / out_div);
  }
  return output;
}

at::Tensor tiled_scale(const at::Tensor& samples, const std::function<at::Tensor(const at::Tensor&)>& fn,
                       int64_t tile_h, int64_t tile_w, int64_t overlap, int64_t upscale, int64_t out_channels) {
  ND_ASSERT(samples.dim() == 4, "tiled_scale expects [B, C, H, W]");
  ND_ASSERT(tile_h > overlap && tile_w > overlap && overlap >= 0, "tiled_scale: tiles must be larger than overlap");
  const int64_t h = samples.size(2);
  const int64_t w = samples.size(3);
  const auto fopts = samples.options().dtype(at::kFloat);
  at::Tensor output = at::empty({samples.size(0), out_channels, h * upscale, w * upscale}, fopts);
  const int64_t f = overlap * upscale;
  for (int64_t b = 0; b < samples.size(0); ++b) {
    at::Tensor s = samples.narrow(0, b, 1);
    if (h <= tile_h && w <= tile_w) {
      output.narrow(0, b, 1).copy_(fn(s));
      continue;
    }
    at::Tensor out = at::zeros({1, out_channels, h * upscale, w * upscale}, fopts);
    at::Tensor out_div = at::zeros_like(out);
    for (int64_t y : tile_starts(h, tile_h, overlap)) {
      for (int64_t x : tile_starts(w, tile_w, overlap)) {
        const int64_t th = std::min(tile_h, h - y);
        const int64_t tw = std::min(tile_w, w - x);
        at::Tensor ps = fn(s.narrow(2, y, th).narrow(3, x, tw)).to(at::kFloat);
        at::Tensor mask = (feather(ps.size(2), f).unsqueeze(1) * feather(ps.size(3), f).unsqueeze(0)).to(ps.device());
        out.narrow(2, y * upscale, ps.size(2)).narrow(3, x * upscale, ps.size(3)).add_(ps * mask);
        out_div.narrow(2, y * upscale, ps.size(2)).narrow(3, x * upscale, ps.size(3)).add_(mask.expand_as(ps));
      }
    }
    output.narrow(0, b, 1).copy_(out / out_div);
  }
  return output;
}

}  // namespace netdist::vae
