// Internal to engine/sampling: the state shared by one sample() call and the sampler entry points.
#pragma once

#include <memory>

#include <ATen/ATen.h>

#include "core/status.h"
#include "engine/sampling/brownian_tree.h"
#include "engine/sampling/model_sampling.h"
#include "engine/sampling/noise.h"
#include "engine/sampling/samplers.h"

namespace netdist::sampling::detail {

class SamplerRun {
 public:
  SamplerRun(const Denoiser& denoiser, const StepCallback& callback, NoiseSource& noise, const at::Tensor& x,
             const ModelSampling* model_sampling = nullptr)
      : denoiser_(denoiser),
        callback_(callback),
        noise_(noise),
        s_in_(at::ones({x.size(0)}, x.options())),
        model_sampling_(model_sampling) {}

  // The model sampling is CONST (flow matching): ComfyUI's samplers take their _RF branches.
  bool is_const() const { return model_sampling_ != nullptr && model_sampling_->is_const(); }

  // model(x, sigma * s_in): sigma is a 0-dim tensor on x's device.
  at::Tensor model(const at::Tensor& x, const at::Tensor& sigma) const { return denoiser_(x, sigma * s_in_); }
  // model(x, t) for a [B] sigma already expanded (UniPC).
  at::Tensor model_batched(const at::Tensor& x, const at::Tensor& sigma) const { return denoiser_(x, sigma); }

  // The step callback; cancelled when it asks to stop.
  Status report(int step, int total, const at::Tensor& x, const at::Tensor& denoised) const;

  // default_noise_sampler(x, seed)(σ, σ').
  at::Tensor default_noise() { return noise_.next(); }

  // BrownianTreeNoiseSampler(x, σ_min>0, σ_max, seed, cpu = !on_device); fails if no sigma is positive.
  Result<std::unique_ptr<BrownianTreeNoiseSampler>> brownian(const at::Tensor& sigmas, bool on_device) const;

 private:
  const Denoiser& denoiser_;
  const StepCallback& callback_;
  NoiseSource& noise_;
  at::Tensor s_in_;
  const ModelSampling* model_sampling_;
};

using SamplerFn = Result<at::Tensor> (*)(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);

// k-diffusion to_d and get_ancestral_step (eta as a Python float, sigma_up returned as a tensor).
at::Tensor to_d(const at::Tensor& x, const at::Tensor& sigma, const at::Tensor& denoised);
struct AncestralStep {
  at::Tensor sigma_down;
  at::Tensor sigma_up;
};
AncestralStep get_ancestral_step(const at::Tensor& sigma_from, const at::Tensor& sigma_to, double eta = 1.0);
bool is_true(const at::Tensor& condition);

// samplers.cpp
Result<at::Tensor> sample_euler(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);
Result<at::Tensor> sample_euler_ancestral(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);
Result<at::Tensor> sample_heun(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);
Result<at::Tensor> sample_dpm_2(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);
Result<at::Tensor> sample_dpm_2_ancestral(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);
Result<at::Tensor> sample_lms(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);
Result<at::Tensor> sample_lcm(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);
Result<at::Tensor> sample_ddpm(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);

// samplers_rf.cpp: the CONST (rectified-flow) variants ComfyUI switches to (sample_*_RF), eta = s_noise = 1.
Result<at::Tensor> sample_euler_ancestral_rf(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);
Result<at::Tensor> sample_dpm_2_ancestral_rf(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);
Result<at::Tensor> sample_dpmpp_2s_ancestral_rf(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);

// samplers_dpmpp.cpp
Result<at::Tensor> sample_dpmpp_2s_ancestral(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);
Result<at::Tensor> sample_dpmpp_sde(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);
Result<at::Tensor> sample_dpmpp_sde_gpu(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);
Result<at::Tensor> sample_dpmpp_2m(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);
Result<at::Tensor> sample_dpmpp_2m_sde(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);
Result<at::Tensor> sample_dpmpp_2m_sde_gpu(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);
Result<at::Tensor> sample_dpmpp_3m_sde(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);
Result<at::Tensor> sample_dpmpp_3m_sde_gpu(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);

// uni_pc.cpp
Result<at::Tensor> sample_uni_pc(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);
Result<at::Tensor> sample_uni_pc_bh2(SamplerRun& run, at::Tensor x, const at::Tensor& sigmas);

}  // namespace netdist::sampling::detail
