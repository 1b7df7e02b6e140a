// The flow-matching model sampling (ModelSamplingDiscreteFlow / ModelSamplingFlux with CONST) and how the
// schedulers and samplers behave on it. Expected numbers are worked out by hand from ComfyUI's formulas
// (comfy/model_sampling.py, comfy/k_diffusion/sampling.py) in the comments; float32 tables are compared
// to within a few float32 ulps of the exact values.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "engine/sampling/model_sampling.h"
#include "engine/sampling/samplers.h"
#include "engine/sampling/schedulers.h"

namespace netdist::sampling {
namespace {

// time_snr_shift(3, x) = 3x / (1 + 2x).
double flow_sd3_sigma(double x) { return 3 * x / (1 + 2 * x); }

void expect_schedule(const at::Tensor& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.dim(), 1);
  ASSERT_EQ(got.size(0), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[static_cast<int64_t>(i)].item<double>(), want[i], tol) << "sigma " << i;
}

TEST(FlowModelSampling, DiscreteFlowTableIsTheShiftedLine) {
  ModelSampling ms = ModelSampling::discrete_flow(3.0);
  EXPECT_TRUE(ms.is_const());
  EXPECT_EQ(ms.schedule(), ScheduleKind::kDiscreteFlow);
  ASSERT_EQ(ms.num_timesteps(), 1000);
  EXPECT_EQ(ms.sigmas().scalar_type(), at::kFloat);
  // Entry i is σ at t = (i + 1)/1000: i = 0 → 0.003 / 1.002 = 0.00299401197…; i = 249 → 0.75 / 1.5 = 0.5;
  // i = 499 → 1.5 / 2 = 0.75; i = 749 → 2.25 / 2.5 = 0.9; i = 999 → 3 / 3 = 1.
  EXPECT_NEAR(ms.sigmas()[0].item<double>(), 0.0029940119760479044, 1e-9);
  EXPECT_NEAR(ms.sigmas()[249].item<double>(), 0.5, 1e-7);
  EXPECT_NEAR(ms.sigmas()[499].item<double>(), 0.75, 1e-7);
  EXPECT_NEAR(ms.sigmas()[749].item<double>(), 0.9, 1e-7);
  EXPECT_EQ(ms.sigma_max().item<float>(), 1.0f);
  for (int64_t i = 0; i < 1000; i += 111) {
    EXPECT_NEAR(ms.sigmas()[i].item<double>(), flow_sd3_sigma((i + 1) / 1000.0), 3e-7) << "index " << i;
  }
  // timestep(σ) = σ·1000 (a float, not a table index); σ(t) = time_snr_shift(3, t / 1000).
  EXPECT_FLOAT_EQ(ms.timestep(at::full({}, 0.75f)).item<float>(), 750.0f);
  EXPECT_EQ(ms.timestep(at::full({}, 0.75f)).scalar_type(), at::kFloat);
  EXPECT_NEAR(ms.sigma(at::full({}, 750.0f)).item<double>(), 0.9, 1e-7);
  EXPECT_NEAR(ms.sigma(at::full({}, 500.0f)).item<double>(), 0.75, 1e-7);
  EXPECT_TRUE(ms.is_max_denoise(at::tensor({1.0f, 0.5f, 0.0f})));
  EXPECT_FALSE(ms.is_max_denoise(at::tensor({0.9f, 0.0f})));
}

TEST(FlowModelSampling, ShiftOneIsTheIdentityAndAuraFlowUsesMultiplierOne) {
  // time_snr_shift(1, t) = t: the table is (i + 1)/1000.
  ModelSampling one = ModelSampling::discrete_flow(1.0);
  for (int64_t i = 0; i < 1000; i += 97) EXPECT_NEAR(one.sigmas()[i].item<double>(), (i + 1) / 1000.0, 1e-7);
  // AuraFlow: multiplier 1, so timestep(σ) = σ and the table is the same shifted line.
  ModelSampling aura = ModelSampling::discrete_flow(3.0, 1.0);
  EXPECT_FLOAT_EQ(aura.timestep(at::full({}, 0.25f)).item<float>(), 0.25f);
  EXPECT_NEAR(aura.sigmas()[499].item<double>(), 0.75, 1e-7);
}

TEST(FlowModelSampling, FluxTableIsTheTimeShiftedSigmoid) {
  ModelSampling ms = ModelSampling::flux(1.15);
  EXPECT_TRUE(ms.is_const());
  EXPECT_EQ(ms.schedule(), ScheduleKind::kFlux);
  ASSERT_EQ(ms.num_timesteps(), 10000);
  // σ(t) = e^1.15 / (e^1.15 + 1/t − 1), e^1.15 = 3.15819290…, at t = (i + 1)/10000:
  // i = 0 → 3.1582 / (3.1582 + 9999) = 3.15751146e-4; i = 2499 → 3.1582 / 6.1582 = 0.51284410;
  // i = 4999 → sigmoid(1.15) = 0.75951092; i = 9999 → 1.
  EXPECT_NEAR(ms.sigmas()[0].item<double>(), 3.157511457805717e-4, 1e-10);
  EXPECT_NEAR(ms.sigmas()[2499].item<double>(), 0.5128441015091338, 2e-7);
  EXPECT_NEAR(ms.sigmas()[4999].item<double>(), 0.7595109169491111, 2e-7);
  EXPECT_NEAR(ms.sigma_max().item<double>(), 1.0, 1e-7);
  // Flux's timestep is σ itself.
  EXPECT_FLOAT_EQ(ms.timestep(at::full({}, 0.3f)).item<float>(), 0.3f);
}

TEST(FlowModelSampling, ConstParameterisation) {
  ModelSampling ms = ModelSampling::discrete_flow(3.0);
  at::Tensor sigma = at::full({1}, 0.25f);
  at::Tensor x = at::full({1, 2, 2, 2}, 3.0f);
  at::Tensor out = at::full({1, 2, 2, 2}, 2.0f);
  // Input unscaled; x0 = x − out·σ = 3 − 0.5 = 2.5.
  EXPECT_TRUE(at::equal(ms.calculate_input(sigma, x), x));
  EXPECT_NEAR(ms.calculate_denoised(sigma, out, x).max().item<double>(), 2.5, 1e-7);
  // σ·noise + (1 − σ)·latent = 0.25·2 + 0.75·4 = 3.5 with or without max_denoise; un-noising 3.5 / 0.75.
  at::Tensor s0 = at::full({}, 0.25f);
  at::Tensor noised = ms.noise_scaling(s0, at::full({1, 1}, 2.0f), at::full({1, 1}, 4.0f), true);
  EXPECT_NEAR(noised.item<double>(), 3.5, 1e-7);
  EXPECT_TRUE(at::equal(noised, ms.noise_scaling(s0, at::full({1, 1}, 2.0f), at::full({1, 1}, 4.0f), false)));
  EXPECT_NEAR(ms.inverse_noise_scaling(s0, noised).item<double>(), 3.5 / 0.75, 1e-6);
  // X0 (ModelSamplingDiscrete "x0"): the model output is x0.
  ModelSampling x0(Prediction::kX0);
  EXPECT_TRUE(at::equal(x0.calculate_denoised(sigma, out, x), out));
  EXPECT_FALSE(x0.is_const());
}

TEST(FlowModelSampling, SchedulersOnTheFlowTable) {
  ModelSampling ms = ModelSampling::discrete_flow(3.0);
  // simple, 4 steps: ss = 1000/4 = 250, entries 999, 749, 499, 249 → 1, 0.9, 0.75, 0.5, then 0.
  expect_schedule(calculate_sigmas(ms, "simple", 4).value(), {1.0, 0.9, 0.75, 0.5, 0.0}, 2e-7);
  // sgm_uniform, 4 steps: timesteps linspace(1000, 2.99401198, 5)[:4] = 1000, 750.7485, 501.4970, 252.2455;
  // σ = 3x/(1+2x) at x = t/1000 → 1, 0.90035907, 0.75112108, 0.50298507, then 0.
  expect_schedule(calculate_sigmas(ms, "sgm_uniform", 4).value(),
                  {1.0, 0.900359066427289, 0.7511210762331838, 0.5029850746268658, 0.0}, 1e-6);
  // normal, 4 steps: σ(end) = 0.00893 is not ~0, so linspace(1000, 2.99401198, 4) = 1000, 667.6647, 335.3293,
  // 2.9940 → 1, 0.85769231, 0.60215054, 0.00892857, then 0.
  expect_schedule(calculate_sigmas(ms, "normal", 4).value(),
                  {1.0, 0.8576923076923075, 0.6021505376344084, 0.008928571428571713, 0.0}, 1e-6);
  // karras between float(σ_min) and float(σ_max) = 1.
  at::Tensor karras = calculate_sigmas(ms, "karras", 4).value();
  EXPECT_NEAR(karras[0].item<double>(), 1.0, 1e-7);
  EXPECT_NEAR(karras[3].item<double>(), ms.sigma_min().item<double>(), 1e-9);
  // KSampler's denoise: the last steps+1 sigmas of int(steps/denoise) = 8 simple steps (ss = 125):
  // entries 499, 374, 249, 124 → 0.75, 3·0.375/1.75 = 0.64285714, 0.5, 3·0.125/1.25 = 0.3, then 0.
  expect_schedule(make_sigmas("simple", ms, 4, 0.5, "euler").value(),
                  {0.75, 0.6428571428571429, 0.5, 0.3, 0.0}, 2e-7);
}

// A sampler run on CONST that records what the denoiser saw and the x each step starts from.
struct FlowRun {
  at::Tensor out;
  std::vector<double> sigmas_seen;
  std::vector<at::Tensor> xs;
};

FlowRun run_flow(const std::string& name, const ModelSampling* ms, const at::Tensor& sigmas, double target) {
  FlowRun r;
  Denoiser d = [&r, target](const at::Tensor& x, const at::Tensor& sigma) {
    r.sigmas_seen.push_back(sigma[0].item<double>());
    return at::full_like(x, target);
  };
  StepCallback cb = [&r](int, int, const at::Tensor& x, const at::Tensor&) {
    r.xs.push_back(x.clone());
    return true;
  };
  NoiseSource noise(11);
  Result<at::Tensor> out = sample(name, d, at::ones({1, 4, 2, 2}), sigmas, noise, cb, ms);
  EXPECT_TRUE(out.is_ok()) << name << ": " << out.status().to_string();
  if (out.is_ok()) r.out = *out;
  return r;
}

// The first per-step noise draw of NoiseSource(11) for a [1, 4, 2, 2] latent.
at::Tensor flow_first_noise() {
  NoiseSource noise(11);
  at::Tensor x = at::ones({1, 4, 2, 2});
  EXPECT_TRUE(noise.begin(x).is_ok());
  return noise.next();
}

TEST(FlowSamplers, AncestralSamplersTakeTheirRfBranches) {
  ModelSampling ms = ModelSampling::discrete_flow(3.0);
  const at::Tensor sigmas = at::tensor({1.0f, 0.5f, 0.0f});
  // Step 0 from x = 1 with x0 = 0.5, σ 1 → 0.5 (eta 1): downstep_ratio = 1 + (0.5 − 1) = 0.5, σ_down = 0.25,
  // α_{i+1} = 0.5, α_down = 0.75, renoise = sqrt(0.25 − 0.0625·0.25/0.5625) = sqrt(2/9) = 0.47140452;
  // x = 0.25·1 + 0.75·0.5 = 0.625, then (0.5/0.75)·0.625 + noise·0.4714 = 0.41666667 + 0.47140452·noise.
  // dpm_2_ancestral_RF reaches 0.625 by its midpoint step (σ_mid = 0.5, x_2 = 0.75) and dpmpp_2s_ancestral_RF
  // by σ_s = 0.9999 (σ_i = 1), both exact for a constant x0. The last step to σ = 0 lands on x0 = 0.5.
  const at::Tensor expected = flow_first_noise() * 0.4714045207910317 + 0.4166666666666667;
  for (const char* name : {"euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral"}) {
    SCOPED_TRACE(name);
    FlowRun rf = run_flow(name, &ms, sigmas, 0.5);
    ASSERT_EQ(rf.xs.size(), 2u);
    EXPECT_LT((rf.xs[1] - expected).abs().max().item<double>(), 1e-6);
    EXPECT_LT((rf.out - 0.5).abs().max().item<double>(), 1e-6);
    FlowRun eps = run_flow(name, nullptr, sigmas, 0.5);
    ASSERT_EQ(eps.xs.size(), 2u);
    EXPECT_GT((eps.xs[1] - expected).abs().max().item<double>(), 1e-3) << "the eps branch ran";
  }
  FlowRun two_s = run_flow("dpmpp_2s_ancestral", &ms, sigmas, 0.5);
  ASSERT_GE(two_s.sigmas_seen.size(), 2u);
  EXPECT_NEAR(two_s.sigmas_seen[1], 0.9999, 1e-7);
}

TEST(FlowSamplers, LcmRenoisesWithConstNoiseScaling) {
  ModelSampling ms = ModelSampling::discrete_flow(3.0);
  // Step 0: x = x0 = 0.5, then σ·noise + (1 − σ)·x = 0.5·noise + 0.25 at σ = 0.5; the eps form is
  // noise·σ + x = 0.5·noise + 0.5.
  FlowRun rf = run_flow("lcm", &ms, at::tensor({1.0f, 0.5f, 0.0f}), 0.5);
  ASSERT_EQ(rf.xs.size(), 2u);
  EXPECT_LT((rf.xs[1] - (flow_first_noise() * 0.5 + 0.25)).abs().max().item<double>(), 1e-6);
  FlowRun eps = run_flow("lcm", nullptr, at::tensor({1.0f, 0.5f, 0.0f}), 0.5);
  EXPECT_LT((eps.xs[1] - (flow_first_noise() * 0.5 + 0.5)).abs().max().item<double>(), 1e-6);
}

TEST(FlowSamplers, OtherSamplersAreTheSameArithmetic) {
  ModelSampling ms = ModelSampling::discrete_flow(3.0);
  const at::Tensor sigmas = calculate_sigmas(ms, "simple", 4).value();
  for (const char* name : {"euler", "heun", "dpmpp_2m", "dpmpp_2m_sde", "uni_pc"}) {
    FlowRun flow = run_flow(name, &ms, sigmas, 0.25);
    FlowRun plain = run_flow(name, nullptr, sigmas, 0.25);
    ASSERT_TRUE(flow.out.defined() && plain.out.defined()) << name;
    EXPECT_TRUE(at::equal(flow.out, plain.out)) << name;
  }
}

}  // namespace
}  // namespace netdist::sampling
