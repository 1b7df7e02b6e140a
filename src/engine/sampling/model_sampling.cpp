#include "engine/sampling/model_sampling.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/status.h"

namespace netdist::sampling {
namespace {

at::Tensor rescale_zero_terminal_snr(const at::Tensor& sigmas) {
  at::Tensor alphas_cumprod = at::reciprocal(sigmas * sigmas + 1);
  at::Tensor alphas_bar_sqrt = alphas_cumprod.sqrt();
  at::Tensor first = alphas_bar_sqrt[0].clone();
  at::Tensor last = alphas_bar_sqrt[-1].clone();
  alphas_bar_sqrt.sub_(last);
  alphas_bar_sqrt.mul_(first / (first - last));
  at::Tensor alphas_bar = at::pow(alphas_bar_sqrt, 2);
  alphas_bar[-1].fill_(4.8973451890853435e-08);
  return at::pow((1 - alphas_bar) / alphas_bar, 0.5);
}

at::Tensor view_as_batch(const at::Tensor& sigma, int64_t ndim) {
  std::vector<int64_t> shape(static_cast<size_t>(ndim), 1);
  shape[0] = sigma.dim() == 0 ? 1 : sigma.size(0);
  return sigma.reshape(shape);
}

}  // namespace

ModelSampling::ModelSampling(Prediction prediction, DiscreteScheduleConfig config) : prediction_(prediction) {
  ND_ASSERT(config.timesteps >= 2, "discrete schedule needs at least 2 timesteps");
  at::TensorOptions f64 = at::TensorOptions().dtype(at::kDouble);
  at::Tensor betas = at::pow(
      at::linspace(std::pow(config.linear_start, 0.5), std::pow(config.linear_end, 0.5), config.timesteps, f64), 2);
  at::Tensor alphas = 1. - betas;
  alphas_cumprod_ = at::cumprod(alphas, 0);
  at::Tensor sigmas = at::pow((1 - alphas_cumprod_) / alphas_cumprod_, 0.5);
  if (config.zero_terminal_snr) sigmas = rescale_zero_terminal_snr(sigmas);
  sigmas_ = sigmas.to(at::kFloat);
  log_sigmas_ = sigmas.log().to(at::kFloat);
}

at::Tensor ModelSampling::timestep(const at::Tensor& sigma) const {
  at::Tensor log_sigma = sigma.log();
  at::Tensor dists = log_sigma.to(log_sigmas_.device()) - log_sigmas_.unsqueeze(1);
  return dists.abs().argmin(0).view(sigma.sizes()).to(sigma.device());
}

at::Tensor ModelSampling::sigma(const at::Tensor& timestep) const {
  at::Tensor t = at::clamp(timestep.to(at::kFloat).to(log_sigmas_.device()), 0, num_timesteps() - 1);
  at::Tensor low_idx = t.floor().to(at::kLong);
  at::Tensor high_idx = t.ceil().to(at::kLong);
  at::Tensor w = t.frac();
  at::Tensor log_sigma = (1 - w) * log_sigmas_.index({low_idx}) + w * log_sigmas_.index({high_idx});
  return log_sigma.exp().to(timestep.device());
}

at::Tensor ModelSampling::calculate_input(const at::Tensor& sigma, const at::Tensor& x) const {
  at::Tensor s = view_as_batch(sigma, x.dim());
  return x / at::pow(at::pow(s, 2) + 1.0, 0.5);
}

at::Tensor ModelSampling::calculate_denoised(const at::Tensor& sigma, const at::Tensor& model_output,
                                             const at::Tensor& model_input) const {
  at::Tensor s = view_as_batch(sigma, model_output.dim());
  if (prediction_ == Prediction::kEps) return model_input - model_output * s;
  return model_input * 1.0 / (at::pow(s, 2) + 1.0) - model_output * s * 1.0 / at::pow(at::pow(s, 2) + 1.0, 0.5);
}

at::Tensor ModelSampling::noise_scaling(const at::Tensor& sigma, const at::Tensor& noise, const at::Tensor& latent,
                                        bool max_denoise) const {
  at::Tensor out = max_denoise ? noise * at::sqrt(at::pow(sigma, 2.0) + 1.0) : noise * sigma;
  out += latent;
  return out;
}

at::Tensor ModelSampling::inverse_noise_scaling(const at::Tensor& sigma, const at::Tensor& latent) const {
  return latent;
}

bool ModelSampling::is_max_denoise(const at::Tensor& sigmas) const {
  double max_sigma = sigma_max().item<double>();
  double sigma = sigmas[0].item<double>();
  bool close = std::fabs(max_sigma - sigma) <= 1e-05 * std::max(std::fabs(max_sigma), std::fabs(sigma));
  return close || sigma > max_sigma;
}

}  // namespace netdist::sampling
