#include "nodes/upscale.h"

#include "nodes/pil_ops.h"

#include <cmath>
#include <vector>

namespace netdist::nodes {

namespace {

// (ratios, floor index, ceil index) of a bilinear resize of positions 0..old-1 to `length_new` samples.
struct BilinearData {
  at::Tensor ratios, coords_1, coords_2;  // [1, 1, 1, length_new]
};

BilinearData bilinear_data(int64_t length_old, int64_t length_new) {
  BilinearData d;
  at::Tensor c1 = at::arange(length_old, at::kFloat).reshape({1, 1, 1, -1});
  c1 = at::upsample_bilinear2d(c1, {1, length_new}, false);
  d.ratios = c1 - c1.floor();
  d.coords_1 = c1.to(at::kLong);
  at::Tensor c2 = at::arange(length_old, at::kFloat).reshape({1, 1, 1, -1}) + 1;
  c2.select(3, length_old - 1) -= 1;
  c2 = at::upsample_bilinear2d(c2, {1, length_new}, false);
  d.coords_2 = c2.to(at::kLong);
  return d;
}

// Slerp of rows b1, b2 [M, C] by ratios r [M, 1] (comfy.utils.bislerp's inner slerp).
at::Tensor slerp(const at::Tensor& b1, const at::Tensor& b2, const at::Tensor& r) {
  const int64_t c = b1.size(-1);
  at::Tensor b1_norms = at::norm(b1, 2, {-1}, true);
  at::Tensor b2_norms = at::norm(b2, 2, {-1}, true);
  at::Tensor b1_normalized = b1 / b1_norms;
  at::Tensor b2_normalized = b2 / b2_norms;
  b1_normalized.masked_fill_(b1_norms.expand({-1, c}) == 0.0, 0.0);
  b2_normalized.masked_fill_(b2_norms.expand({-1, c}) == 0.0, 0.0);
  at::Tensor dot = (b1_normalized * b2_normalized).sum(1);
  at::Tensor omega = at::acos(dot);
  at::Tensor so = at::sin(omega);
  at::Tensor rs = r.squeeze(1);
  at::Tensor res = (at::sin((1.0 - rs) * omega) / so).unsqueeze(1) * b1_normalized +
                   (at::sin(rs * omega) / so).unsqueeze(1) * b2_normalized;
  res *= (b1_norms * (1.0 - r) + b2_norms * r).expand({-1, c});
  at::Tensor same = dot > 1 - 1e-5;
  res.index_put_({same}, b1.index({same}));
  at::Tensor opposite = dot < 1e-5 - 1;
  res.index_put_({opposite}, (b1 * (1.0 - r) + b2 * r).index({opposite}));
  return res;
}

}  // namespace

int64_t py_round(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

at::Tensor bislerp(const at::Tensor& samples_in, int64_t width, int64_t height) {
  at::Tensor samples = samples_in.to(at::kFloat);
  const int64_t n = samples.size(0), c = samples.size(1), h = samples.size(2), w = samples.size(3);

  BilinearData dw = bilinear_data(w, width);
  at::Tensor pass_1 = samples.gather(-1, dw.coords_1.expand({n, c, h, -1})).movedim(1, -1).reshape({-1, c});
  at::Tensor pass_2 = samples.gather(-1, dw.coords_2.expand({n, c, h, -1})).movedim(1, -1).reshape({-1, c});
  at::Tensor ratios = dw.ratios.expand({n, 1, h, -1}).movedim(1, -1).reshape({-1, 1});
  at::Tensor result = slerp(pass_1, pass_2, ratios).reshape({n, h, width, c}).movedim(-1, 1);

  BilinearData dh = bilinear_data(h, height);
  at::Tensor c1 = dh.coords_1.reshape({1, 1, -1, 1}).expand({n, c, -1, width});
  at::Tensor c2 = dh.coords_2.reshape({1, 1, -1, 1}).expand({n, c, -1, width});
  ratios = dh.ratios.reshape({1, 1, -1, 1}).expand({n, 1, -1, width}).movedim(1, -1).reshape({-1, 1});
  pass_1 = result.gather(-2, c1).movedim(1, -1).reshape({-1, c});
  pass_2 = result.gather(-2, c2).movedim(1, -1).reshape({-1, c});
  return slerp(pass_1, pass_2, ratios).reshape({n, height, width, c}).movedim(-1, 1).contiguous();
}

at::Tensor lanczos(const at::Tensor& samples, int64_t width, int64_t height) {
  const int64_t n = samples.size(0), c = samples.size(1), h = samples.size(2), w = samples.size(3);
  // [N, H, W, C] uint8 = trunc(clip(255·x, 0, 255)) in float32, as numpy does it.
  at::Tensor px =
      (samples.to(at::kFloat).permute({0, 2, 3, 1}) * 255.0f).clamp(0.0, 255.0).to(at::kByte).contiguous();
  at::Tensor out = at::empty({n, height, width, c}, at::kByte);
  for (int64_t b = 0; b < n; ++b) {
    at::Tensor cur = px[b].contiguous();
    int64_t cw = w;
    if (width != w || height != h) {
      // PIL: a pass runs only for an axis whose size changes (a full-size box).
      if (width != w) {
        at::Tensor tmp = at::empty({h, width, c}, at::kByte);
        for (int64_t ch = 0; ch < c; ++ch) {
          pil_resample_pass(cur.data_ptr<uint8_t>() + ch, tmp.data_ptr<uint8_t>() + ch, h, w, width, c, w * c,
                            c, width * c, PilFilter::kLanczos);
        }
        cur = tmp;
        cw = width;
      }
      if (height != h) {
        at::Tensor tmp = at::empty({height, cw, c}, at::kByte);
        for (int64_t ch = 0; ch < c; ++ch) {
          pil_resample_pass(cur.data_ptr<uint8_t>() + ch, tmp.data_ptr<uint8_t>() + ch, cw, h, height, cw * c,
                            c, cw * c, c, PilFilter::kLanczos);
        }
        cur = tmp;
      }
    }
    out[b].copy_(cur);
  }
  return (out.to(at::kFloat) / 255.0f).permute({0, 3, 1, 2}).contiguous();
}

Result<at::Tensor> common_upscale(const at::Tensor& samples, int64_t width, int64_t height,
                                  const std::string& method, const std::string& crop) {
  if (!samples.defined() || samples.dim() != 4) {
    return Status::invalid_argument("upscale: samples must be [N, C, H, W]");
  }
  if (width <= 0 || height <= 0) {
    return Status::invalid_argument("upscale: target size " + std::to_string(width) + "x" +
                                    std::to_string(height) + " is not positive");
  }
  at::Tensor s = samples;
  if (crop == "center") {
    const int64_t old_width = samples.size(-1), old_height = samples.size(-2);
    const double old_aspect = static_cast<double>(old_width) / static_cast<double>(old_height);
    const double new_aspect = static_cast<double>(width) / static_cast<double>(height);
    int64_t x = 0, y = 0;
    if (old_aspect > new_aspect) {
      x = py_round((old_width - old_width * (new_aspect / old_aspect)) / 2);
    } else if (old_aspect < new_aspect) {
      y = py_round((old_height - old_height * (old_aspect / new_aspect)) / 2);
    }
    s = samples.narrow(-2, y, old_height - y * 2).narrow(-1, x, old_width - x * 2);
  } else if (crop != "disabled") {
    return Status::invalid_argument("upscale: unknown crop '" + crop + "' (disabled, center)");
  }
  s = s.contiguous();
  if (method == "nearest-exact") return at::_upsample_nearest_exact2d(s, {height, width});
  if (method == "bilinear") return at::upsample_bilinear2d(s, {height, width}, false);
  if (method == "bicubic") return at::upsample_bicubic2d(s, {height, width}, false);
  if (method == "area") return at::adaptive_avg_pool2d(s, {height, width});
  if (method == "bislerp") return bislerp(s, width, height);
  if (method == "lanczos") {
    if (s.size(1) > 4) return Status::invalid_argument("upscale: lanczos needs images of at most 4 channels");
    return lanczos(s, width, height);
  }
  return Status::invalid_argument("upscale: unknown upscale_method '" + method + "'");
}

}  // namespace netdist::nodes
