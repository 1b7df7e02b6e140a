#include "engine/sampling/schedulers.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/version.h>

#include "engine/sampling/samplers.h"
#include "netdist/source_dir.h"

namespace netdist::sampling {
namespace {

template <typename T>
T must_schedule(Result<T> result) {
  EXPECT_TRUE(result.is_ok()) << result.status().to_string();
  return std::move(result).value();
}

std::string data_dir() {
  const char* dir = std::getenv("NETDIST_TEST_DATA");
  return std::string(dir ? dir : NETDIST_SOURCE_DIR "/tests/data") + "/sampling";
}

nlohmann::json load_json(const std::string& name) {
  std::ifstream in(data_dir() + "/" + name);
  EXPECT_TRUE(in.good()) << name;
  return nlohmann::json::parse(in);
}

std::vector<double> to_vector(const at::Tensor& t) {
  at::Tensor d = t.to(at::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

// float32 results against float64 closed forms: a few float32 ulps, more for schedules whose ComfyUI
// arithmetic is float32 throughout (pow/exp/tan of float32 ramps).
double tolerance_for(const std::string& scheduler) {
  if (scheduler == "karras" || scheduler == "exponential" || scheduler == "kl_optimal") return 2e-5;
  if (scheduler == "normal" || scheduler == "sgm_uniform") return 3e-5;
  return 3e-7;
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double rel, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], rel * std::fabs(want[i]) + 1e-12) << what << " index " << i;
  }
}

TEST(Schedulers, NamesMatchComfyUI) {
  std::vector<std::string> expected = {"normal", "karras", "exponential", "sgm_uniform", "simple",
                                       "ddim_uniform", "beta", "linear_quadratic", "kl_optimal"};
  EXPECT_EQ(scheduler_names(), expected);
  EXPECT_TRUE(discards_penultimate_sigma("dpm_2"));
  EXPECT_TRUE(discards_penultimate_sigma("dpm_2_ancestral"));
  EXPECT_TRUE(discards_penultimate_sigma("uni_pc"));
  EXPECT_TRUE(discards_penultimate_sigma("uni_pc_bh2"));
  EXPECT_FALSE(discards_penultimate_sigma("euler"));
}

TEST(Schedulers, EveryScheduleMatchesClosedForm) {
  ModelSampling ms;
  nlohmann::json ref = load_json("sigmas_reference.json");
  for (const std::string& name : scheduler_names()) {
    for (int n : {1, 7, 20}) {
      std::string key = name + "/" + std::to_string(n);
      if (!ref["schedules"].contains(key)) continue;
      Result<at::Tensor> sigmas = calculate_sigmas(ms, name, n);
      ASSERT_TRUE(sigmas.is_ok()) << sigmas.status().to_string();
      EXPECT_EQ(sigmas->scalar_type(), at::kFloat) << key;
      expect_close(to_vector(*sigmas), ref["schedules"][key].get<std::vector<double>>(), tolerance_for(name), key);
    }
  }
}

TEST(Schedulers, TwentyStepEndpoints) {
  ModelSampling ms;
  for (const std::string& name : scheduler_names()) {
    Result<at::Tensor> sigmas = calculate_sigmas(ms, name, 20);
    ASSERT_TRUE(sigmas.is_ok());
    std::vector<double> s = to_vector(*sigmas);
    ASSERT_EQ(s.size(), 21u) << name;
    EXPECT_EQ(s.back(), 0.0) << name;
    for (size_t i = 1; i < s.size(); ++i) EXPECT_LT(s[i], s[i - 1]) << name << " index " << i;
    if (name != "ddim_uniform") {
      EXPECT_NEAR(s.front(), 14.6146, 1e-3) << name;
    }
  }
  EXPECT_NEAR(to_vector(must_schedule(calculate_sigmas(ms, "karras", 20)))[19], 0.0292, 1e-4);
  EXPECT_NEAR(to_vector(must_schedule(calculate_sigmas(ms, "ddim_uniform", 20)))[0],
              ms.sigmas()[951].item<double>(), 0.0);
}

TEST(Schedulers, DenoiseAndDiscardPenultimate) {
  ModelSampling ms;
  nlohmann::json ref = load_json("sigmas_reference.json");
  for (const std::string& name : scheduler_names()) {
    Result<at::Tensor> half = make_sigmas(name, ms, 20, 0.5, "euler");
    ASSERT_TRUE(half.is_ok());
    expect_close(to_vector(*half), ref["schedules"][name + "/20/denoise0.5"].get<std::vector<double>>(),
                 tolerance_for(name), name + " denoise 0.5");
    Result<at::Tensor> discard = make_sigmas(name, ms, 20, 1.0, "dpm_2");
    ASSERT_TRUE(discard.is_ok());
    expect_close(to_vector(*discard), ref["schedules"][name + "/20/discard"].get<std::vector<double>>(),
                 tolerance_for(name), name + " discard");
    Result<at::Tensor> both = make_sigmas(name, ms, 13, 0.37, "uni_pc_bh2");
    ASSERT_TRUE(both.is_ok());
    expect_close(to_vector(*both), ref["schedules"][name + "/13/denoise0.37/discard"].get<std::vector<double>>(),
                 tolerance_for(name), name + " denoise 0.37 + discard");
  }
  at::Tensor full = must_schedule(make_sigmas("normal", ms, 20, 1.0, "euler"));
  at::Tensor half = must_schedule(make_sigmas("normal", ms, 20, 0.5, "euler"));
  at::Tensor forty = must_schedule(calculate_sigmas(ms, "normal", 40));
  EXPECT_EQ(half.size(0), 21);
  EXPECT_TRUE(at::equal(half, forty.slice(0, 20)));
  EXPECT_TRUE(at::equal(full, must_schedule(calculate_sigmas(ms, "normal", 20))));
  EXPECT_TRUE(at::equal(must_schedule(make_sigmas("normal", ms, 20, 0.99995, "euler")), full));
  at::Tensor d2 = must_schedule(make_sigmas("karras", ms, 20, 1.0, "dpm_2"));
  at::Tensor k21 = must_schedule(calculate_sigmas(ms, "karras", 21));
  EXPECT_EQ(d2.size(0), 21);
  EXPECT_TRUE(at::equal(d2.slice(0, 0, 20), k21.slice(0, 0, 20)));
  EXPECT_EQ(d2[20].item<float>(), 0.0f);
}

TEST(Schedulers, ZeroDenoiseIsEmpty) {
  ModelSampling ms;
  Result<at::Tensor> none = make_sigmas("normal", ms, 20, 0.0, "euler");
  ASSERT_TRUE(none.is_ok());
  EXPECT_EQ(none->numel(), 0);
  EXPECT_EQ(make_sigmas("normal", ms, 20, -1.0, "euler")->numel(), 0);
}

TEST(Schedulers, BadInputsAreInvalidArgument) {
  ModelSampling ms;
  Result<at::Tensor> unknown = make_sigmas("linear", ms, 20, 1.0, "euler");
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("'linear'"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("karras"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("kl_optimal"), std::string::npos);
  EXPECT_FALSE(make_sigmas("linear", ms, 20, 0.0, "euler").is_ok());
  Result<at::Tensor> zero_steps = make_sigmas("normal", ms, 0, 1.0, "euler");
  ASSERT_FALSE(zero_steps.is_ok());
  EXPECT_EQ(zero_steps.status().code(), StatusCode::kInvalidArgument);
}

TEST(Schedulers, BetaPpf) {
  EXPECT_EQ(beta_ppf(0.0, 0.6, 0.6), 0.0);
  EXPECT_EQ(beta_ppf(1.0, 0.6, 0.6), 1.0);
  EXPECT_NEAR(beta_ppf(0.5, 0.6, 0.6), 0.5, 1e-14);
  EXPECT_NEAR(beta_ppf(0.3, 0.6, 0.6) + beta_ppf(0.7, 0.6, 0.6), 1.0, 1e-13);
  EXPECT_NEAR(beta_ppf(0.25, 1.0, 1.0), 0.25, 1e-14);
  EXPECT_NEAR(beta_ppf(0.25, 2.0, 1.0), 0.5, 1e-13);
}

#if TORCH_VERSION_MAJOR >= 2
constexpr double kGoldenRelTolerance = 0.0;
#else
constexpr double kGoldenRelTolerance = 1e-6;  // karras: pow(·, 7) of a base an ulp off
#endif

// tools/parity/sampling_golden.py, run where ComfyUI and torch are installed, writes golden_comfy.json.
TEST(Schedulers, MatchComfyUIGolden) {
  std::string path = data_dir() + "/golden_comfy.json";
  if (!std::filesystem::exists(path))
    GTEST_FAIL() << path << " is missing (tools/parity/sampling_golden.py makes it)";
  ModelSampling ms;
  nlohmann::json golden = load_json("golden_comfy.json");
  std::vector<double> table = golden["sigmas"].get<std::vector<double>>();
  EXPECT_EQ(to_vector(ms.sigmas()), table);
  EXPECT_EQ(to_vector(ms.log_sigmas()), golden["log_sigmas"].get<std::vector<double>>());
  for (const auto& c : golden["cases"]) {
    std::string scheduler = c["scheduler"];
    std::string sampler = c["sampler"];
    int steps = c["steps"];
    double denoise = c["denoise"];
    Result<at::Tensor> sigmas = make_sigmas(scheduler, ms, steps, denoise, sampler);
    ASSERT_TRUE(sigmas.is_ok()) << sigmas.status().to_string();
    std::vector<double> got = to_vector(*sigmas);
    std::vector<double> want;
    for (const auto& v : c["sigmas"]) want.push_back(v.is_null() ? std::nan("") : v.get<double>());
    ASSERT_EQ(got.size(), want.size()) << scheduler << " " << sampler << " steps " << steps << " denoise " << denoise;
    for (size_t i = 0; i < got.size(); ++i) {
      if (std::isnan(want[i])) {
        EXPECT_TRUE(std::isnan(got[i])) << scheduler << " steps " << steps << " index " << i;
      } else {
        // Bit-exact against the libtorch ComfyUI ran on (2.x). libtorch 1.13's scalar exp/pow/tan (glibc) can
        // differ by an ulp from 2.x's vectorised Sleef ones, which normal/sgm_uniform/exponential/karras/
        // kl_optimal use.
        EXPECT_NEAR(got[i], want[i], kGoldenRelTolerance * std::fabs(want[i]))
            << scheduler << " " << sampler << " steps " << steps << " denoise " << denoise << " index " << i;
      }
    }
  }
  if (golden.contains("lms")) {
    for (const auto& c : golden["lms"]) {
      std::vector<float> t = c["t"].get<std::vector<float>>();
      EXPECT_EQ(linear_multistep_coeff(c["order"], t, c["i"], c["j"]), c["coeff"].get<double>())
          << "order " << c["order"] << " i " << c["i"] << " j " << c["j"];
    }
  }
}

}  // namespace
}  // namespace netdist::sampling
