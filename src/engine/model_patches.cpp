// ComfyUI's FreeU / FreeU_V2 (comfy_extras/nodes_freelunch.py) and RescaleCFG
// (comfy_extras/nodes_model_advanced.py), op for op.
#include "engine/model_patches.h"

#include <cmath>

#include "engine/model.h"

namespace netdist {

namespace patches {

namespace {

// Python's slice start/stop clamping for a[lo:hi] on a dimension of size n.
std::pair<int64_t, int64_t> patches_py_slice(int64_t lo, int64_t hi, int64_t n) {
  if (lo < 0) lo = std::max<int64_t>(0, lo + n);
  if (hi < 0) hi = std::max<int64_t>(0, hi + n);
  lo = std::min(lo, n);
  hi = std::min(hi, n);
  return {lo, std::max(lo, hi)};
}

}  // namespace

at::Tensor fourier_filter(const at::Tensor& x, int64_t threshold, double scale) {
  const std::vector<int64_t> last2 = {-2, -1};
  const at::IntArrayRef dims(last2);
  at::Tensor x_freq = at::fft_fftn(x.to(at::kFloat), c10::nullopt, dims);
  x_freq = at::fft_fftshift(x_freq, dims);
  const int64_t h = x_freq.size(2), w = x_freq.size(3);
  at::Tensor mask = at::ones(x_freq.sizes(), x.options().dtype(at::kFloat));
  const int64_t crow = h / 2, ccol = w / 2;
  const auto [r0, r1] = patches_py_slice(crow - threshold, crow + threshold, h);
  const auto [c0, c1] = patches_py_slice(ccol - threshold, ccol + threshold, w);
  if (r1 > r0 && c1 > c0) mask.narrow(2, r0, r1 - r0).narrow(3, c0, c1 - c0).fill_(scale);
  x_freq = x_freq * mask;
  x_freq = at::fft_ifftshift(x_freq, dims);
  at::Tensor filtered = at::real(at::fft_ifftn(x_freq, c10::nullopt, dims));
  return filtered.to(x.scalar_type());
}

void apply_freeu(const FreeUPatch& p, int64_t model_channels, at::Tensor& h, at::Tensor& hsp) {
  const int64_t channels = h.size(1);
  double b = 0, s = 0;
  if (channels == model_channels * 4) {
    b = p.b1;
    s = p.s1;
  } else if (channels == model_channels * 2) {
    b = p.b2;
    s = p.s2;
  } else {
    return;
  }
  at::Tensor half = h.narrow(1, 0, channels / 2);
  if (!p.v2) {
    half.copy_(half * b);
  } else {
    at::Tensor mean = h.mean(1).unsqueeze(1);
    const int64_t batch = mean.size(0);
    at::Tensor hmax = std::get<0>(at::max(mean.view({batch, -1}), -1, true));
    at::Tensor hmin = std::get<0>(at::min(mean.view({batch, -1}), -1, true));
    mean = (mean - hmin.unsqueeze(2).unsqueeze(3)) / (hmax - hmin).unsqueeze(2).unsqueeze(3);
    half.copy_(half * (mean * (b - 1) + 1));
  }
  hsp = fourier_filter(hsp, 1, s);
}

std::function<void(at::Tensor&, at::Tensor&)> output_block_hook(const ModelPatches& patches,
                                                                int64_t model_channels) {
  if (patches.output_block.empty()) return {};
  return [list = patches.output_block, model_channels](at::Tensor& h, at::Tensor& hsp) {
    for (const FreeUPatch& p : list) apply_freeu(p, model_channels, h, hsp);
  };
}

at::Tensor combine_cfg(const ModelPatches& patches, const at::Tensor& cond_pred,
                       const at::Tensor& uncond_pred, double cfg, const at::Tensor& x,
                       const at::Tensor& sigma_in) {
  if (!patches.rescale_cfg) return uncond_pred + (cond_pred - uncond_pred) * cfg;
  const double multiplier = *patches.rescale_cfg;
  // cfg_function's args: cond = x − cond_pred, uncond = x − uncond_pred; then rescale_cfg(args).
  const at::Tensor cond_arg = x - cond_pred, uncond_arg = x - uncond_pred;
  std::vector<int64_t> shape(static_cast<size_t>(cond_arg.dim()), 1);
  shape[0] = cond_arg.size(0);
  at::Tensor sigma_rows = sigma_in.reshape({-1});
  if (sigma_rows.size(0) != shape[0]) sigma_rows = sigma_rows.expand({shape[0]});  // one sigma for every row
  const at::Tensor sigma = sigma_rows.reshape(shape);
  const at::Tensor& x_orig = x;
  const at::Tensor xs = x_orig / (sigma * sigma + 1.0);
  const at::Tensor root = at::pow(at::pow(sigma, 2) + 1.0, 0.5);
  const at::Tensor cond = ((xs - (x_orig - cond_arg)) * root) / sigma;
  const at::Tensor uncond = ((xs - (x_orig - uncond_arg)) * root) / sigma;
  const at::Tensor x_cfg = uncond + (cond - uncond) * cfg;
  const std::vector<int64_t> dims = {1, 2, 3};
  const at::Tensor ro_pos = at::std(cond, at::IntArrayRef(dims), /*unbiased=*/true, /*keepdim=*/true);
  const at::Tensor ro_cfg = at::std(x_cfg, at::IntArrayRef(dims), /*unbiased=*/true, /*keepdim=*/true);
  const at::Tensor x_rescaled = x_cfg * (ro_pos / ro_cfg);
  const at::Tensor x_final = x_rescaled * multiplier + x_cfg * (1.0 - multiplier);
  const at::Tensor fn = x_orig - (xs - x_final * sigma / at::pow(sigma * sigma + 1.0, 0.5));
  return x - fn;
}

}  // namespace patches

Result<std::shared_ptr<Model>> with_model_patch(const std::shared_ptr<Model>& model,
                                                const ModelPatchSpec& spec) {
  if (!model) return Status::invalid_argument("model patch: no model");
  if (model->unet_.is_empty())
    return Status::invalid_argument("model patch: " + model->path_ + " has no diffusion model");
  for (double v : {spec.b1, spec.b2, spec.s1, spec.s2, spec.multiplier}) {
    if (!std::isfinite(v)) return Status::invalid_argument("model patch: parameters must be finite");
  }
  auto out = std::make_shared<Model>(*model);
  patches::ModelPatches next = model->patches_ ? *model->patches_ : patches::ModelPatches{};
  if (spec.kind == ModelPatchSpec::Kind::kRescaleCfg) {
    next.rescale_cfg = spec.multiplier;
  } else {
    next.output_block.push_back(
        {spec.kind == ModelPatchSpec::Kind::kFreeUV2, spec.b1, spec.b2, spec.s1, spec.s2});
  }
  out->patches_ = std::make_shared<const patches::ModelPatches>(std::move(next));
  return out;
}

}  // namespace netdist
