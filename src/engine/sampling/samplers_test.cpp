#include "engine/sampling/samplers.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/sampling/model_sampling.h"
#include "engine/sampling/schedulers.h"
#include "netdist/source_dir.h"

namespace netdist::sampling {
namespace {

template <typename T>
T must(Result<T> result) {
  EXPECT_TRUE(result.is_ok()) << result.status().to_string();
  return std::move(result).value();
}

Denoiser constant_denoiser(at::Tensor target) {
  return [target](const at::Tensor& x, const at::Tensor& sigma) { return target.expand_as(x).clone(); };
}

Denoiser scaled_denoiser(double c) {
  return [c](const at::Tensor& x, const at::Tensor& sigma) { return x * c; };
}

at::Tensor karras_sigmas(int n) {
  ModelSampling ms;
  return must(calculate_sigmas(ms, "karras", n));
}

at::Tensor geometric_sigmas(double from, double to, int n) {
  return at::exp(at::linspace(std::log(from), std::log(to), n + 1, at::kDouble)).to(at::kFloat);
}

at::Tensor run(const std::string& name, const Denoiser& d, const at::Tensor& x, const at::Tensor& sigmas,
               uint64_t seed = 1) {
  NoiseSource noise(seed);
  Result<at::Tensor> out = sample(name, d, x, sigmas, noise);
  EXPECT_TRUE(out.is_ok()) << name << ": " << out.status().to_string();
  return out.is_ok() ? *out : at::Tensor();
}

TEST(Samplers, NamesMatchComfyUI) {
  const std::vector<std::string>& names = sampler_names();
  ASSERT_EQ(names.size(), 31u);
  EXPECT_EQ(names.front(), "euler");
  EXPECT_EQ(names[names.size() - 3], "ddim");
  EXPECT_EQ(names.back(), "uni_pc_bh2");
  for (const char* required : {"euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2m",
                               "dpmpp_2m_sde", "dpmpp_sde", "dpmpp_2s_ancestral", "lcm", "ddim", "uni_pc",
                               "uni_pc_bh2"}) {
    EXPECT_TRUE(is_supported_sampler(required)) << required;
  }
  for (const std::string& name : supported_sampler_names()) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  }
}

TEST(Samplers, UnknownAndUnimplementedNamesAreErrors) {
  NoiseSource noise(1);
  at::Tensor x = at::ones({1, 4, 2, 2});
  Result<at::Tensor> unknown = sample("eulr", scaled_denoiser(0), x, karras_sigmas(3), noise);
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("'eulr'"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("dpmpp_2m_sde"), std::string::npos);
  Result<at::Tensor> unimplemented = sample("euler_cfg_pp", scaled_denoiser(0), x, karras_sigmas(3), noise);
  ASSERT_FALSE(unimplemented.is_ok());
  EXPECT_EQ(unimplemented.status().code(), StatusCode::kUnsupported);
  Result<at::Tensor> bad_sigmas = sample("euler", scaled_denoiser(0), x, at::ones({2, 2}), noise);
  EXPECT_EQ(bad_sigmas.status().code(), StatusCode::kInvalidArgument);
}

TEST(Samplers, EmptyScheduleReturnsInput) {
  at::Tensor x = at::randn({1, 4, 2, 2});
  EXPECT_TRUE(at::equal(run("euler", scaled_denoiser(0), x, at::empty({0})), x));
  EXPECT_TRUE(at::equal(run("dpmpp_2m_sde", scaled_denoiser(0), x, at::ones({1})), x));
}

TEST(Samplers, EulerWithZeroDenoiserScalesBySigmaRatio) {
  at::Tensor x = at::randn({2, 4, 3, 3}, at::detail::createCPUGenerator(3));
  at::Tensor sigmas = at::tensor({10.0f, 5.0f, 2.0f, 1.0f});
  at::Tensor out = run("euler", scaled_denoiser(0), x, sigmas);
  EXPECT_LT((out - x * 0.1).abs().max().item<double>(), 1e-6);
  EXPECT_LT(run("euler", scaled_denoiser(0), x, karras_sigmas(5)).abs().max().item<double>(), 1e-8);
}

TEST(Samplers, HeunIsSecondOrderOnALinearOde) {
  // D = c·x gives dx/dσ = (1 − c)·x/σ, so x(σ) = x0·(σ/σ0)^(1−c).
  double c = 0.5;
  at::Tensor x = at::full({1, 1, 1, 1}, 1.0);
  at::Tensor sigmas = geometric_sigmas(10.0, 0.1, 20);
  double exact = std::pow(0.1 / 10.0, 1 - c);
  double euler_error = std::fabs(run("euler", scaled_denoiser(c), x, sigmas).item<double>() - exact);
  double heun_error = std::fabs(run("heun", scaled_denoiser(c), x, sigmas).item<double>() - exact);
  double dpm2_error = std::fabs(run("dpm_2", scaled_denoiser(c), x, sigmas).item<double>() - exact);
  double lms_error = std::fabs(run("lms", scaled_denoiser(c), x, sigmas).item<double>() - exact);
  EXPECT_LT(heun_error * 5, euler_error);
  EXPECT_LT(dpm2_error * 10, euler_error);
  EXPECT_LT(lms_error * 3, euler_error);
  double fine_error =
      std::fabs(run("heun", scaled_denoiser(c), x, geometric_sigmas(10.0, 0.1, 40)).item<double>() - exact);
  EXPECT_LT(fine_error * 3, heun_error);
}

TEST(Samplers, DpmSolverIsExactForConstantDenoiser) {
  // With D ≡ a the ODE solution is x = a + (x0 − a)·σ/σ0; DPM-Solver++ integrates it exactly.
  at::Tensor a = at::full({1, 1, 1, 1}, 0.25);
  at::Tensor x = at::full({1, 1, 1, 1}, 3.0);
  at::Tensor sigmas = geometric_sigmas(8.0, 0.5, 6);
  double exact = 0.25 + (3.0 - 0.25) * 0.5 / 8.0;
  for (const char* name : {"euler", "dpmpp_2m", "heun", "dpm_2", "lms", "uni_pc", "uni_pc_bh2"}) {
    double got = run(name, constant_denoiser(a), x, sigmas).item<double>();
    EXPECT_NEAR(got, exact, 2e-4 * std::fabs(exact)) << name;
  }
}

TEST(Samplers, EverySamplerReachesAConstantTarget) {
  at::Tensor target = at::randn({2, 4, 4, 4}, at::detail::createCPUGenerator(9));
  at::Tensor x = at::randn({2, 4, 4, 4}, at::detail::createCPUGenerator(10)) * 14.6146;
  for (const std::string& name : supported_sampler_names()) {
    ModelSampling ms;
    at::Tensor s = must(make_sigmas("karras", ms, 12, 1.0, name));
    at::Tensor out = run(name, constant_denoiser(target), x, s);
    ASSERT_TRUE(out.defined()) << name;
    EXPECT_TRUE(at::isfinite(out).all().item<bool>()) << name;
    // UniPC stops at sigma 0.001 instead of 0 (as ComfyUI), leaving (x − target)·0.001/σ0.
    double tolerance = name.rfind("uni_pc", 0) == 0 ? 1e-2 : 2e-3;
    EXPECT_LT((out - target).abs().max().item<double>(), tolerance) << name;
  }
}

TEST(Samplers, StochasticSamplersAreDeterministicPerSeed) {
  at::Tensor x = at::randn({2, 4, 4, 4}, at::detail::createCPUGenerator(4)) * 14.6;
  at::Tensor sigmas = karras_sigmas(6);
  for (const char* name : {"euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde",
                           "dpmpp_3m_sde", "lcm", "ddpm", "dpmpp_sde_gpu", "dpmpp_2m_sde_gpu"}) {
    at::Tensor a = run(name, scaled_denoiser(0.3), x, sigmas, 42);
    at::Tensor b = run(name, scaled_denoiser(0.3), x, sigmas, 42);
    at::Tensor c = run(name, scaled_denoiser(0.3), x, sigmas, 43);
    EXPECT_TRUE(at::equal(a, b)) << name;
    EXPECT_FALSE(at::equal(a, c)) << name;
  }
}

TEST(Samplers, SplitBatchEqualsUnsplit) {
  at::Tensor x = at::randn({4, 4, 8, 8}, at::detail::createCPUGenerator(12)) * 14.6;
  at::Tensor sigmas = karras_sigmas(5);
  for (const char* name : {"euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde",
                           "dpmpp_3m_sde", "lcm", "ddpm", "euler", "uni_pc"}) {
    at::Tensor whole = run(name, scaled_denoiser(0.3), x, sigmas, 7);
    NoiseSource shard_noise(7, 4, 1);
    Result<at::Tensor> shard = sample(name, scaled_denoiser(0.3), x.slice(0, 1, 3), sigmas, shard_noise);
    ASSERT_TRUE(shard.is_ok()) << name << ": " << shard.status().to_string();
    EXPECT_TRUE(at::equal(*shard, whole.slice(0, 1, 3))) << name;
  }
}

TEST(Samplers, CallbackSeesEveryStepAndCanInterrupt) {
  at::Tensor x = at::randn({1, 4, 4, 4});
  at::Tensor sigmas = karras_sigmas(8);
  for (const char* name : {"euler", "dpmpp_2m", "uni_pc", "dpmpp_sde", "lms"}) {
    std::vector<int> seen;
    NoiseSource noise(1);
    StepCallback record = [&](int step, int total, const at::Tensor& xs, const at::Tensor& denoised) {
      EXPECT_EQ(total, 8);
      EXPECT_EQ(denoised.sizes(), xs.sizes());
      seen.push_back(step);
      return true;
    };
    ASSERT_TRUE(sample(name, scaled_denoiser(0.5), x, sigmas, noise, record).is_ok()) << name;
    EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7})) << name;

    int calls = 0;
    StepCallback stop = [&](int step, int, const at::Tensor&, const at::Tensor&) { return ++calls < 3; };
    Result<at::Tensor> interrupted = sample(name, scaled_denoiser(0.5), x, sigmas, noise, stop);
    ASSERT_FALSE(interrupted.is_ok()) << name;
    EXPECT_EQ(interrupted.status().code(), StatusCode::kCancelled) << name;
    EXPECT_EQ(calls, 3) << name;
  }
}

TEST(Samplers, DenoiserFailureBecomesInternalError) {
  NoiseSource noise(1);
  Denoiser broken = [](const at::Tensor& x, const at::Tensor&) { return at::matmul(x, at::ones({7, 7})); };
  Result<at::Tensor> out = sample("euler", broken, at::ones({1, 4, 2, 2}), karras_sigmas(3), noise);
  ASSERT_FALSE(out.is_ok());
  EXPECT_EQ(out.status().code(), StatusCode::kInternal);
}

TEST(Samplers, LinearMultistepCoefficientsIntegrateLagrangeBasis) {
  const char* dir = std::getenv("NETDIST_TEST_DATA");
  std::ifstream in(std::string(dir ? dir : NETDIST_SOURCE_DIR "/tests/data") + "/sampling/sigmas_reference.json");
  ASSERT_TRUE(in.good());
  nlohmann::json ref = nlohmann::json::parse(in);
  std::vector<float> t = ref["lms_sigmas"].get<std::vector<float>>();
  std::vector<std::vector<double>> coeffs = ref["lms_coeffs"].get<std::vector<std::vector<double>>>();
  for (size_t i = 0; i < coeffs.size(); ++i) {
    for (size_t j = 0; j < coeffs[i].size(); ++j) {
      double got = linear_multistep_coeff(static_cast<int>(coeffs[i].size()), t, static_cast<int>(i),
                                          static_cast<int>(j));
      EXPECT_NEAR(got, coeffs[i][j], 1e-5 * std::fabs(coeffs[i][j]) + 1e-7) << "i " << i << " j " << j;
    }
  }
  EXPECT_NEAR(linear_multistep_coeff(1, {2.0f, 1.0f}, 0, 0), -1.0, 1e-15);
}

}  // namespace
}  // namespace netdist::sampling
