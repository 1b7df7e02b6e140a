// The custom-sampling and model-sampling nodes through the real registry and executor on the embedded tiny
// model: /object_info as ComfyUI declares them, SamplerCustomAdvanced / SamplerCustom equal to KSampler bit
// for bit (as in ComfyUI), the flow model sampling changing what KSampler renders, and failures on purpose.
#include <gtest/gtest.h>

#include <filesystem>

#include <unistd.h>

#include "core/base64.h"
#include "engine/runtime/tensor_io.h"
#include "graph/executor.h"
#include "graph/test_util.h"
#include "graph/validate.h"
#include "netdist/source_dir.h"
#include "nodes/core_nodes.h"

namespace netdist::nodes {
namespace {

namespace fs = std::filesystem;
using graph::Json;

class CustomSamplingNodes : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netdist_custom_sampling_" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "models");
    NodeEnvOptions o;
    o.models_dir = (dir_ / "models").string();
    o.output_dir = (dir_ / "output").string();
    o.temp_dir = (dir_ / "temp").string();
    o.input_dir = (dir_ / "input").string();
    o.default_checkpoint = (fs::path(NETDIST_SOURCE_DIR) / "models" / "tiny-emoji.safetensors").string();
    env_ = std::make_shared<NodeEnv>(o);
    register_core_nodes(registry_, env_);
    register_shard_nodes(registry_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Json info(const std::string& cls) { return registry_.object_info()[cls]; }

  graph::ExecutionOutcome run(const Json& prompt) {
    graph::ValidationResult v = graph::validate_prompt(prompt, registry_);
    EXPECT_TRUE(v.ok()) << v.error_body.dump();
    if (!v.ok()) return {};
    graph::testing::Recorder sink;
    std::atomic<bool> interrupt{false};
    return executor_.execute(*v.validated, "p", Json{{"client_id", "c"}}, sink, interrupt);
  }

  // The latent that node "out" (NetdistShardLatentOutput) received.
  static at::Tensor latent_of(const graph::ExecutionOutcome& outcome, const std::string& node = "out") {
    EXPECT_TRUE(outcome.success) << outcome.status.to_string();
    if (!outcome.success) return {};
    auto bytes = base64_decode(outcome.outputs[node]["netdist_latent"][0].get<std::string>());
    EXPECT_TRUE(bytes.is_ok());
    auto weights = runtime::weights_from_buffer(*bytes, "latent");
    EXPECT_TRUE(weights.is_ok()) << weights.status().to_string();
    return weights->at("samples");
  }

  // Checkpoint → prompts → empty 64×64 latent (batch 2) → `sampler` (node "5") → latent output.
  static Json graph_with(const Json& nodes, const Json& out_link = Json::array({"5", 0})) {
    Json p = Json::parse(R"({
      "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-emoji.safetensors"}},
      "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red heart", "clip": ["1", 1]}},
      "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
      "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 2}}
    })");
    for (auto it = nodes.begin(); it != nodes.end(); ++it) p[it.key()] = it.value();
    p["out"] = {{"class_type", "NetdistShardLatentOutput"}, {"inputs", {{"samples", out_link}}}};
    return p;
  }

  static Json ksampler(const std::string& sampler, const std::string& scheduler, double cfg, double denoise,
                       const Json& model = Json::array({"1", 0})) {
    return {{"5",
             {{"class_type", "KSampler"},
              {"inputs",
               {{"model", model},
                {"seed", 7},
                {"steps", 3},
                {"cfg", cfg},
                {"sampler_name", sampler},
                {"scheduler", scheduler},
                {"positive", Json::array({"2", 0})},
                {"negative", Json::array({"3", 0})},
                {"latent_image", Json::array({"4", 0})},
                {"denoise", denoise}}}}}};
  }

  // RandomNoise(7) + CFGGuider (or BasicGuider when cfg is 1 and `basic`) + KSamplerSelect + BasicScheduler.
  static Json custom_advanced(const std::string& sampler, const std::string& scheduler, double cfg,
                              double denoise, bool basic = false, const Json& model = Json::array({"1", 0})) {
    Json guider = basic ? Json{{"class_type", "BasicGuider"},
                               {"inputs", {{"model", model}, {"conditioning", Json::array({"2", 0})}}}}
                        : Json{{"class_type", "CFGGuider"},
                               {"inputs",
                                {{"model", model},
                                 {"positive", Json::array({"2", 0})},
                                 {"negative", Json::array({"3", 0})},
                                 {"cfg", cfg}}}};
    return {{"10", {{"class_type", "RandomNoise"}, {"inputs", {{"noise_seed", 7}}}}},
            {"11", guider},
            {"12", {{"class_type", "KSamplerSelect"}, {"inputs", {{"sampler_name", sampler}}}}},
            {"13",
             {{"class_type", "BasicScheduler"},
              {"inputs", {{"model", model}, {"scheduler", scheduler}, {"steps", 3}, {"denoise", denoise}}}}},
            {"5",
             {{"class_type", "SamplerCustomAdvanced"},
              {"inputs",
               {{"noise", Json::array({"10", 0})},
                {"guider", Json::array({"11", 0})},
                {"sampler", Json::array({"12", 0})},
                {"sigmas", Json::array({"13", 0})},
                {"latent_image", Json::array({"4", 0})}}}}}};
  }

  static Json merged(Json a, const Json& b) {
    for (auto it = b.begin(); it != b.end(); ++it) a[it.key()] = it.value();
    return a;
  }

  fs::path dir_;
  std::shared_ptr<NodeEnv> env_;
  graph::NodeRegistry registry_;
  graph::Executor executor_{registry_};
};

TEST_F(CustomSamplingNodes, SchemasMatchComfyUI) {
  Json adv = info("SamplerCustomAdvanced");
  EXPECT_EQ(adv["output"], Json::parse(R"(["LATENT", "LATENT"])"));
  EXPECT_EQ(adv["output_name"], Json::parse(R"(["output", "denoised_output"])"));
  EXPECT_EQ(adv["category"], "sampling/custom_sampling");
  EXPECT_EQ(adv["python_module"], "comfy_extras.nodes_custom_sampler");
  EXPECT_EQ(adv["input"]["required"]["sigmas"], Json::parse(R"(["SIGMAS"])"));
  EXPECT_EQ(info("SamplerCustom")["input"]["required"]["add_noise"],
            Json::parse(R"(["BOOLEAN", {"default": true}])"));
  EXPECT_EQ(
      info("SamplerCustom")["input"]["required"]["cfg"],
      Json::parse(R"(["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}])"));
  EXPECT_EQ(info("RandomNoise")["input"]["required"]["noise_seed"],
            Json::parse(R"(["INT", {"default": 0, "min": 0, "max": 18446744073709551615}])"));
  EXPECT_EQ(info("DisableNoise")["input"], Json::parse(R"({"required": {}})"));
  EXPECT_EQ(info("DisableNoise")["input_order"], Json::parse(R"({"required": []})"));
  EXPECT_EQ(info("BasicScheduler")["input"]["required"]["steps"],
            Json::parse(R"(["INT", {"default": 20, "min": 1, "max": 10000}])"));
  EXPECT_EQ(info("BasicScheduler")["input"]["required"]["denoise"],
            Json::parse(R"(["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}])"));
  EXPECT_EQ(info("BasicScheduler")["category"], "sampling/custom_sampling/schedulers");
  EXPECT_EQ(info("KSamplerSelect")["output"], Json::parse(R"(["SAMPLER"])"));
  EXPECT_EQ(info("CFGGuider")["output"], Json::parse(R"(["GUIDER"])"));
  EXPECT_EQ(info("SplitSigmas")["output_name"], Json::parse(R"(["high_sigmas", "low_sigmas"])"));
  EXPECT_EQ(info("ModelSamplingSD3")["input"]["required"]["shift"],
            Json::parse(R"(["FLOAT", {"default": 3.0, "min": 0.0, "max": 100.0, "step": 0.01}])"));
  EXPECT_EQ(info("ModelSamplingSD3")["python_module"], "comfy_extras.nodes_model_advanced");
  EXPECT_EQ(info("ModelSamplingSD3")["category"], "advanced/model");
  EXPECT_EQ(info("ModelSamplingAuraFlow")["input"]["required"]["shift"][1]["default"], 1.73);
  EXPECT_EQ(info("ModelSamplingFlux")["input"]["required"]["width"],
            Json::parse(R"(["INT", {"default": 1024, "min": 16, "max": 16384, "step": 8}])"));
  EXPECT_EQ(info("ModelSamplingFlux")["input"]["required"]["max_shift"][1]["default"], 1.15);
  EXPECT_EQ(info("ModelSamplingDiscrete")["input"]["required"]["sampling"][0],
            Json::parse(R"(["eps", "v_prediction", "lcm", "x0"])"));
}

// ComfyUI's property: SamplerCustomAdvanced with the same noise, guider, sampler and schedule is KSampler.
TEST_F(CustomSamplingNodes, SamplerCustomAdvancedEqualsKSamplerBitForBit) {
  struct Case {
    const char* sampler;
    const char* scheduler;
    double cfg, denoise;
  };
  for (const Case& c : {Case{"euler", "normal", 5.0, 1.0}, Case{"dpmpp_2m", "karras", 4.0, 0.6},
                        Case{"euler_ancestral", "simple", 5.0, 1.0}, Case{"heun", "sgm_uniform", 1.0, 1.0}}) {
    SCOPED_TRACE(c.sampler);
    at::Tensor ks = latent_of(run(graph_with(ksampler(c.sampler, c.scheduler, c.cfg, c.denoise))));
    at::Tensor custom = latent_of(run(graph_with(custom_advanced(c.sampler, c.scheduler, c.cfg, c.denoise))));
    ASSERT_TRUE(ks.defined() && custom.defined());
    EXPECT_EQ(ks.sizes(), (std::vector<int64_t>{2, 4, 8, 8}));
    EXPECT_TRUE(at::equal(ks, custom)) << (ks - custom).abs().max().item<double>();
  }
  // BasicGuider is cfg 1 without a negative: KSampler at cfg 1.
  at::Tensor ks = latent_of(run(graph_with(ksampler("euler", "normal", 1.0, 1.0))));
  at::Tensor basic = latent_of(run(graph_with(custom_advanced("euler", "normal", 1.0, 1.0, true))));
  ASSERT_TRUE(ks.defined() && basic.defined());
  EXPECT_TRUE(at::equal(ks, basic));
  at::Tensor cfg5 = latent_of(run(graph_with(ksampler("euler", "normal", 5.0, 1.0))));
  EXPECT_FALSE(at::equal(cfg5, basic));
}

TEST_F(CustomSamplingNodes, SamplerCustomEqualsKSamplerAndGivesTheLastDenoised) {
  Json nodes = custom_advanced("euler", "normal", 5.0, 1.0);
  nodes["5"] = {{"class_type", "SamplerCustom"},
                {"inputs",
                 {{"model", Json::array({"1", 0})},
                  {"add_noise", true},
                  {"noise_seed", 7},
                  {"cfg", 5.0},
                  {"positive", Json::array({"2", 0})},
                  {"negative", Json::array({"3", 0})},
                  {"sampler", Json::array({"12", 0})},
                  {"sigmas", Json::array({"13", 0})},
                  {"latent_image", Json::array({"4", 0})}}}};
  at::Tensor ks = latent_of(run(graph_with(ksampler("euler", "normal", 5.0, 1.0))));
  at::Tensor custom = latent_of(run(graph_with(nodes)));
  ASSERT_TRUE(ks.defined() && custom.defined());
  EXPECT_TRUE(at::equal(ks, custom));
  // Euler's last step to σ = 0 lands on the last x0 prediction (up to rounding), which denoised_output holds.
  at::Tensor denoised = latent_of(run(graph_with(nodes, Json::array({"5", 1}))));
  ASSERT_TRUE(denoised.defined());
  EXPECT_EQ(denoised.sizes(), custom.sizes());
  EXPECT_LT((denoised - custom).abs().max().item<double>(), 1e-4);
}

TEST_F(CustomSamplingNodes, FlowModelSamplingDrivesBothSamplers) {
  const Json sd3 = {
      {"20",
       {{"class_type", "ModelSamplingSD3"}, {"inputs", {{"model", Json::array({"1", 0})}, {"shift", 3.0}}}}}};
  const Json model = Json::array({"20", 0});
  for (const char* sampler : {"euler", "dpmpp_2m", "euler_ancestral", "dpmpp_2s_ancestral"}) {
    SCOPED_TRACE(sampler);
    at::Tensor plain = latent_of(run(graph_with(ksampler(sampler, "simple", 4.0, 1.0))));
    at::Tensor ks = latent_of(run(graph_with(merged(ksampler(sampler, "simple", 4.0, 1.0, model), sd3))));
    at::Tensor custom =
        latent_of(run(graph_with(merged(custom_advanced(sampler, "simple", 4.0, 1.0, false, model), sd3))));
    ASSERT_TRUE(plain.defined() && ks.defined() && custom.defined());
    EXPECT_TRUE(at::equal(ks, custom));
    EXPECT_FALSE(at::equal(plain, ks));
    EXPECT_TRUE(at::isfinite(ks).all().item<bool>());
  }
  const Json flux = {{"20",
                      {{"class_type", "ModelSamplingFlux"},
                       {"inputs",
                        {{"model", Json::array({"1", 0})},
                         {"max_shift", 1.15},
                         {"base_shift", 0.5},
                         {"width", 64},
                         {"height", 64}}}}}};
  at::Tensor f = latent_of(run(graph_with(merged(ksampler("euler", "sgm_uniform", 4.0, 1.0, model), flux))));
  ASSERT_TRUE(f.defined());
  EXPECT_TRUE(at::isfinite(f).all().item<bool>());
  // ModelSamplingDiscrete eps is the checkpoint's own sampling.
  const Json eps = {{"20",
                     {{"class_type", "ModelSamplingDiscrete"},
                      {"inputs", {{"model", Json::array({"1", 0})}, {"sampling", "eps"}, {"zsnr", false}}}}}};
  at::Tensor plain = latent_of(run(graph_with(ksampler("euler", "normal", 5.0, 1.0))));
  at::Tensor same = latent_of(run(graph_with(merged(ksampler("euler", "normal", 5.0, 1.0, model), eps))));
  EXPECT_TRUE(at::equal(plain, same));
}

TEST_F(CustomSamplingNodes, EmptyScheduleAndSigmaNodes) {
  // BasicScheduler at denoise 0 is an empty schedule: the latent comes back unchanged (ComfyUI
  // CFGGuider.sample).
  at::Tensor out = latent_of(run(graph_with(custom_advanced("euler", "normal", 5.0, 0.0))));
  ASSERT_TRUE(out.defined());
  EXPECT_TRUE(at::equal(out, at::zeros({2, 4, 8, 8})));
  // SplitSigmas at step 1 then sampling the low part from the high part's output = the whole schedule.
  Json split = custom_advanced("euler", "normal", 5.0, 1.0);
  split["14"] = {{"class_type", "SplitSigmas"},
                 {"inputs", {{"sigmas", Json::array({"13", 0})}, {"step", 1}}}};
  split["5"]["inputs"]["sigmas"] = Json::array({"14", 0});
  split["15"] = split["5"];
  split["15"]["inputs"]["sigmas"] = Json::array({"14", 1});
  split["15"]["inputs"]["latent_image"] = Json::array({"5", 0});
  split["16"] = {{"class_type", "DisableNoise"}, {"inputs", Json::object()}};
  split["15"]["inputs"]["noise"] = Json::array({"16", 0});
  at::Tensor whole = latent_of(run(graph_with(custom_advanced("euler", "normal", 5.0, 1.0))));
  at::Tensor two_parts = latent_of(run(graph_with(split, Json::array({"15", 0}))));
  ASSERT_TRUE(whole.defined() && two_parts.defined());
  EXPECT_LT((whole - two_parts).abs().max().item<double>(), 1e-3);
}

TEST_F(CustomSamplingNodes, BadInputsAreNamed) {
  Json zero_shift = merged(ksampler("euler", "normal", 5.0, 1.0, Json::array({"20", 0})),
                           {{"20",
                             {{"class_type", "ModelSamplingSD3"},
                              {"inputs", {{"model", Json::array({"1", 0})}, {"shift", 0.0}}}}}});
  graph::ExecutionOutcome bad = run(graph_with(zero_shift));
  EXPECT_FALSE(bad.success);
  EXPECT_NE(bad.status.to_string().find("ModelSamplingSD3: shift"), std::string::npos)
      << bad.status.to_string();

  Json lcm =
      merged(ksampler("euler", "normal", 5.0, 1.0, Json::array({"20", 0})),
             {{"20",
               {{"class_type", "ModelSamplingDiscrete"},
                {"inputs", {{"model", Json::array({"1", 0})}, {"sampling", "lcm"}, {"zsnr", false}}}}}});
  bad = run(graph_with(lcm));
  EXPECT_FALSE(bad.success);
  EXPECT_NE(bad.status.to_string().find("ModelSamplingDiscrete: sampling 'lcm'"), std::string::npos)
      << bad.status.to_string();

  Json tiny_denoise = custom_advanced("euler", "normal", 5.0, 1.0);
  tiny_denoise["13"]["inputs"]["steps"] = 10000;
  tiny_denoise["13"]["inputs"]["denoise"] = 0.001;
  bad = run(graph_with(tiny_denoise));
  EXPECT_FALSE(bad.success);
  EXPECT_NE(bad.status.to_string().find("BasicScheduler: denoise"), std::string::npos)
      << bad.status.to_string();

  // A SIGMAS link where a LATENT belongs is refused at validation, naming the input.
  Json wrong = custom_advanced("euler", "normal", 5.0, 1.0);
  wrong["5"]["inputs"]["latent_image"] = Json::array({"13", 0});
  graph::ValidationResult v = graph::validate_prompt(graph_with(wrong), registry_);
  EXPECT_FALSE(v.ok());
  EXPECT_NE(v.error_body.dump().find("latent_image"), std::string::npos) << v.error_body.dump();
}

}  // namespace
}  // namespace netdist::nodes
