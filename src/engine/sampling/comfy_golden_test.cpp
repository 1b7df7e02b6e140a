// Differential tests against golden_comfy.json, written by tools/parity/sampling_golden.py from ComfyUI's
// own code. A missing file fails each test, naming it.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/sampling/brownian_tree.h"
#include "engine/sampling/samplers.h"
#include "engine/sampling/schedulers.h"
#include "netdist/source_dir.h"

namespace netdist::sampling {
namespace {

std::string golden_path() {
  const char* dir = std::getenv("NETDIST_TEST_DATA");
  return std::string(dir ? dir : NETDIST_SOURCE_DIR "/tests/data") + "/sampling/golden_comfy.json";
}

std::optional<nlohmann::json> load_golden() {
  const std::string path = golden_path();
  if (!std::filesystem::exists(path)) return std::nullopt;
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

at::Tensor golden_tensor(const std::vector<double>& values, at::IntArrayRef shape) {
  return at::tensor(values, at::kDouble).to(at::kFloat).reshape(shape);
}

// Reports the largest difference and how many elements differ at all, then checks a float32-level bound.
void expect_matches(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  double max_diff = (got - want).abs().max().item<double>();
  int64_t differing = (got != want).sum().item<int64_t>();
  EXPECT_LE(max_diff, 1e-5 * (1.0 + want.abs().max().item<double>()))
      << what << ": max |diff| " << max_diff << ", " << differing << " of " << got.numel() << " differ";
  if (differing != 0) {
    std::printf("[ note ] %s: %lld of %lld elements not bit-identical (max |diff| %.3g)\n", what.c_str(),
                static_cast<long long>(differing), static_cast<long long>(got.numel()), max_diff);
  }
}

TEST(SamplingGolden, NameListsMatchComfyUI) {
  std::optional<nlohmann::json> golden = load_golden();
  if (!golden) GTEST_FAIL() << golden_path() << " is missing (tools/parity/sampling_golden.py makes it)";
  EXPECT_EQ(scheduler_names(), (*golden)["scheduler_names"].get<std::vector<std::string>>());
  EXPECT_EQ(sampler_names(), (*golden)["sampler_names"].get<std::vector<std::string>>());
}

TEST(SamplingGolden, BrownianTreeNoiseMatchesTorchsde) {
  std::optional<nlohmann::json> golden = load_golden();
  if (!golden) GTEST_FAIL() << golden_path() << " is missing (tools/parity/sampling_golden.py makes it)";
  const nlohmann::json& b = (*golden)["brownian"];
  std::vector<int64_t> shape = b["shape"].get<std::vector<int64_t>>();
  at::Tensor sigmas = at::tensor(b["sigmas"].get<std::vector<double>>(), at::kDouble).to(at::kFloat);
  at::Tensor positive = sigmas.masked_select(sigmas > 0);
  BrownianTreeNoiseSampler sampler(positive.min(), sigmas.max(), b["seed"].get<uint64_t>(), shape, 0, shape[0],
                                   at::kFloat, at::kCPU);
  for (const auto& q : b["queries"]) {
    at::Tensor sigma = at::full({}, q["sigma"].get<double>(), at::kFloat);
    at::Tensor sigma_next = at::full({}, q["sigma_next"].get<double>(), at::kFloat);
    at::Tensor want = golden_tensor(q["values"].get<std::vector<double>>(), shape);
    expect_matches(sampler(sigma, sigma_next), want,
                   "brownian " + std::to_string(q["sigma"].get<double>()) + " -> " +
                       std::to_string(q["sigma_next"].get<double>()));
  }
}

TEST(SamplingGolden, ToyDenoiserRunsMatchComfyUI) {
  std::optional<nlohmann::json> golden = load_golden();
  if (!golden) GTEST_FAIL() << golden_path() << " is missing (tools/parity/sampling_golden.py makes it)";
  const nlohmann::json& toy = (*golden)["toy"];
  std::vector<int64_t> shape = toy["shape"].get<std::vector<int64_t>>();
  ModelSampling ms;
  at::Tensor x0 = at::randn(shape, at::detail::createCPUGenerator(toy["x_seed"].get<uint64_t>())) * ms.sigma_max();
  Denoiser denoiser = [](const at::Tensor& x, const at::Tensor& sigma) {
    return x / (at::pow(sigma.view({-1, 1, 1, 1}), 2) + 1);
  };
  for (const auto& r : toy["runs"]) {
    std::string name = r["sampler"];
    if (!is_supported_sampler(name)) continue;
    at::Tensor sigmas = at::tensor(r["sigmas"].get<std::vector<double>>(), at::kDouble).to(at::kFloat);
    NoiseSource noise(toy["seed"].get<uint64_t>());
    Result<at::Tensor> out = sample(name, denoiser, x0.clone(), sigmas, noise);
    ASSERT_TRUE(out.is_ok()) << name << ": " << out.status().to_string();
    expect_matches(*out, golden_tensor(r["values"].get<std::vector<double>>(), shape), name);
  }
}

}  // namespace
}  // namespace netdist::sampling
