// The rectified-flow (CONST model sampling) variants of ComfyUI's ancestral samplers
// (comfy/k_diffusion/sampling.py: sample_euler_ancestral_RF, sample_dpm_2_ancestral_RF,
// sample_dpmpp_2s_ancestral_RF), op for op, with eta = s_noise = 1 (KSampler's defaults).
#include "engine/sampling/sampler_run.h"

namespace netdist::sampling::detail {
namespace {

constexpr double kRfEta = 1.0;
constexpr double kRfSNoise = 1.0;

// The quantities every _RF step computes from σ_i and σ_{i+1}.
struct RfStep {
  at::Tensor sigma_down;
  at::Tensor alpha_ip1;
  at::Tensor alpha_down;
  at::Tensor renoise_coeff;
};

RfStep rf_step(const at::Tensor& sigma, const at::Tensor& sigma_next) {
  RfStep s;
  at::Tensor downstep_ratio = (sigma_next / sigma - 1) * kRfEta + 1;
  s.sigma_down = sigma_next * downstep_ratio;
  s.alpha_ip1 = 1 - sigma_next;
  s.alpha_down = 1 - s.sigma_down;
  s.renoise_coeff = at::pow(
      at::pow(sigma_next, 2) - at::pow(s.sigma_down, 2) * at::pow(s.alpha_ip1, 2) / at::pow(s.alpha_down, 2),
      0.5);
  return s;
}

// x = (α_{i+1} / α_down)·x + noise·s_noise·renoise_coeff.
at::Tensor rf_renoise(SamplerRun& run, const RfStep& s, const at::Tensor& x) {
  return (s.alpha_ip1 / s.alpha_down) * x + run.default_noise() * kRfSNoise * s.renoise_coeff;
}

}  // namespace

Result<at::Tensor> sample_euler_ancestral_rf(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  int total = static_cast<int>(sigmas.size(0)) - 1;
  for (int i = 0; i < total; ++i) {
    at::Tensor denoised = run.model(x, sigmas[i]);
    ND_RETURN_IF_ERROR(run.report(i, total, x, denoised));
    if (is_true(sigmas[i + 1] == 0)) {
      x = denoised;
      continue;
    }
    RfStep s = rf_step(sigmas[i], sigmas[i + 1]);
    at::Tensor sigma_down_i_ratio = s.sigma_down / sigmas[i];
    x = sigma_down_i_ratio * x + (1 - sigma_down_i_ratio) * denoised;
    x = rf_renoise(run, s, x);
  }
  return x;
}

Result<at::Tensor> sample_dpm_2_ancestral_rf(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  int total = static_cast<int>(sigmas.size(0)) - 1;
  for (int i = 0; i < total; ++i) {
    at::Tensor denoised = run.model(x, sigmas[i]);
    RfStep s = rf_step(sigmas[i], sigmas[i + 1]);
    ND_RETURN_IF_ERROR(run.report(i, total, x, denoised));
    at::Tensor d = to_d(x, sigmas[i], denoised);
    if (is_true(s.sigma_down == 0)) {
      at::Tensor dt = s.sigma_down - sigmas[i];
      x = x + d * dt;
    } else {
      at::Tensor sigma_mid = sigmas[i].log().lerp(s.sigma_down.log(), 0.5).exp();
      at::Tensor dt_1 = sigma_mid - sigmas[i];
      at::Tensor dt_2 = s.sigma_down - sigmas[i];
      at::Tensor x_2 = x + d * dt_1;
      at::Tensor denoised_2 = run.model(x_2, sigma_mid);
      at::Tensor d_2 = to_d(x_2, sigma_mid, denoised_2);
      x = x + d_2 * dt_2;
      x = rf_renoise(run, s, x);
    }
  }
  return x;
}

Result<at::Tensor> sample_dpmpp_2s_ancestral_rf(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  // sigma_fn(λ) = (e^λ + 1)^−1, lambda_fn(σ) = log((1 − σ) / σ).
  auto sigma_fn = [](const at::Tensor& lbda) { return at::pow(lbda.exp() + 1, -1); };
  auto lambda_fn = [](const at::Tensor& sigma) { return ((1 - sigma) / sigma).log(); };
  int total = static_cast<int>(sigmas.size(0)) - 1;
  for (int i = 0; i < total; ++i) {
    at::Tensor denoised = run.model(x, sigmas[i]);
    RfStep s = rf_step(sigmas[i], sigmas[i + 1]);
    ND_RETURN_IF_ERROR(run.report(i, total, x, denoised));
    if (is_true(sigmas[i + 1] == 0)) {
      at::Tensor d = to_d(x, sigmas[i], denoised);
      at::Tensor dt = s.sigma_down - sigmas[i];
      x = x + d * dt;
    } else {
      at::Tensor sigma_s;
      at::Tensor sigma_s_i_ratio;
      if (is_true(sigmas[i] == 1.0)) {
        // ComfyUI's Python float 0.9999: 0.9999 / σ_i is reciprocal(σ_i)·0.9999, the model gets 0.9999·s_in.
        sigma_s = at::full_like(sigmas[i], 0.9999);
        sigma_s_i_ratio = sigmas[i].reciprocal() * 0.9999;
      } else {
        at::Tensor t_i = lambda_fn(sigmas[i]);
        at::Tensor t_down = lambda_fn(s.sigma_down);
        constexpr double r = 1.0 / 2;
        at::Tensor h = t_down - t_i;
        sigma_s = sigma_fn(t_i + h * r);
        sigma_s_i_ratio = sigma_s / sigmas[i];
      }
      at::Tensor u = sigma_s_i_ratio * x + (1 - sigma_s_i_ratio) * denoised;
      at::Tensor d_i = run.model(u, sigma_s);
      at::Tensor sigma_down_i_ratio = s.sigma_down / sigmas[i];
      x = sigma_down_i_ratio * x + (1 - sigma_down_i_ratio) * d_i;
    }
    if (is_true(sigmas[i + 1] > 0) && kRfEta > 0) x = rf_renoise(run, s, x);
  }
  return x;
}

}  // namespace netdist::sampling::detail
