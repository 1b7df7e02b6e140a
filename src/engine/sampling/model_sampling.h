// The noise schedule and parameterisation a model samples with (ComfyUI comfy/model_sampling.py and
// comfy_extras/nodes_model_advanced.py):
//   - the discrete schedule of SD1.x/SD2.x/SDXL (ModelSamplingDiscrete) with eps, v-prediction or x0
//     (nodes_model_advanced.X0: the model output is the x0 prediction);
//   - the discrete flow-matching schedule of SD3/SD3.5/AuraFlow (ModelSamplingDiscreteFlow: σ(t) =
//     time_snr_shift(shift, t / multiplier), timestep(σ) = σ·multiplier, table σ(i·multiplier/T) for i = 1..T)
//     and Flux's (ModelSamplingFlux: σ(t) = flux_time_shift(shift, 1, t) = e^shift / (e^shift + (1/t − 1)),
//     timestep(σ) = σ, table of T = 10000), both with the CONST (rectified-flow) parameterisation:
//     input x unscaled, x0 = x − out·σ, noising σ·noise + (1 − σ)·latent, un-noising latent / (1 − σ).
// Samplers that ComfyUI special-cases for CONST (euler_ancestral, dpm_2_ancestral, dpmpp_2s_ancestral → their
// _RF variants; lcm's re-noising) ask is_const() / noise_scaling() (samplers.h).
//
// Numerics follow ComfyUI op for op: betas, alphas_cumprod and sigmas are computed in float64 on the CPU,
// then sigmas and log_sigmas are stored as float32 (log_sigmas = float32(log(float64 sigmas))). The flow tables
// are float32 from the start (torch.arange(1, T+1) / T, as ComfyUI's set_parameters), with ComfyUI's tensor ops
// (Python `a / tensor` is reciprocal(tensor)·a). timestep()/sigma() run in float32 on the CPU. All functions taking tensors are device-agnostic; results
// land on the device of their tensor arguments.
// Thread-safety: immutable after construction; const methods may be called from any thread.
#pragma once

#include <ATen/ATen.h>

namespace netdist::sampling {

// kConst: flow matching (ComfyUI CONST); only the flow schedules use it.
enum class Prediction { kEps, kVPrediction, kX0, kConst };

enum class ScheduleKind { kDiscrete, kDiscreteFlow, kFlux };

struct DiscreteScheduleConfig {
  double linear_start = 0.00085;
  double linear_end = 0.012;
  int timesteps = 1000;
  bool zero_terminal_snr = false;  // ComfyUI "zsnr": rescale so the last sigma is ~ 4500
};

class ModelSampling {
 public:
  // The discrete schedule; prediction kEps, kVPrediction or kX0 (kConst is refused by assertion).
  explicit ModelSampling(Prediction prediction = Prediction::kEps, DiscreteScheduleConfig config = {});
  // ModelSamplingSD3 (shift, multiplier 1000) / ModelSamplingAuraFlow (multiplier 1): CONST. timesteps >= 1.
  static ModelSampling discrete_flow(double shift, double multiplier = 1000.0, int timesteps = 1000);
  // ModelSamplingFlux(shift): CONST. timesteps >= 1.
  static ModelSampling flux(double shift, int timesteps = 10000);

  Prediction prediction() const { return prediction_; }
  ScheduleKind schedule() const { return schedule_; }
  bool is_const() const { return prediction_ == Prediction::kConst; }
  double shift() const { return shift_; }            // flow schedules
  double multiplier() const { return multiplier_; }  // kDiscreteFlow
  // [timesteps] float64 CPU; undefined for the flow schedules.
  const at::Tensor& alphas_cumprod() const { return alphas_cumprod_; }
  // [timesteps] float32 CPU, increasing: sigmas()[0] = sigma_min ≈ 0.0292, sigmas()[999] = sigma_max ≈ 14.6146
  // (discrete); σ(1/T·multiplier) … σ(multiplier) = 1 (flow).
  const at::Tensor& sigmas() const { return sigmas_; }
  // [timesteps] float32 CPU: float32(log(float64 sigma)); float32(log(σ)) for the flow schedules.
  const at::Tensor& log_sigmas() const { return log_sigmas_; }
  // 0-dim float32 CPU tensors, as ComfyUI's sigma_min / sigma_max properties.
  at::Tensor sigma_min() const { return sigmas_[0]; }
  at::Tensor sigma_max() const { return sigmas_[-1]; }
  int64_t num_timesteps() const { return sigmas_.size(0); }

  // Discrete: index of the table sigma nearest in log space (first on ties), int64. Flow: σ·multiplier; Flux: σ.
  // Same shape/device as sigma.
  at::Tensor timestep(const at::Tensor& sigma) const;
  // Discrete: log-linear interpolation of the table at (fractional) timesteps clamped to [0, timesteps-1],
  // float32. Flow / Flux: the shift formula above, in timestep's dtype. Same shape/device as timestep.
  at::Tensor sigma(const at::Tensor& timestep) const;

  // sigma: [B] (or 0-dim); x: [B, ...]. Model input x / sqrt(sigma² + 1); x itself for CONST.
  at::Tensor calculate_input(const at::Tensor& sigma, const at::Tensor& x) const;
  // Denoised x0 from the model output. eps and CONST: x − out·σ; v: x·1/(σ²+1) − out·σ/sqrt(σ²+1); x0: out.
  at::Tensor calculate_denoised(const at::Tensor& sigma, const at::Tensor& model_output,
                                const at::Tensor& model_input) const;
  // Start latent for sampling: noise·σ + latent, or noise·sqrt(1+σ²) + latent when max_denoise
  // (ComfyUI KSAMPLER.sample passes max_denoise = is_max_denoise(sigmas)); CONST: σ·noise + (1 − σ)·latent
  // whatever max_denoise. sigma: 0-dim.
  at::Tensor noise_scaling(const at::Tensor& sigma, const at::Tensor& noise, const at::Tensor& latent,
                           bool max_denoise) const;
  // Identity for eps, v and x0 models; latent / (1 − σ) for CONST.
  at::Tensor inverse_noise_scaling(const at::Tensor& sigma, const at::Tensor& latent) const;
  // KSAMPLER.max_denoise: sigmas[0] is within rel 1e-5 of sigma_max, or above it.
  bool is_max_denoise(const at::Tensor& sigmas) const;

 private:
  ModelSampling(ScheduleKind schedule, double shift, double multiplier, int timesteps);

  Prediction prediction_;
  ScheduleKind schedule_ = ScheduleKind::kDiscrete;
  double shift_ = 1.0;
  double multiplier_ = 1000.0;
  at::Tensor alphas_cumprod_;
  at::Tensor sigmas_;
  at::Tensor log_sigmas_;
};

}  // namespace netdist::sampling
