// --max-loaded-models through the real registry and executor: prompts that cycle six checkpoints (copies of
// the embedded tiny model under six names) keep at most N loaded, and the process's resident memory stays
// within N models' footprint plus a small constant; without the bound all six stay (the control that shows
// the measurement can fail).
#include <gtest/gtest.h>

#include <filesystem>

#include <unistd.h>

#include "engine/runtime/device_memory.h"
#include "graph/executor.h"
#include "graph/test_util.h"
#include "graph/validate.h"
#include "netdist/source_dir.h"
#include "nodes/core_nodes.h"

namespace netdist::nodes {
namespace {

namespace fs = std::filesystem;
using graph::Json;

constexpr int kCheckpoints = 6;

class ModelCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / "netdist_model_cache";
    dir_ += std::to_string(::getpid());
    fs::create_directories(dir_ / "models" / "checkpoints");
    const fs::path tiny = fs::path(NETDIST_SOURCE_DIR) / "models" / "tiny-emoji.safetensors";
    for (int i = 0; i < kCheckpoints; ++i) fs::copy_file(tiny, dir_ / "models" / "checkpoints" / name(i));
    model_bytes_ = static_cast<int64_t>(fs::file_size(tiny));
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Appended piece by piece: GCC 12 warns (-Wstringop-overflow, a false positive) on "m" + to_string(i).
  static std::string name(int i) {
    std::string n = "m";
    n += std::to_string(i);
    n += ".safetensors";
    return n;
  }

  void start(int max_loaded) {
    NodeEnvOptions o;
    o.models_dir = (dir_ / "models").string();
    o.output_dir = (dir_ / "output").string();
    o.temp_dir = (dir_ / "temp").string();
    o.input_dir = (dir_ / "input").string();
    o.max_loaded_models = max_loaded;
    env_ = std::make_shared<NodeEnv>(o);
    register_core_nodes(registry_, env_);
  }

  // Checkpoint i → text encode → KSampler (1 step, 64×64) → VAEDecode → PreviewImage.
  void render(int i) {
    Json p = Json::parse(R"({
      "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ""}},
      "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red heart", "clip": ["1", 1]}},
      "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
      "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 3, "steps": 1, "cfg": 1.0,
            "sampler_name": "euler", "scheduler": "normal", "positive": ["2", 0], "negative": ["2", 0],
            "latent_image": ["4", 0], "denoise": 1.0}},
      "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
      "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}}
    })");
    p["1"]["inputs"]["ckpt_name"] = name(i);
    graph::ValidationResult v = graph::validate_prompt(p, registry_);
    ASSERT_TRUE(v.ok()) << v.error_body.dump();
    graph::testing::Recorder sink;
    std::atomic<bool> interrupt{false};
    graph::ExecutionOutcome out = executor_.execute(*v.validated, name(i), Json::object(), sink, interrupt);
    ASSERT_TRUE(out.status.is_ok()) << out.status.to_string();
  }

  // Renders checkpoints 0..5 twice; returns the largest resident-set growth seen after a prompt, over the
  // resident set after the first prompt (which pays the one-time costs: libtorch, tokenizer, first model).
  // `one_model` gets the growth the second checkpoint caused: one model's footprint in RAM (weights as the
  // engine holds them, larger than the file), which two loaded models are allowed.
  int64_t cycle(int max_loaded, size_t* most_loaded, int64_t* one_model) {
    start(max_loaded);
    render(0);
    const int64_t base = runtime::resident_set_bytes();
    int64_t growth = 0;
    *most_loaded = env_->loaded_model_count();
    for (int round = 0; round < 2; ++round) {
      for (int i = 0; i < kCheckpoints; ++i) {
        render(i);
        *most_loaded = std::max(*most_loaded, env_->loaded_model_count());
        growth = std::max(growth, runtime::resident_set_bytes() - base);
        if (round == 0 && i == 1) *one_model = growth;
      }
    }
    return growth;
  }

  fs::path dir_;
  int64_t model_bytes_ = 0;
  std::shared_ptr<NodeEnv> env_;
  graph::NodeRegistry registry_;
  graph::Executor executor_{registry_};
};

TEST_F(ModelCacheTest, SixCheckpointsWithMaxTwoKeepTwoModelsResident) {
  ASSERT_GT(runtime::resident_set_bytes(), 0) << "no VmRSS in /proc/self/status";
  size_t most = 0;
  int64_t one_model = 0;
  const int64_t growth = cycle(2, &most, &one_model);
  EXPECT_LE(most, 2u);
  EXPECT_GE(one_model, model_bytes_ / 2) << "loading a second checkpoint should show in the resident set";
  // The first prompt's model is in the base already: one more model plus a small constant for allocator
  // slack.
  EXPECT_LE(growth, one_model + (int64_t{24} << 20))
      << "resident set grew by " << growth / 1048576 << " MiB cycling six checkpoints of "
      << one_model / 1048576 << " MiB in RAM each with --max-loaded-models 2";
}

TEST_F(ModelCacheTest, WithoutABoundEveryCheckpointStays) {
  ASSERT_GT(runtime::resident_set_bytes(), 0) << "no VmRSS in /proc/self/status";
  size_t most = 0;
  int64_t one_model = 0;
  const int64_t growth = cycle(0, &most, &one_model);
  EXPECT_EQ(most, static_cast<size_t>(kCheckpoints));
  EXPECT_GT(growth, 3 * one_model) << "the measurement would not see models that stay";
}

}  // namespace
}  // namespace netdist::nodes
