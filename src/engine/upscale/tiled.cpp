#include "engine/upscale/tiled.h"

#include <algorithm>
#include <vector>

namespace netdist::upscale {

int64_t tiled_scale_steps(int64_t width, int64_t height, int64_t tile, int64_t overlap) {
  const auto count = [&](int64_t size) {
    return size <= tile ? int64_t{1} : (size - overlap + (tile - overlap) - 1) / (tile - overlap);
  };
  return count(height) * count(width);
}

std::vector<int64_t> tile_starts(int64_t size, int64_t tile, int64_t overlap) {
  if (size <= tile) return {0};
  std::vector<int64_t> starts;
  for (int64_t p = 0; p < size - overlap; p += tile - overlap) starts.push_back(std::max<int64_t>(0, std::min(size - overlap, p)));
  return starts;
}

namespace {

// The factors one line of an axis of length `len` is multiplied by, in the order tiled_scale_multidim
// applies them: for t in range(f): line t *= (t+1)/f, then line len-1-t *= (t+1)/f (float32 scalars).
std::vector<std::vector<float>> tiled_line_factors(int64_t len, int64_t f) {
  std::vector<std::vector<float>> factors(static_cast<size_t>(len));
  if (f >= len) return factors;
  for (int64_t t = 0; t < f; ++t) {
    const float a = static_cast<float>(static_cast<double>(t + 1) / static_cast<double>(f));
    factors[static_cast<size_t>(t)].push_back(a);
    factors[static_cast<size_t>(len - 1 - t)].push_back(a);
  }
  return factors;
}

}  // namespace

at::Tensor tile_mask(int64_t rows, int64_t cols, int64_t feather) {
  const auto row_factors = tiled_line_factors(rows, feather);
  const auto col_factors = tiled_line_factors(cols, feather);
  std::vector<float> row_value(static_cast<size_t>(rows), 1.0f);
  for (int64_t i = 0; i < rows; ++i)
    for (float a : row_factors[static_cast<size_t>(i)]) row_value[static_cast<size_t>(i)] *= a;
  at::Tensor mask = at::empty({rows, cols}, at::TensorOptions().dtype(at::kFloat));
  float* m = mask.data_ptr<float>();
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      float v = row_value[static_cast<size_t>(i)];
      for (float a : col_factors[static_cast<size_t>(j)]) v *= a;
      m[i * cols + j] = v;
    }
  }
  return mask;
}

Result<at::Tensor> tiled_scale(const at::Tensor& samples, const TileFn& fn, int64_t tile, int64_t overlap,
                               int64_t scale, int64_t out_channels, const TileProgress& progress) {
  ND_ASSERT(samples.dim() == 4, "tiled_scale expects [N, C, H, W]");
  ND_ASSERT(tile > overlap && overlap >= 0 && scale >= 1, "tiled_scale: tile must exceed overlap");
  const int64_t n = samples.size(0), h = samples.size(2), w = samples.size(3);
  const auto cpu_float = at::TensorOptions().dtype(at::kFloat).device(at::kCPU);
  at::Tensor output = at::empty({n, out_channels, h * scale, w * scale}, cpu_float);
  const int64_t total = n * tiled_scale_steps(w, h, tile, overlap);
  int64_t done = 0;
  const auto step = [&]() -> Status {
    ++done;
    if (progress && !progress(done, total)) return Status::cancelled("upscale interrupted");
    return Status::ok();
  };
  const int64_t feather = overlap * scale;
  for (int64_t b = 0; b < n; ++b) {
    at::Tensor s = samples.narrow(0, b, 1);
    if (h <= tile && w <= tile) {
      output.narrow(0, b, 1).copy_(fn(s).to(at::kCPU));
      ND_RETURN_IF_ERROR(step());
      continue;
    }
    at::Tensor out = at::zeros({1, out_channels, h * scale, w * scale}, cpu_float);
    at::Tensor out_div = at::zeros_like(out);
    for (int64_t y : tile_starts(h, tile, overlap)) {
      for (int64_t x : tile_starts(w, tile, overlap)) {
        const int64_t th = std::min(tile, h - y), tw = std::min(tile, w - x);
        at::Tensor ps = fn(s.narrow(2, y, th).narrow(3, x, tw)).to(at::kCPU);
        ND_ASSERT(ps.scalar_type() == at::kFloat && ps.size(1) == out_channels,
                  "tiled_scale: the tile function returns float32 with out_channels channels");
        const at::Tensor mask = tile_mask(ps.size(2), ps.size(3), feather).expand_as(ps);
        out.narrow(2, y * scale, ps.size(2)).narrow(3, x * scale, ps.size(3)).add_(ps * mask);
        out_div.narrow(2, y * scale, ps.size(2)).narrow(3, x * scale, ps.size(3)).add_(mask);
        ND_RETURN_IF_ERROR(step());
      }
    }
    output.narrow(0, b, 1).copy_(out / out_div);
  }
  return output;
}

}  // namespace netdist::upscale
