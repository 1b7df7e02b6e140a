// Differential tests of the flow-matching model sampling against golden_flow.json, written by
// tools/parity/flow_golden.py from ComfyUI's own code. Part of netdist_parity_tests: tests/parity/
// run_gpu_parity.sh's goldens step makes the file under NETDIST_TEST_DATA and runs these; a missing file
// fails each test, naming it.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/sampling/model_sampling.h"
#include "engine/sampling/samplers.h"
#include "engine/sampling/schedulers.h"
#include "netdist/source_dir.h"

namespace netdist::sampling {
namespace {

std::string flow_golden_path() {
  const char* dir = std::getenv("NETDIST_TEST_DATA");
  return std::string(dir ? dir : NETDIST_SOURCE_DIR "/tests/data") + "/sampling/golden_flow.json";
}

std::optional<nlohmann::json> flow_golden() {
  const std::string path = flow_golden_path();
  if (!std::filesystem::exists(path)) return std::nullopt;
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

at::Tensor flow_golden_tensor(const nlohmann::json& values) {
  return at::tensor(values.get<std::vector<double>>(), at::kDouble).to(at::kFloat);
}

// A float32-level bound; prints how many elements are not bit-identical.
void flow_expect_matches(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  if (got.numel() == 0) return;
  const double max_diff = (got - want).abs().max().item<double>();
  const int64_t differing = (got != want).sum().item<int64_t>();
  EXPECT_LE(max_diff, 1e-5 * (1.0 + want.abs().max().item<double>()))
      << what << ": max |diff| " << max_diff << ", " << differing << " of " << got.numel() << " differ";
  if (differing != 0) {
    std::printf("[ note ] %s: %lld of %lld elements not bit-identical (max |diff| %.3g)\n", what.c_str(),
                static_cast<long long>(differing), static_cast<long long>(got.numel()), max_diff);
  }
}

#define FLOW_GOLDEN_OR_FAIL(name)                     \
  std::optional<nlohmann::json> name = flow_golden(); \
  if (!name) GTEST_FAIL() << flow_golden_path() << " is missing (tools/parity/flow_golden.py makes it)"

TEST(FlowGolden, SigmaTablesMatchComfyUI) {
  FLOW_GOLDEN_OR_FAIL(golden);
  for (const auto& t : (*golden)["tables"]) {
    const double shift = t["shift"].get<double>();
    ModelSampling ms = t["kind"] == "flux"
                           ? ModelSampling::flux(shift)
                           : ModelSampling::discrete_flow(shift, t["multiplier"].get<double>());
    const int64_t every = t["every"].get<int64_t>();
    at::Tensor got = ms.sigmas();
    if (every > 1) got = at::cat({got.slice(0, 0, got.size(0), every), got.slice(0, -1)});
    flow_expect_matches(got, flow_golden_tensor(t["sigmas"]),
                        t["kind"].get<std::string>() + " shift " + std::to_string(shift));
  }
}

TEST(FlowGolden, SchedulesMatchComfyUI) {
  FLOW_GOLDEN_OR_FAIL(golden);
  ModelSampling ms = ModelSampling::discrete_flow(3.0);
  for (const auto& c : (*golden)["schedules"]) {
    const std::string what = c["scheduler"].get<std::string>() + "/" + c["sampler"].get<std::string>() + " " +
                             std::to_string(c["steps"].get<int>()) + " steps, denoise " +
                             std::to_string(c["denoise"].get<double>());
    Result<at::Tensor> got = make_sigmas(c["scheduler"].get<std::string>(), ms, c["steps"].get<int>(),
                                         c["denoise"].get<double>(), c["sampler"].get<std::string>());
    ASSERT_TRUE(got.is_ok()) << what << ": " << got.status().to_string();
    flow_expect_matches(*got, flow_golden_tensor(c["sigmas"]), what);
  }
}

TEST(FlowGolden, ConstParameterisationMatchesComfyUI) {
  FLOW_GOLDEN_OR_FAIL(golden);
  const nlohmann::json& c = (*golden)["const"];
  std::vector<int64_t> shape = c["shape"].get<std::vector<int64_t>>();
  at::Generator gen = at::detail::createCPUGenerator(c["x_seed"].get<uint64_t>());
  at::Tensor noise = at::randn(shape, gen);
  at::Tensor latent = at::randn(shape, gen);
  ModelSampling ms = ModelSampling::discrete_flow(3.0);
  at::Tensor sigma = at::full({}, c["sigma"].get<double>(), at::kFloat);
  at::Tensor noised = ms.noise_scaling(sigma, noise, latent, true);
  flow_expect_matches(noised, flow_golden_tensor(c["noised"]).reshape(shape), "noise_scaling");
  flow_expect_matches(ms.inverse_noise_scaling(sigma, noised),
                      flow_golden_tensor(c["inverse"]).reshape(shape), "inverse_noise_scaling");
  flow_expect_matches(ms.calculate_denoised(sigma.view({1}).expand({shape[0]}), noise, latent),
                      flow_golden_tensor(c["denoised"]).reshape(shape), "calculate_denoised");
}

TEST(FlowGolden, ToyDenoiserRunsMatchComfyUI) {
  FLOW_GOLDEN_OR_FAIL(golden);
  const nlohmann::json& toy = (*golden)["toy"];
  std::vector<int64_t> shape = toy["shape"].get<std::vector<int64_t>>();
  ModelSampling ms = ModelSampling::discrete_flow(3.0);
  at::Tensor x0 = at::randn(shape, at::detail::createCPUGenerator(toy["x_seed"].get<uint64_t>()));
  Denoiser denoiser = [](const at::Tensor& x, const at::Tensor& sigma) {
    at::Tensor s = sigma.view({-1, 1, 1, 1});
    return x * (1 - s) / (at::pow(s, 2) + 1);
  };
  int ran = 0;
  for (const auto& r : toy["runs"]) {
    const std::string name = r["sampler"];
    if (!is_supported_sampler(name)) continue;
    NoiseSource noise(toy["seed"].get<uint64_t>());
    Result<at::Tensor> out =
        sample(name, denoiser, x0.clone(), flow_golden_tensor(r["sigmas"]), noise, {}, &ms);
    ASSERT_TRUE(out.is_ok()) << name << ": " << out.status().to_string();
    flow_expect_matches(*out, flow_golden_tensor(r["values"]).reshape(shape), name);
    ++ran;
  }
  EXPECT_GT(ran, 10);
}

}  // namespace
}  // namespace netdist::sampling
