// Samplers: ComfyUI's k-diffusion samplers (comfy/k_diffusion/sampling.py) and UniPC
// (comfy/extra_samplers/uni_pc.py) as pure functions over a denoiser callback.
//
// Each sampler repeats ComfyUI's tensor arithmetic op for op, with the sigmas moved to x's device as 0-dim
// float32 tensors (as ComfyUI does), so on the same device, libtorch version and denoiser outputs the
// result is bit-identical. Parameters are ComfyUI's KSampler defaults (eta 1, s_noise 1, s_churn 0,
// dpmpp_2m_sde solver "midpoint", dpmpp_sde r = 1/2, lms order 4, uni_pc order min(3, steps − 1)).
// Thread-safety: sample() is reentrant; the NoiseSource and callbacks belong to one call.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <ATen/ATen.h>

#include "core/status.h"
#include "engine/sampling/model_sampling.h"
#include "engine/sampling/noise.h"

namespace netdist::sampling {

// x: [B, C, H, W] latent (any float dtype, any device); sigma: [B], x's dtype and device.
// Returns the x0 prediction (CFG and the model call live in the caller), same shape/dtype/device as x.
using Denoiser = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& sigma)>;

// Called once per step with ComfyUI's callback arguments: step in [0, total), x before the step's update
// (after it for uni_pc, as ComfyUI), the step's x0 prediction. Return false to interrupt.
using StepCallback = std::function<bool(int step, int total, const at::Tensor& x, const at::Tensor& denoised)>;

// ComfyUI SAMPLER_NAMES (KSAMPLER_NAMES + ddim, uni_pc, uni_pc_bh2), in its order (for /object_info).
const std::vector<std::string>& sampler_names();
// The subset of sampler_names() that sample() implements, in the same order.
const std::vector<std::string>& supported_sampler_names();
bool is_supported_sampler(std::string_view name);

// Runs sampler `name` from x (already noised: ModelSampling::noise_scaling(sigmas[0], noise, latent, ...))
// along sigmas (1-D, decreasing, usually ending in 0; from make_sigmas). An empty or single-sigma schedule
// returns x unchanged. Per-step noise comes from `noise` (NoiseSource::begin is called here).
// `model_sampling` (may be null: eps behaviour) is the model's: with a CONST (flow-matching) one, as ComfyUI's
// k-diffusion checks, euler_ancestral, dpm_2_ancestral and dpmpp_2s_ancestral run their _RF variants and lcm
// re-noises with its noise_scaling (σ·noise + (1 − σ)·x); every other sampler is the same arithmetic on σ.
// Errors: unknown or unimplemented sampler → invalid_argument / unsupported naming the valid ones;
// callback returned false → cancelled; a libtorch failure (e.g. in the denoiser) → internal.
Result<at::Tensor> sample(std::string_view name, const Denoiser& denoiser, at::Tensor x, at::Tensor sigmas,
                          NoiseSource& noise, const StepCallback& callback = {},
                          const ModelSampling* model_sampling = nullptr);

// k-diffusion linear_multistep_coeff(order, t, i, j): ∫ over [t[i], t[i+1]] of the j-th Lagrange basis
// polynomial through t[i], …, t[i−order+1]. Evaluated like ComfyUI under NumPy 2 (integrand in float32) with
// scipy.integrate.quad's first 21-point Gauss–Kronrod pass (exact for this cubic up to float32 rounding).
double linear_multistep_coeff(int order, const std::vector<float>& t, int i, int j);

}  // namespace netdist::sampling
