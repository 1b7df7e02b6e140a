#include "engine/sampling/model_sampling.h"
#include "netdist/source_dir.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace netdist::sampling {
namespace {

nlohmann::json load_reference() {
  const char* dir = std::getenv("NETDIST_TEST_DATA");
  std::string path = std::string(dir ? dir : NETDIST_SOURCE_DIR "/tests/data") + "/sampling/sigmas_reference.json";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return nlohmann::json::parse(in);
}

TEST(ModelSampling, SigmaTableMatchesClosedForm) {
  ModelSampling ms;
  nlohmann::json ref = load_reference();
  ASSERT_EQ(ms.sigmas().size(0), 1000);
  EXPECT_EQ(ms.sigmas().scalar_type(), at::kFloat);
  EXPECT_NEAR(ms.sigma_min().item<double>(), 0.0292, 1e-4);
  EXPECT_NEAR(ms.sigma_max().item<double>(), 14.6146, 1e-4);
  EXPECT_NEAR(ms.sigma_min().item<double>(), ref["sigma_min"].get<double>(), 1e-7 * 0.03);
  EXPECT_NEAR(ms.sigma_max().item<double>(), ref["sigma_max"].get<double>(), 1e-6 * 14.6);
  std::vector<double> every = ref["sigma_table_every_37"].get<std::vector<double>>();
  size_t k = 0;
  for (int64_t i = 0; i < 1000; i += 37, ++k) {
    EXPECT_NEAR(ms.sigmas()[i].item<double>(), every[k], 2e-7 * every[k]) << "index " << i;
  }
  EXPECT_NEAR(ms.sigmas()[999].item<double>(), every.back(), 2e-7 * every.back());
  at::Tensor expected_log = ms.sigmas().to(at::kDouble).log();
  EXPECT_LT((ms.log_sigmas().to(at::kDouble) - expected_log).abs().max().item<double>(), 1e-6);
}

TEST(ModelSampling, TimestepIsNearestInLogSpace) {
  ModelSampling ms;
  EXPECT_EQ(ms.timestep(ms.sigma_max()).item<int64_t>(), 999);
  EXPECT_EQ(ms.timestep(ms.sigma_min()).item<int64_t>(), 0);
  at::Tensor sigmas = ms.sigmas().index({at::tensor({0, 17, 500, 998}, at::kLong)});
  at::Tensor t = ms.timestep(sigmas);
  EXPECT_EQ(t.sizes(), sigmas.sizes());
  EXPECT_TRUE(at::equal(t, at::tensor({0, 17, 500, 998}, at::kLong)));
  at::Tensor between = (ms.sigmas()[100] * 0.9 + ms.sigmas()[101] * 0.1).reshape({1});
  EXPECT_EQ(ms.timestep(between).item<int64_t>(), 100);
  EXPECT_EQ(ms.timestep(at::full({}, 1e3)).item<int64_t>(), 999);
}

TEST(ModelSampling, SigmaInterpolatesInLogSpace) {
  ModelSampling ms;
  // exp(float32(log σ)) may be an ulp off the float32 σ table entry, as in ComfyUI.
  EXPECT_NEAR(ms.sigma(at::full({}, 999.0)).item<double>(), ms.sigmas()[999].item<double>(), 2e-6);
  EXPECT_NEAR(ms.sigma(at::full({}, 0.0)).item<double>(), ms.sigmas()[0].item<double>(), 1e-8);
  EXPECT_EQ(ms.sigma(at::full({}, 1500.0)).item<float>(), ms.sigma(at::full({}, 999.0)).item<float>());
  EXPECT_EQ(ms.sigma(at::full({}, 999.0)).item<float>(), ms.log_sigmas()[999].exp().item<float>());
  double lo = ms.sigmas()[400].item<double>();
  double hi = ms.sigmas()[401].item<double>();
  EXPECT_NEAR(ms.sigma(at::full({}, 400.5)).item<double>(), std::sqrt(lo * hi), 1e-6 * hi);
  at::Tensor t = at::tensor({3.0, 250.25, 998.0});
  EXPECT_EQ(ms.sigma(t).sizes(), t.sizes());
}

TEST(ModelSampling, EpsParameterisation) {
  ModelSampling ms(Prediction::kEps);
  at::Tensor x = at::full({2, 1, 2, 2}, 3.0);
  at::Tensor sigma = at::tensor({1.0f, 2.0f});
  at::Tensor in = ms.calculate_input(sigma, x);
  EXPECT_NEAR(in[0].max().item<double>(), 3.0 / std::sqrt(2.0), 1e-6);
  EXPECT_NEAR(in[1].max().item<double>(), 3.0 / std::sqrt(5.0), 1e-6);
  at::Tensor out = at::full({2, 1, 2, 2}, 0.5);
  at::Tensor den = ms.calculate_denoised(sigma, out, x);
  EXPECT_NEAR(den[0].max().item<double>(), 3.0 - 0.5, 1e-6);
  EXPECT_NEAR(den[1].max().item<double>(), 3.0 - 1.0, 1e-6);
}

TEST(ModelSampling, VPredictionParameterisation) {
  ModelSampling ms(Prediction::kVPrediction);
  at::Tensor x = at::full({1, 1, 1, 1}, 3.0);
  at::Tensor sigma = at::tensor({2.0f});
  at::Tensor out = at::full({1, 1, 1, 1}, 0.5);
  double expected = 3.0 / 5.0 - 0.5 * 2.0 / std::sqrt(5.0);
  EXPECT_NEAR(ms.calculate_denoised(sigma, out, x).item<double>(), expected, 1e-6);
}

TEST(ModelSampling, NoiseScaling) {
  ModelSampling ms;
  at::Tensor noise = at::full({1, 4, 2, 2}, 2.0);
  at::Tensor latent = at::full({1, 4, 2, 2}, 1.0);
  at::Tensor sigma = at::full({}, 3.0f);
  EXPECT_NEAR(ms.noise_scaling(sigma, noise, latent, false).max().item<double>(), 7.0, 1e-6);
  EXPECT_NEAR(ms.noise_scaling(sigma, noise, latent, true).max().item<double>(), 2.0 * std::sqrt(10.0) + 1.0, 1e-5);
  EXPECT_TRUE(at::equal(ms.inverse_noise_scaling(sigma, latent), latent));
  EXPECT_TRUE(ms.is_max_denoise(at::stack({ms.sigma_max(), at::zeros({})})));
  EXPECT_TRUE(ms.is_max_denoise(at::tensor({20.0f, 0.0f})));
  EXPECT_FALSE(ms.is_max_denoise(at::tensor({14.5f, 0.0f})));
}

TEST(ModelSampling, ZeroTerminalSnrEndsHigh) {
  DiscreteScheduleConfig config;
  config.zero_terminal_snr = true;
  ModelSampling ms(Prediction::kVPrediction, config);
  EXPECT_GT(ms.sigma_max().item<double>(), 4000.0);
  EXPECT_NEAR(ms.sigma_min().item<double>(), 0.0292, 1e-3);
}

}  // namespace
}  // namespace netdist::sampling
