// The discrete noise schedule of SD1.x/SD2.x/SDXL and the eps / v-prediction parameterisations
// (ComfyUI comfy/model_sampling.py: ModelSamplingDiscrete, EPS, V_PREDICTION).
//
// Numerics follow ComfyUI op for op: betas, alphas_cumprod and sigmas are computed in float64 on the CPU,
// then sigmas and log_sigmas are stored as float32 (log_sigmas = float32(log(float64 sigmas))).
// timestep()/sigma() run in float32 on the CPU. All functions taking tensors are device-agnostic; results
// land on the device of their tensor arguments.
// Thread-safety: immutable after construction; const methods may be called from any thread.
#pragma once

#include <ATen/ATen.h>

namespace netdist::sampling {

enum class Prediction { kEps, kVPrediction };

struct DiscreteScheduleConfig {
  double linear_start = 0.00085;
  double linear_end = 0.012;
  int timesteps = 1000;
  bool zero_terminal_snr = false;  // ComfyUI "zsnr": rescale so the last sigma is ~ 4500
};

class ModelSampling {
 public:
  explicit ModelSampling(Prediction prediction = Prediction::kEps, DiscreteScheduleConfig config = {});

  Prediction prediction() const { return prediction_; }
  // [timesteps] float64 CPU.
  const at::Tensor& alphas_cumprod() const { return alphas_cumprod_; }
  // [timesteps] float32 CPU, increasing: sigmas()[0] = sigma_min ≈ 0.0292, sigmas()[999] = sigma_max ≈ 14.6146.
  const at::Tensor& sigmas() const { return sigmas_; }
  // [timesteps] float32 CPU: float32(log(float64 sigma)).
  const at::Tensor& log_sigmas() const { return log_sigmas_; }
  // 0-dim float32 CPU tensors, as ComfyUI's sigma_min / sigma_max properties.
  at::Tensor sigma_min() const { return sigmas_[0]; }
  at::Tensor sigma_max() const { return sigmas_[-1]; }
  int64_t num_timesteps() const { return sigmas_.size(0); }

  // Index of the table sigma nearest in log space (first on ties): int64, same shape/device as sigma.
  at::Tensor timestep(const at::Tensor& sigma) const;
  // Log-linear interpolation of the table at (fractional) timesteps clamped to [0, timesteps-1]:
  // float32, same shape/device as timestep.
  at::Tensor sigma(const at::Tensor& timestep) const;

  // sigma: [B] (or 0-dim); x: [B, ...]. Model input x / sqrt(sigma² + 1).
  at::Tensor calculate_input(const at::Tensor& sigma, const at::Tensor& x) const;
  // Denoised x0 from the model output. eps: x − out·σ; v: x·1/(σ²+1) − out·σ/sqrt(σ²+1).
  at::Tensor calculate_denoised(const at::Tensor& sigma, const at::Tensor& model_output,
                                const at::Tensor& model_input) const;
  // Start latent for sampling: noise·σ + latent, or noise·sqrt(1+σ²) + latent when max_denoise
  // (ComfyUI KSAMPLER.sample passes max_denoise = is_max_denoise(sigmas)). sigma: 0-dim.
  at::Tensor noise_scaling(const at::Tensor& sigma, const at::Tensor& noise, const at::Tensor& latent,
                           bool max_denoise) const;
  // Identity for eps and v models.
  at::Tensor inverse_noise_scaling(const at::Tensor& sigma, const at::Tensor& latent) const;
  // KSAMPLER.max_denoise: sigmas[0] is within rel 1e-5 of sigma_max, or above it.
  bool is_max_denoise(const at::Tensor& sigmas) const;

 private:
  Prediction prediction_;
  at::Tensor alphas_cumprod_;
  at::Tensor sigmas_;
  at::Tensor log_sigmas_;
};

}  // namespace netdist::sampling
