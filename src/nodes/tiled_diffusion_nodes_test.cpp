// The TiledDiffusion node through the real registry and executor on the embedded tiny model: its
// /object_info entry as the custom node declares it, both methods in a KSampler graph, SpotDiffusion refused.
#include <gtest/gtest.h>

#include <filesystem>

#include <unistd.h>

#include "graph/executor.h"
#include "graph/test_util.h"
#include "graph/validate.h"
#include "netdist/source_dir.h"
#include "nodes/core_nodes.h"

namespace netdist::nodes {
namespace {

namespace fs = std::filesystem;
using graph::Json;

class TiledDiffusionNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netdist_tiled_nodes_" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "models");
    NodeEnvOptions o;
    o.models_dir = (dir_ / "models").string();
    o.output_dir = (dir_ / "output").string();
    o.temp_dir = (dir_ / "temp").string();
    o.input_dir = (dir_ / "input").string();
    o.default_checkpoint = (fs::path(NETDIST_SOURCE_DIR) / "models" / "tiny-emoji.safetensors").string();
    env_ = std::make_shared<NodeEnv>(o);
    register_core_nodes(registry_, env_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  graph::ExecutionOutcome run(const std::string& method) {
    Json p = Json::parse(R"({
      "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-emoji.safetensors"}},
      "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red heart", "clip": ["1", 1]}},
      "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
      "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 128, "height": 96, "batch_size": 1}},
      "8": {"class_type": "TiledDiffusion", "inputs": {"model": ["1", 0], "method": "", "tile_width": 64,
            "tile_height": 64, "tile_overlap": 32, "tile_batch_size": 4}},
      "5": {"class_type": "KSampler", "inputs": {"model": ["8", 0], "seed": 3, "steps": 2, "cfg": 5.0,
            "sampler_name": "euler", "scheduler": "normal", "positive": ["2", 0], "negative": ["3", 0],
            "latent_image": ["4", 0], "denoise": 1.0}},
      "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
      "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "t"}}
    })");
    p["8"]["inputs"]["method"] = method;
    graph::ValidationResult v = graph::validate_prompt(p, registry_);
    EXPECT_TRUE(v.ok()) << v.error_body.dump();
    if (!v.ok()) return {};
    graph::testing::Recorder sink;
    std::atomic<bool> interrupt{false};
    return executor_.execute(*v.validated, "p", Json{{"client_id", "c"}}, sink, interrupt);
  }

  fs::path dir_;
  std::shared_ptr<NodeEnv> env_;
  graph::NodeRegistry registry_;
  graph::Executor executor_{registry_};
};

// INPUT_TYPES of tiled_diffusion.py's TiledDiffusion (opt_f = 8, MAX_RESOLUTION = 8192).
TEST_F(TiledDiffusionNodeTest, ObjectInfoMatchesTheCustomNode) {
  Json info = registry_.object_info()["TiledDiffusion"];
  Json req = info["input"]["required"];
  EXPECT_EQ(req["model"], Json::parse(R"(["MODEL"])"));
  EXPECT_EQ(req["method"], Json::parse(R"([["MultiDiffusion", "Mixture of Diffusers", "SpotDiffusion"],
                                           {"default": "Mixture of Diffusers"}])"));
  EXPECT_EQ(req["tile_width"], Json::parse(R"(["INT", {"default": 768, "min": 16, "max": 8192, "step": 16}])"));
  EXPECT_EQ(req["tile_height"], Json::parse(R"(["INT", {"default": 768, "min": 16, "max": 8192, "step": 16}])"));
  EXPECT_EQ(req["tile_overlap"], Json::parse(R"(["INT", {"default": 64, "min": 0, "max": 2048, "step": 32}])"));
  EXPECT_EQ(req["tile_batch_size"], Json::parse(R"(["INT", {"default": 4, "min": 1, "max": 8192, "step": 1}])"));
  EXPECT_EQ(info["output"], Json::parse(R"(["MODEL"])"));
  EXPECT_EQ(info["category"], "_for_testing");
  EXPECT_EQ(info["display_name"], "Tiled Diffusion");
  EXPECT_EQ(info["python_module"], "custom_nodes.ComfyUI-TiledDiffusion");
}

TEST_F(TiledDiffusionNodeTest, BothMethodsRenderAndSpotDiffusionIsRefusedByName) {
  for (const char* method : {"MultiDiffusion", "Mixture of Diffusers"}) {
    graph::ExecutionOutcome out = run(method);
    EXPECT_TRUE(out.success) << method << ": " << out.status.to_string();
  }
  graph::ExecutionOutcome spot = run("SpotDiffusion");
  EXPECT_FALSE(spot.success);
  EXPECT_EQ(spot.status.code(), StatusCode::kUnsupported);
  EXPECT_NE(spot.status.message().find("SpotDiffusion"), std::string::npos) << spot.status.to_string();
}

}  // namespace
}  // namespace netdist::nodes
