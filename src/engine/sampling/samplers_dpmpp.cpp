// DPM-Solver++ family (k-diffusion sample_dpmpp_*), transcribed op for op from ComfyUI.
#include <memory>

#include "engine/sampling/sampler_run.h"

namespace netdist::sampling::detail {
namespace {

constexpr double kEta = 1.0;
constexpr double kSNoiseDpmpp = 1.0;

at::Tensor sigma_fn(const at::Tensor& t) { return t.neg().exp(); }
at::Tensor t_fn(const at::Tensor& sigma) { return sigma.log().neg(); }

Result<at::Tensor> dpmpp_sde(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas, bool tree_on_device) {
  constexpr double r = 1.0 / 2;
  if (sigmas.size(0) <= 1) return x;
  ND_ASSIGN_OR_RETURN(std::unique_ptr<BrownianTreeNoiseSampler> noise_sampler, run.brownian(sigmas, tree_on_device));
  int total = static_cast<int>(sigmas.size(0)) - 1;
  for (int i = 0; i < total; ++i) {
    at::Tensor denoised = run.model(x, sigmas[i]);
    ND_RETURN_IF_ERROR(run.report(i, total, x, denoised));
    if (is_true(sigmas[i + 1] == 0)) {
      at::Tensor d = to_d(x, sigmas[i], denoised);
      at::Tensor dt = sigmas[i + 1] - sigmas[i];
      x = x + d * dt;
    } else {
      at::Tensor t = t_fn(sigmas[i]);
      at::Tensor t_next = t_fn(sigmas[i + 1]);
      at::Tensor h = t_next - t;
      at::Tensor s = t + h * r;
      double fac = 1 / (2 * r);

      AncestralStep step = get_ancestral_step(sigma_fn(t), sigma_fn(s), kEta);
      at::Tensor s_ = t_fn(step.sigma_down);
      at::Tensor x_2 = (sigma_fn(s_) / sigma_fn(t)) * x - (t - s_).expm1() * denoised;
      x_2 = x_2 + (*noise_sampler)(sigma_fn(t), sigma_fn(s)) * kSNoiseDpmpp * step.sigma_up;
      at::Tensor denoised_2 = run.model(x_2, sigma_fn(s));

      step = get_ancestral_step(sigma_fn(t), sigma_fn(t_next), kEta);
      at::Tensor t_next_ = t_fn(step.sigma_down);
      at::Tensor denoised_d = denoised * (1 - fac) + denoised_2 * fac;
      x = (sigma_fn(t_next_) / sigma_fn(t)) * x - (t - t_next_).expm1() * denoised_d;
      x = x + (*noise_sampler)(sigma_fn(t), sigma_fn(t_next)) * kSNoiseDpmpp * step.sigma_up;
    }
  }
  return x;
}

Result<at::Tensor> dpmpp_2m_sde(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas, bool tree_on_device) {
  if (sigmas.size(0) <= 1) return x;
  ND_ASSIGN_OR_RETURN(std::unique_ptr<BrownianTreeNoiseSampler> noise_sampler, run.brownian(sigmas, tree_on_device));
  at::Tensor old_denoised;
  at::Tensor h_last;
  at::Tensor h;
  int total = static_cast<int>(sigmas.size(0)) - 1;
  for (int i = 0; i < total; ++i) {
    at::Tensor denoised = run.model(x, sigmas[i]);
    ND_RETURN_IF_ERROR(run.report(i, total, x, denoised));
    if (is_true(sigmas[i + 1] == 0)) {
      x = denoised;
    } else {
      at::Tensor t = sigmas[i].log().neg();
      at::Tensor s = sigmas[i + 1].log().neg();
      h = s - t;
      at::Tensor eta_h = h * kEta;
      x = sigmas[i + 1] / sigmas[i] * (eta_h.neg()).exp() * x + (h.neg() - eta_h).expm1().neg() * denoised;
      if (old_denoised.defined()) {
        at::Tensor r = h_last / h;
        x = x + (h.neg() - eta_h).expm1().neg() * 0.5 * (at::reciprocal(r) * 1) * (denoised - old_denoised);
      }
      x = x + (*noise_sampler)(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (eta_h * -2).expm1().neg().sqrt() *
                  kSNoiseDpmpp;
    }
    old_denoised = denoised;
    h_last = h;
  }
  return x;
}

Result<at::Tensor> dpmpp_3m_sde(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas, bool tree_on_device) {
  if (sigmas.size(0) <= 1) return x;
  ND_ASSIGN_OR_RETURN(std::unique_ptr<BrownianTreeNoiseSampler> noise_sampler, run.brownian(sigmas, tree_on_device));
  at::Tensor denoised_1;
  at::Tensor denoised_2;
  at::Tensor h;
  at::Tensor h_1;
  at::Tensor h_2;
  int total = static_cast<int>(sigmas.size(0)) - 1;
  for (int i = 0; i < total; ++i) {
    at::Tensor denoised = run.model(x, sigmas[i]);
    ND_RETURN_IF_ERROR(run.report(i, total, x, denoised));
    if (is_true(sigmas[i + 1] == 0)) {
      x = denoised;
    } else {
      at::Tensor t = sigmas[i].log().neg();
      at::Tensor s = sigmas[i + 1].log().neg();
      h = s - t;
      at::Tensor h_eta = h * (kEta + 1);
      x = at::exp(h_eta.neg()) * x + h_eta.neg().expm1().neg() * denoised;
      if (h_2.defined()) {
        at::Tensor r0 = h_1 / h;
        at::Tensor r1 = h_2 / h;
        at::Tensor d1_0 = (denoised - denoised_1) / r0;
        at::Tensor d1_1 = (denoised_1 - denoised_2) / r1;
        at::Tensor d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1);
        at::Tensor d2 = (d1_0 - d1_1) / (r0 + r1);
        at::Tensor phi_2 = h_eta.neg().expm1() / h_eta + 1;
        at::Tensor phi_3 = phi_2 / h_eta - 0.5;
        x = x + phi_2 * d1 - phi_3 * d2;
      } else if (h_1.defined()) {
        at::Tensor r = h_1 / h;
        at::Tensor d = (denoised - denoised_1) / r;
        at::Tensor phi_2 = h_eta.neg().expm1() / h_eta + 1;
        x = x + phi_2 * d;
      }
      x = x + (*noise_sampler)(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] *
                  (h * -2 * kEta).expm1().neg().sqrt() * kSNoiseDpmpp;
    }
    denoised_2 = denoised_1;
    denoised_1 = denoised;
    h_2 = h_1;
    h_1 = h;
  }
  return x;
}

}  // namespace

Result<at::Tensor> sample_dpmpp_2s_ancestral(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  if (run.is_const()) return sample_dpmpp_2s_ancestral_rf(run, std::move(x), sigmas);
  int total = static_cast<int>(sigmas.size(0)) - 1;
  for (int i = 0; i < total; ++i) {
    at::Tensor denoised = run.model(x, sigmas[i]);
    AncestralStep step = get_ancestral_step(sigmas[i], sigmas[i + 1], kEta);
    ND_RETURN_IF_ERROR(run.report(i, total, x, denoised));
    if (is_true(step.sigma_down == 0)) {
      at::Tensor d = to_d(x, sigmas[i], denoised);
      at::Tensor dt = step.sigma_down - sigmas[i];
      x = x + d * dt;
    } else {
      at::Tensor t = t_fn(sigmas[i]);
      at::Tensor t_next = t_fn(step.sigma_down);
      constexpr double r = 1.0 / 2;
      at::Tensor h = t_next - t;
      at::Tensor s = t + h * r;
      at::Tensor x_2 = (sigma_fn(s) / sigma_fn(t)) * x - (h.neg() * r).expm1() * denoised;
      at::Tensor denoised_2 = run.model(x_2, sigma_fn(s));
      x = (sigma_fn(t_next) / sigma_fn(t)) * x - h.neg().expm1() * denoised_2;
    }
    if (is_true(sigmas[i + 1] > 0)) x = x + run.default_noise() * kSNoiseDpmpp * step.sigma_up;
  }
  return x;
}

Result<at::Tensor> sample_dpmpp_sde(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  return dpmpp_sde(run, std::move(x), sigmas, false);
}

Result<at::Tensor> sample_dpmpp_sde_gpu(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  return dpmpp_sde(run, std::move(x), sigmas, true);
}

Result<at::Tensor> sample_dpmpp_2m(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  at::Tensor old_denoised;
  int total = static_cast<int>(sigmas.size(0)) - 1;
  for (int i = 0; i < total; ++i) {
    at::Tensor denoised = run.model(x, sigmas[i]);
    ND_RETURN_IF_ERROR(run.report(i, total, x, denoised));
    at::Tensor t = t_fn(sigmas[i]);
    at::Tensor t_next = t_fn(sigmas[i + 1]);
    at::Tensor h = t_next - t;
    if (!old_denoised.defined() || is_true(sigmas[i + 1] == 0)) {
      x = (sigma_fn(t_next) / sigma_fn(t)) * x - h.neg().expm1() * denoised;
    } else {
      at::Tensor h_last = t - t_fn(sigmas[i - 1]);
      at::Tensor r = h_last / h;
      at::Tensor denoised_d =
          (at::reciprocal(r * 2) * 1 + 1) * denoised - (at::reciprocal(r * 2) * 1) * old_denoised;
      x = (sigma_fn(t_next) / sigma_fn(t)) * x - h.neg().expm1() * denoised_d;
    }
    old_denoised = denoised;
  }
  return x;
}

Result<at::Tensor> sample_dpmpp_2m_sde(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  return dpmpp_2m_sde(run, std::move(x), sigmas, false);
}

Result<at::Tensor> sample_dpmpp_2m_sde_gpu(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  return dpmpp_2m_sde(run, std::move(x), sigmas, true);
}

Result<at::Tensor> sample_dpmpp_3m_sde(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  return dpmpp_3m_sde(run, std::move(x), sigmas, false);
}

Result<at::Tensor> sample_dpmpp_3m_sde_gpu(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas) {
  return dpmpp_3m_sde(run, std::move(x), sigmas, true);
}

}  // namespace netdist::sampling::detail
