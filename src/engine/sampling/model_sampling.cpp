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

// comfy.model_sampling.time_snr_shift: alpha·t / (1 + (alpha − 1)·t), t itself when alpha == 1.
at::Tensor flow_time_snr_shift(double alpha, const at::Tensor& t) {
  if (alpha == 1.0) return t;
  return t * alpha / ((t * (alpha - 1)) + 1);
}

// comfy.model_sampling.flux_time_shift(mu, 1.0, t): math.exp(mu) / (math.exp(mu) + (1 / t − 1) ** 1.0), with
// Python's scalar / tensor = reciprocal(tensor) · scalar.
at::Tensor flow_flux_time_shift(double mu, const at::Tensor& t) {
  const double e = std::exp(mu);
  at::Tensor inner = at::pow(t.reciprocal() * 1 - 1, 1.0);
  return (inner + e).reciprocal() * e;
}

}  // namespace

ModelSampling::ModelSampling(ScheduleKind schedule, double shift, double multiplier, int timesteps)
    : prediction_(Prediction::kConst), schedule_(schedule), shift_(shift), multiplier_(multiplier) {
  ND_ASSERT(timesteps >= 1, "flow schedule needs at least 1 timestep");
  // torch.arange(1, T + 1, 1) / T: int64 true division → float32.
  at::Tensor t = at::arange(1, timesteps + 1, 1, at::TensorOptions().dtype(at::kLong)) / timesteps;
  if (schedule == ScheduleKind::kDiscreteFlow) t = t * multiplier;
  sigmas_ = sigma(t).to(at::kFloat);
  log_sigmas_ = sigmas_.log();
}

ModelSampling ModelSampling::discrete_flow(double shift, double multiplier, int timesteps) {
  return ModelSampling(ScheduleKind::kDiscreteFlow, shift, multiplier, timesteps);
}

ModelSampling ModelSampling::flux(double shift, int timesteps) {
  return ModelSampling(ScheduleKind::kFlux, shift, 1.0, timesteps);
}

ModelSampling::ModelSampling(Prediction prediction, DiscreteScheduleConfig config) : prediction_(prediction) {
  ND_ASSERT(config.timesteps >= 2, "discrete schedule needs at least 2 timesteps");
  ND_ASSERT(prediction != Prediction::kConst, "CONST needs a flow schedule");
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
  if (schedule_ == ScheduleKind::kDiscreteFlow) return sigma * multiplier_;
  if (schedule_ == ScheduleKind::kFlux) return sigma;
  at::Tensor log_sigma = sigma.log();
  at::Tensor dists = log_sigma.to(log_sigmas_.device()) - log_sigmas_.unsqueeze(1);
  return dists.abs().argmin(0).view(sigma.sizes()).to(sigma.device());
}

at::Tensor ModelSampling::sigma(const at::Tensor& timestep) const {
  if (schedule_ == ScheduleKind::kDiscreteFlow) return flow_time_snr_shift(shift_, timestep / multiplier_);
  if (schedule_ == ScheduleKind::kFlux) return flow_flux_time_shift(shift_, timestep);
  at::Tensor t = at::clamp(timestep.to(at::kFloat).to(log_sigmas_.device()), 0, num_timesteps() - 1);
  at::Tensor low_idx = t.floor().to(at::kLong);
  at::Tensor high_idx = t.ceil().to(at::kLong);
  at::Tensor w = t.frac();
  at::Tensor log_sigma = (1 - w) * log_sigmas_.index({low_idx}) + w * log_sigmas_.index({high_idx});
  return log_sigma.exp().to(timestep.device());
}

at::Tensor ModelSampling::calculate_input(const at::Tensor& sigma, const at::Tensor& x) const {
  if (prediction_ == Prediction::kConst) return x;
  at::Tensor s = view_as_batch(sigma, x.dim());
  return x / at::pow(at::pow(s, 2) + 1.0, 0.5);
}

at::Tensor ModelSampling::calculate_denoised(const at::Tensor& sigma, const at::Tensor& model_output,
                                             const at::Tensor& model_input) const {
  at::Tensor s = view_as_batch(sigma, model_output.dim());
  if (prediction_ == Prediction::kX0) return model_output;
  if (prediction_ == Prediction::kEps || prediction_ == Prediction::kConst) return model_input - model_output * s;
  return model_input * 1.0 / (at::pow(s, 2) + 1.0) - model_output * s * 1.0 / at::pow(at::pow(s, 2) + 1.0, 0.5);
}

at::Tensor ModelSampling::noise_scaling(const at::Tensor& sigma, const at::Tensor& noise, const at::Tensor& latent,
                                        bool max_denoise) const {
  if (prediction_ == Prediction::kConst) return sigma * noise + (1.0 - sigma) * latent;
  at::Tensor out = max_denoise ? noise * at::sqrt(at::pow(sigma, 2.0) + 1.0) : noise * sigma;
  out += latent;
  return out;
}

at::Tensor ModelSampling::inverse_noise_scaling(const at::Tensor& sigma, const at::Tensor& latent) const {
  if (prediction_ == Prediction::kConst) return latent / (1.0 - sigma);
  return latent;
}

bool ModelSampling::is_max_denoise(const at::Tensor& sigmas) const {
  double max_sigma = sigma_max().item<double>();
  double sigma = sigmas[0].item<double>();
  bool close = std::fabs(max_sigma - sigma) <= 1e-05 * std::max(std::fabs(max_sigma), std::fabs(sigma));
  return close || sigma > max_sigma;
}

}  // namespace netdist::sampling
