// Input that a file or a workflow controls reaches the engine as a named error, never an abort (issue #15):
// latents of the wrong shape from LoadLatentNumpy into VAEDecode, VAEDecodeTiled, KSampler and
// KSamplerAdvanced, images of the wrong width into VAEEncode, conditioning of another model, and a refused
// checkpoint at CheckpointLoaderSimple. Each fails its prompt with ComfyUI's execution_error and the same
// executor renders the next prompt.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include <unistd.h>

#include "engine/tiny_checkpoint_testing.h"
#include "graph/executor.h"
#include "graph/test_util.h"
#include "graph/validate.h"
#include "io/files.h"
#include "netdist/source_dir.h"
#include "nodes/core_nodes.h"
#include "nodes/netdist_nodes.h"
#include "nodes/npy.h"

namespace netdist::nodes {
namespace {

namespace fs = std::filesystem;
using graph::Json;

std::string tiny_path() { return (fs::path(NETDIST_SOURCE_DIR) / "models" / "tiny-emoji.safetensors").string(); }

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netdist_bad_input_" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "models" / "checkpoints");
    fs::create_directories(dir_ / "input");
    NodeEnvOptions o;
    o.models_dir = (dir_ / "models").string();
    o.output_dir = (dir_ / "output").string();
    o.temp_dir = (dir_ / "temp").string();
    o.input_dir = (dir_ / "input").string();
    o.default_checkpoint = tiny_path();
    env_ = std::make_shared<NodeEnv>(o);
    register_core_nodes(registry_, env_);
    register_netdist_nodes(registry_, env_, [](const HttpRequest&) -> Result<HttpResponse> {
      return Status::unavailable("no network in this test");
    });
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes input/<name> as a float32 .npy of `t`.
  void write_npy(const std::string& name, const at::Tensor& t) {
    at::Tensor c = t.to(at::kFloat).contiguous();
    NpyArray a;
    a.shape = c.sizes().vec();
    a.data.assign(reinterpret_cast<const char*>(c.data_ptr<float>()), c.numel() * sizeof(float));
    auto bytes = serialize_npy(a);
    ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
    ASSERT_TRUE(io::write_file_atomic((dir_ / "input" / name).string(), *bytes).is_ok());
  }

  graph::ExecutionOutcome run(const Json& prompt, graph::testing::Recorder* recorder = nullptr) {
    graph::ValidationResult v = graph::validate_prompt(prompt, registry_);
    EXPECT_TRUE(v.ok()) << v.error_body.dump();
    if (!v.ok()) return {};
    graph::testing::Recorder sink;
    std::atomic<bool> interrupt{false};
    return executor_.execute(*v.validated, "p" + std::to_string(++prompts_), Json{{"client_id", "c"}},
                             recorder ? *recorder : sink, interrupt);
  }

  // Checkpoint → prompts → KSampler (2 steps, 64×64) on `latent` → VAEDecode → SaveImage.
  static Json graph_with(const Json& extra) {
    Json p = Json::parse(R"({
      "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-emoji.safetensors"}},
      "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red heart", "clip": ["1", 1]}},
      "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
      "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
      "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 3, "steps": 2, "cfg": 5.0,
            "sampler_name": "euler", "scheduler": "normal", "positive": ["2", 0], "negative": ["3", 0],
            "latent_image": ["4", 0], "denoise": 1.0}},
      "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
      "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "t"}}
    })");
    for (auto it = extra.begin(); it != extra.end(); ++it) p[it.key()] = it.value();
    return p;
  }

  // The node error of a prompt that must fail, after which the same executor still renders a good prompt.
  std::string fails_then_next_renders(const Json& prompt, const std::string& node_id) {
    graph::testing::Recorder events;
    graph::ExecutionOutcome bad = run(prompt, &events);
    EXPECT_FALSE(bad.success);
    const Json& last = events.events.back();
    EXPECT_EQ(last[0], "execution_error") << events.events.dump();
    EXPECT_EQ(last[1]["node_id"], node_id) << last.dump();
    graph::ExecutionOutcome good = run(graph_with(Json::object()));
    EXPECT_TRUE(good.success) << good.status.to_string();
    return last[1].value("exception_message", "");
  }

  fs::path dir_;
  std::shared_ptr<NodeEnv> env_;
  graph::NodeRegistry registry_;
  graph::Executor executor_{registry_};
  int prompts_ = 0;
};

Json load_latent(const std::string& file) {
  return Json{{"class_type", "LoadLatentNumpy"}, {"inputs", {{"latent", file}}}};
}

TEST_F(BadInput, ThreeChannelLatentIntoVaeDecodeFailsThatPromptOnly) {
  write_npy("rgb.npy", at::zeros({1, 3, 8, 8}));
  graph::testing::Recorder events;
  graph::ExecutionOutcome bad = run(graph_with({{"8", load_latent("rgb.npy")}, {"6", {{"class_type", "VAEDecode"},
                                                                                     {"inputs", {{"samples", Json::array({"8", 0})}, {"vae", Json::array({"1", 2})}}}}}}),
                                    &events);
  ASSERT_FALSE(bad.success);
  EXPECT_EQ(bad.status.code(), StatusCode::kInvalidArgument) << bad.status.to_string();
  const Json& error = events.events.back();
  ASSERT_EQ(error[0], "execution_error") << events.events.dump();
  EXPECT_EQ(error[1]["node_id"], "6");
  EXPECT_EQ(error[1]["node_type"], "VAEDecode");
  EXPECT_EQ(error[1]["exception_type"], "ValueError");
  const std::string message = error[1]["exception_message"].get<std::string>();
  EXPECT_NE(message.find("VAEDecode: samples has 3 channels ([1, 3, 8, 8])"), std::string::npos) << message;
  EXPECT_NE(message.find("tiny-emoji.safetensors' decodes 4-channel latents"), std::string::npos) << message;

  graph::ExecutionOutcome good = run(graph_with(Json::object()));
  EXPECT_TRUE(good.success) << good.status.to_string();
  EXPECT_TRUE(good.outputs.contains("7"));
}

TEST_F(BadInput, WrongChannelLatentIntoEveryConsumerIsNamed) {
  write_npy("rgb.npy", at::zeros({2, 3, 8, 8}));
  const Json decode_tiled = {{"class_type", "VAEDecodeTiled"},
                             {"inputs", {{"samples", Json::array({"8", 0})}, {"vae", Json::array({"1", 2})},
                                         {"tile_size", 512}, {"overlap", 64}, {"temporal_size", 64},
                                         {"temporal_overlap", 8}}}};
  std::string m = fails_then_next_renders(graph_with({{"8", load_latent("rgb.npy")}, {"6", decode_tiled}}), "6");
  EXPECT_NE(m.find("VAEDecodeTiled: samples has 3 channels"), std::string::npos) << m;

  Json ks = graph_with({{"8", load_latent("rgb.npy")}});
  ks["5"]["inputs"]["latent_image"] = Json::array({"8", 0});
  m = fails_then_next_renders(ks, "5");
  EXPECT_NE(m.find("KSampler: latent_image has 3 channels ([2, 3, 8, 8])"), std::string::npos) << m;
  EXPECT_NE(m.find("samples 4-channel latents"), std::string::npos) << m;

  Json adv = ks;
  adv["5"] = {{"class_type", "KSamplerAdvanced"},
              {"inputs", {{"model", Json::array({"1", 0})}, {"add_noise", "enable"}, {"noise_seed", 1}, {"steps", 2},
                          {"cfg", 5.0}, {"sampler_name", "euler"}, {"scheduler", "normal"},
                          {"positive", Json::array({"2", 0})}, {"negative", Json::array({"3", 0})},
                          {"latent_image", Json::array({"8", 0})}, {"start_at_step", 0}, {"end_at_step", 10000},
                          {"return_with_leftover_noise", "disable"}}}};
  m = fails_then_next_renders(adv, "5");
  EXPECT_NE(m.find("KSamplerAdvanced: latent_image has 3 channels"), std::string::npos) << m;
}

TEST_F(BadInput, WrongRankAndEmptyLatentsAreNamedAndNanIsFine) {
  write_npy("flat.npy", at::zeros({8, 8}));
  std::string m = fails_then_next_renders(graph_with({{"8", load_latent("flat.npy")},
                                                      {"6", {{"class_type", "VAEDecode"},
                                                             {"inputs", {{"samples", Json::array({"8", 0})},
                                                                         {"vae", Json::array({"1", 2})}}}}}}),
                                          "8");
  EXPECT_NE(m.find("needs 3 or 4 dimensions"), std::string::npos) << m;

  write_npy("empty.npy", at::zeros({1, 4, 0, 8}));
  Json ks = graph_with({{"8", load_latent("empty.npy")}});
  ks["5"]["inputs"]["latent_image"] = Json::array({"8", 0});
  m = fails_then_next_renders(ks, "5");
  EXPECT_NE(m.find("latent_image [1, 4, 0, 8] has no rows or no pixels"), std::string::npos) << m;

  write_npy("odd.npy", at::zeros({1, 4, 5, 7}));  // odd sizes render, as in ComfyUI
  Json odd = graph_with({{"8", load_latent("odd.npy")}});
  odd["5"]["inputs"]["latent_image"] = Json::array({"8", 0});
  EXPECT_TRUE(run(odd).success);

  write_npy("nan.npy", at::full({1, 4, 8, 8}, std::nan("")));
  graph::ExecutionOutcome nan = run(graph_with({{"8", load_latent("nan.npy")},
                                                {"6", {{"class_type", "VAEDecode"},
                                                       {"inputs", {{"samples", Json::array({"8", 0})},
                                                                   {"vae", Json::array({"1", 2})}}}}}}));
  EXPECT_TRUE(nan.success) << nan.status.to_string();
}

TEST_F(BadInput, EngineRefusesWrongImagesDtypesAndConditioningBeforeAnyTensorOp) {
  auto model = env_->load_checkpoint("tiny-emoji.safetensors");
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  Model& m = **model;
  auto grey = encode(m, at::zeros({1, 64, 64, 1}));
  EXPECT_EQ(grey.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(grey.status().message().find("pixels has 1 channels"), std::string::npos) << grey.status().message();
  EXPECT_NE(grey.status().message().find("encodes 3-channel (RGB) images"), std::string::npos);
  EXPECT_TRUE(encode(m, at::zeros({1, 64, 64, 4})).is_ok());  // RGBA: alpha dropped, as ComfyUI does

  auto ints = decode(m, at::zeros({1, 4, 8, 8}, at::kLong));
  EXPECT_NE(ints.status().message().find("samples holds Long values, not floating point"), std::string::npos)
      << ints.status().message();

  Conditioning pos = encode_prompt(m, "a red heart").value();
  Conditioning other = pos;
  other[0].context = at::zeros({1, 77, pos[0].context.size(2) + 8});
  SampleRequest req;
  req.steps = 1;
  req.latent = empty_latent(m, 1, 64, 64);
  auto sampled = sample(m, pos, other, req, nullptr);
  EXPECT_EQ(sampled.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(sampled.status().message().find("negative (conditioning entry 0) is "), std::string::npos)
      << sampled.status().message();
  req.batch_index = std::vector<int64_t>{0, 1};
  sampled = sample(m, pos, pos, req, nullptr);
  EXPECT_NE(sampled.status().message().find("batch_index has 2 entries for 1 latents"), std::string::npos)
      << sampled.status().message();
}

TEST_F(BadInput, RefusedCheckpointFailsAtTheLoaderNode) {
  testing::TinyCheckpointShape depth;
  depth.in_channels = 5;
  ASSERT_TRUE(testing::write_tiny_checkpoint((dir_ / "models/checkpoints/depth.safetensors").string(), depth)
                  .is_ok());
  Json p = graph_with(Json::object());
  p["1"]["inputs"]["ckpt_name"] = "depth.safetensors";
  const std::string m = fails_then_next_renders(p, "1");
  EXPECT_NE(m.find("CheckpointLoaderSimple: checkpoint 'depth.safetensors' is a depth UNet (5 input channels"),
            std::string::npos)
      << m;
}

}  // namespace
}  // namespace netdist::nodes
