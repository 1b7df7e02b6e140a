// MultiGPU_WorkUnits through the real registry and executor on the embedded model: ComfyUI's schema, a
// pass-through on one process (the same image as without it), and max_gpus below its minimum refused.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <unistd.h>

#include "graph/executor.h"
#include "graph/test_util.h"
#include "graph/validate.h"
#include "io/png.h"
#include "netdist/source_dir.h"
#include "nodes/core_nodes.h"

namespace netdist::nodes {
namespace {

namespace fs = std::filesystem;
using graph::Json;

class MultiGpuNodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netdist_multigpu_" + std::to_string(::getpid()));
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

  // Checkpoint → [MultiGPU_WorkUnits] → KSampler (2 steps, 64×64) → VAEDecode → SaveImage.
  static Json multigpu_graph(bool with_node, int max_gpus) {
    Json p = Json::parse(R"({
      "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-emoji.safetensors"}},
      "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red heart", "clip": ["1", 1]}},
      "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
      "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
      "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 3, "steps": 2, "cfg": 5.0,
            "sampler_name": "euler", "scheduler": "normal", "positive": ["2", 0], "negative": ["3", 0],
            "latent_image": ["4", 0], "denoise": 1.0}},
      "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
      "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "m"}}
    })");
    if (with_node) {
      p["8"] = {{"class_type", "MultiGPU_WorkUnits"},
                {"inputs", {{"model", {"1", 0}}, {"max_gpus", max_gpus}}}};
      p["5"]["inputs"]["model"] = {"8", 0};
    }
    return p;
  }

  fs::path dir_;
  std::shared_ptr<NodeEnv> env_;
  graph::NodeRegistry registry_;
  graph::Executor executor_{registry_};
};

TEST_F(MultiGpuNodesTest, SchemaIsComfyUIs) {
  const Json info = registry_.object_info()["MultiGPU_WorkUnits"];
  EXPECT_EQ(info["input"]["required"]["model"], Json::parse(R"(["MODEL"])"));
  EXPECT_EQ(info["input"]["required"]["max_gpus"],
            Json::parse(R"(["INT", {"default": 2, "min": 1, "step": 1}])"));
  EXPECT_EQ(info["output"], Json::parse(R"(["MODEL"])"));
  EXPECT_EQ(info["category"], "advanced/multigpu");
  EXPECT_EQ(info["python_module"], "comfy_extras.nodes_multigpu");
}

TEST_F(MultiGpuNodesTest, PassesTheModelThroughOnOneProcess) {
  for (bool with_node : {false, true}) {
    graph::ValidationResult v = graph::validate_prompt(multigpu_graph(with_node, 4), registry_);
    ASSERT_TRUE(v.ok()) << v.error_body.dump();
    graph::testing::Recorder sink;
    std::atomic<bool> interrupt{false};
    graph::ExecutionOutcome out =
        executor_.execute(*v.validated, "p", Json{{"client_id", "c"}}, sink, interrupt);
    EXPECT_TRUE(out.success) << with_node;
  }
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "output")) {
    if (e.is_regular_file()) files.push_back(e.path().string());
  }
  ASSERT_EQ(files.size(), 2u);
  std::vector<std::vector<uint8_t>> pixels;
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    auto png = io::decode_png(bytes, f);
    ASSERT_TRUE(png.is_ok()) << png.status().to_string();
    pixels.push_back(png->first.pixels);
  }
  EXPECT_EQ(pixels[0], pixels[1]);  // the metadata differs (the prompt), the pixels do not
}

TEST_F(MultiGpuNodesTest, MaxGpusBelowOneIsRefusedByName) {
  graph::ValidationResult v = graph::validate_prompt(multigpu_graph(true, 0), registry_);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error_body.dump().find("max_gpus"), std::string::npos) << v.error_body.dump();
}

}  // namespace
}  // namespace netdist::nodes
