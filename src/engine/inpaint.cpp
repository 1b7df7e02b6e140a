#include "engine/inpaint.h"

#include <cmath>
#include <utility>

#include "engine/sampling/noise.h"

namespace netdist::inpaint {

namespace {

std::string inpaint_shape(const at::Tensor& t) {
  std::string out = "[";
  for (int64_t i = 0; i < t.dim(); ++i) out += (i ? ", " : "") + std::to_string(t.size(i));
  return out + "]";
}

at::Tensor inpaint_bilinear(const at::Tensor& t, int64_t height, int64_t width) {
  return at::upsample_bilinear2d(t, {height, width}, false);
}

}  // namespace

Status check_mask(const at::Tensor& mask, const std::string& input) {
  if (!mask.defined()) return Status::invalid_argument(input + " holds no tensor");
  if (mask.dim() < 2 || mask.dim() > 4) {
    return Status::invalid_argument(input + " is " + inpaint_shape(mask) + ", not [H, W], [N, H, W] or [N, 1, H, W]");
  }
  if (mask.numel() == 0) {
    return Status::invalid_argument(input + " " + inpaint_shape(mask) + " has no rows or no pixels");
  }
  if (!at::isFloatingType(mask.scalar_type())) {
    return Status::invalid_argument(input + " holds " + std::string(c10::toString(mask.scalar_type())) +
                                    " values, not floating point");
  }
  return Status::ok();
}

at::Tensor repeat_to_batch_size(const at::Tensor& t, int64_t n) {
  const int64_t rows = t.size(0);
  if (rows > n) return t.narrow(0, 0, n);
  if (rows == n) return t;
  std::vector<int64_t> reps(static_cast<size_t>(t.dim()), 1);
  reps[0] = (n + rows - 1) / rows;
  return t.repeat(reps).narrow(0, 0, n);
}

at::Tensor resize_to_batch_size(const at::Tensor& t, int64_t n) {
  const int64_t in = t.size(0);
  if (in == n) return t;
  if (n <= 1) return t.slice(0, 0, n);
  std::vector<int64_t> index;
  if (n < in) {
    const double scale = static_cast<double>(in - 1) / static_cast<double>(n - 1);
    for (int64_t i = 0; i < n; ++i)
      index.push_back(std::min(static_cast<int64_t>(std::nearbyint(static_cast<double>(i) * scale)), in - 1));
  } else {
    const double scale = static_cast<double>(in) / static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i)
      index.push_back(std::min(static_cast<int64_t>(std::floor((static_cast<double>(i) + 0.5) * scale)), in - 1));
  }
  return t.index_select(0, at::tensor(index, at::kLong).to(t.device()));
}

at::Tensor reshape_mask(const at::Tensor& mask, at::IntArrayRef shape) {
  at::Tensor m = mask.reshape({-1, 1, mask.size(-2), mask.size(-1)});
  m = inpaint_bilinear(m, shape[2], shape[3]);
  if (m.size(1) < shape[1]) m = m.repeat({1, shape[1], 1, 1}).slice(1, 0, shape[1]);
  return repeat_to_batch_size(m, shape[0]);
}

at::Tensor upscale_bilinear_center(const at::Tensor& t, int64_t width, int64_t height) {
  const int64_t old_w = t.size(-1), old_h = t.size(-2);
  const double old_aspect = static_cast<double>(old_w) / static_cast<double>(old_h);
  const double new_aspect = static_cast<double>(width) / static_cast<double>(height);
  int64_t x = 0, y = 0;
  // Python's round(): half to even, as std::nearbyint in the default rounding mode.
  if (old_aspect > new_aspect) {
    x = static_cast<int64_t>(std::nearbyint((old_w - old_w * (new_aspect / old_aspect)) / 2));
  } else if (old_aspect < new_aspect) {
    y = static_cast<int64_t>(std::nearbyint((old_h - old_h * (old_aspect / new_aspect)) / 2));
  }
  at::Tensor s = t.narrow(-2, y, old_h - y * 2).narrow(-1, x, old_w - x * 2);
  return inpaint_bilinear(s, height, width);
}

sampling::Denoiser masked_denoiser(sampling::Denoiser inner, const sampling::ModelSampling& ms, at::Tensor mask,
                                   at::Tensor noise, at::Tensor latent) {
  return [inner = std::move(inner), &ms, mask = std::move(mask), noise = std::move(noise),
          latent = std::move(latent)](const at::Tensor& x, const at::Tensor& sigma) {
    const at::Tensor latent_mask = 1. - mask;
    const at::Tensor s = sigma.reshape({sigma.size(0), 1, 1, 1});
    const at::Tensor xm = x * mask + ms.noise_scaling(s, noise, latent, false) * latent_mask;
    at::Tensor out = inner(xm, sigma);
    return out * mask + latent * latent_mask;
  };
}

at::Tensor inpaint_noise(const std::string& sampler, uint64_t seed, at::IntArrayRef full_shape, const at::Tensor& noise,
                         int64_t row_begin, int64_t row_end) {
  if (sampler != "ddim") return noise;
  return sampling::initial_noise_rows(seed + 1, full_shape, row_begin, row_end);
}

at::Tensor concat_cond(at::IntArrayRef noise_shape, const at::Tensor& latent_image, const at::Tensor& denoise_mask,
                       const at::Tensor& concat_latent_image, const at::Tensor& concat_mask, double scale) {
  const int64_t n = noise_shape[0], h = noise_shape[2], w = noise_shape[3];
  // As ComfyUI: InpaintModelConditioning's tensors are resized where they are (the CPU), the sampler's own
  // latent and mask on the device; the result goes to the device.
  const at::Device device = latent_image.device();
  at::Tensor mask = concat_mask.defined() ? concat_mask : denoise_mask;
  at::Tensor image = concat_latent_image.defined() ? concat_latent_image * scale : latent_image;
  if (image.size(1) != noise_shape[1] || image.size(2) != h || image.size(3) != w) {
    image = upscale_bilinear_center(image, w, h);
  }
  image = resize_to_batch_size(image, n).to(device);
  if (!mask.defined()) {
    at::Tensor blank = at::ones({n, 4, h, w}, latent_image.options());
    const double grey[4] = {0.8223, -0.6876, 0.6364, 0.1380};
    for (int64_t c = 0; c < 4; ++c) blank.select(1, c).mul_(grey[c]);
    return at::cat({at::ones({n, 1, h, w}, latent_image.options()), blank}, 1);
  }
  if (mask.dim() == 4) mask = mask.slice(1, 0, 1);
  mask = mask.reshape({-1, 1, mask.size(-2), mask.size(-1)});
  if (mask.size(2) != h || mask.size(3) != w) mask = upscale_bilinear_center(mask, w, h);
  mask = resize_to_batch_size(mask.round(), n);
  return at::cat({mask.to(device), image}, 1);
}

void add_concat(std::vector<cond::CondRow>& rows, const Conditioning& conditioning, const at::Tensor& latent,
                const at::Tensor& mask, double scale, int64_t row_begin, int64_t row_end, const at::Device& device) {
  const at::Tensor scaled = latent.to(at::kFloat) * scale;
  for (size_t i = 0; i < rows.size() && i < conditioning.size(); ++i) {
    const CondEntry& e = conditioning[i];
    at::Tensor c = concat_cond(latent.sizes(), scaled, mask, e.concat_latent_image, e.concat_mask, scale);
    rows[i].concat = c.slice(0, row_begin, row_end).to(device);
  }
}

Result<at::Tensor> prepare(const SampleRequest& req, const Target& target, std::vector<cond::CondRow>& pos,
                           const Conditioning& positive, std::vector<cond::CondRow>& neg,
                           const Conditioning& negative) {
  if (req.noise_mask.defined()) ND_RETURN_IF_ERROR(check_mask(req.noise_mask, "latent_image's noise_mask"));
  if (target.concat && target.tiled) {
    return Status::unsupported("TiledDiffusion of an inpainting UNet is not supported yet");
  }
  try {
    at::Tensor mask;
    if (req.noise_mask.defined()) mask = reshape_mask(req.noise_mask.to(at::kFloat), req.latent.sizes());
    if (target.concat) {
      for (auto [rows, cond] : {std::pair{&pos, &positive}, std::pair{&neg, &negative}}) {
        add_concat(*rows, *cond, req.latent, mask, target.scale, target.row_begin, target.row_end, target.device);
      }
    }
    return mask;
  } catch (const c10::Error& e) {
    return Status::invalid_argument(std::string("inpainting: ") + e.what_without_backtrace());
  }
}

}  // namespace netdist::inpaint
