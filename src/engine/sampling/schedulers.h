// Sigma schedules (ComfyUI comfy/samplers.py SCHEDULER_HANDLERS, KSampler.set_steps).
//
// Every schedule is a float32 CPU tensor of decreasing sigmas ending in 0, normally of length n+1
// (ddim_uniform can be longer when 1000 is not a multiple of n, beta shorter when quantiles collide —
// exactly as in ComfyUI). Each function repeats ComfyUI's arithmetic: float32 tensor ops where ComfyUI uses
// tensors, float64 where it uses Python floats, so the values are bit-identical on the same libtorch/CPU.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <ATen/ATen.h>

#include "core/status.h"
#include "engine/sampling/model_sampling.h"

namespace netdist::sampling {

// ComfyUI SCHEDULER_NAMES, in its order (for /object_info).
const std::vector<std::string>& scheduler_names();

// ComfyUI KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS: dpm_2, dpm_2_ancestral, uni_pc, uni_pc_bh2.
bool discards_penultimate_sigma(std::string_view sampler_name);

// Individual schedules; n >= 1. sigma_min/sigma_max in sigma units (ComfyUI passes float(model σ)).
at::Tensor normal_schedule(const ModelSampling& ms, int n, bool sgm);  // "normal" / "sgm_uniform"
at::Tensor karras_schedule(int n, double sigma_min, double sigma_max, double rho = 7.0);
at::Tensor exponential_schedule(int n, double sigma_min, double sigma_max);
at::Tensor simple_schedule(const ModelSampling& ms, int n);
at::Tensor ddim_uniform_schedule(const ModelSampling& ms, int n);
at::Tensor beta_schedule(const ModelSampling& ms, int n, double alpha = 0.6, double beta = 0.6);
at::Tensor linear_quadratic_schedule(const ModelSampling& ms, int n, double threshold_noise = 0.025,
                                     int linear_steps = -1 /* n / 2 */);
at::Tensor kl_optimal_schedule(int n, double sigma_min, double sigma_max);

// The inverse CDF of Beta(alpha, beta) at p in [0, 1] (scipy.stats.beta.ppf), to ~1e-14.
double beta_ppf(double p, double alpha, double beta);

// ComfyUI calculate_sigmas(model_sampling, scheduler_name, steps). Unknown name → invalid_argument.
Result<at::Tensor> calculate_sigmas(const ModelSampling& ms, std::string_view scheduler_name, int steps);

// ComfyUI KSampler.set_steps + calculate_sigmas: denoise > 0.9999 → full schedule; denoise <= 0 → empty
// tensor; otherwise the last steps+1 sigmas of a schedule of int(steps/denoise) steps. Samplers in
// discards_penultimate_sigma() get a schedule of steps+1 with its penultimate sigma dropped.
// steps >= 1, else invalid_argument.
Result<at::Tensor> make_sigmas(std::string_view scheduler_name, const ModelSampling& ms, int steps, double denoise,
                               std::string_view sampler_name);

}  // namespace netdist::sampling
