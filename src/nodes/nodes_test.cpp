// The nodes added for issue #5 through the real registry and executor on the embedded tiny model:
// schemas as ComfyUI declares them, whole graphs with ConditioningSetArea, LoraLoader, VAELoader,
// VAEDecodeTiled and the upscale nodes, and failures on purpose.
#include <gtest/gtest.h>

#include <filesystem>

#include <unistd.h>

#include "engine/runtime/tensor_io.h"
#include "graph/executor.h"
#include "graph/test_util.h"
#include "graph/validate.h"
#include "io/files.h"
#include "io/png.h"
#include "io/sha256.h"
#include "nodes/core_nodes.h"
#include "netdist/source_dir.h"

namespace netdist::nodes {
namespace {

namespace fs = std::filesystem;
using graph::Json;

std::string nodes_tiny_path() {
  return (fs::path(NETDIST_SOURCE_DIR) / "models" / "tiny-emoji.safetensors").string();
}

class NodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netdist_nodes_" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "models" / "loras" / "styles");
    fs::create_directories(dir_ / "models" / "vae");
    NodeEnvOptions o;
    o.models_dir = (dir_ / "models").string();
    o.output_dir = (dir_ / "output").string();
    o.temp_dir = (dir_ / "temp").string();
    o.input_dir = (dir_ / "input").string();
    o.default_checkpoint = nodes_tiny_path();
    env_ = std::make_shared<NodeEnv>(o);
    register_core_nodes(registry_, env_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Json input(const std::string& cls, const std::string& name) {
    return registry_.object_info()[cls]["input"]["required"][name];
  }

  graph::ExecutionOutcome run(const Json& prompt) {
    graph::ValidationResult v = graph::validate_prompt(prompt, registry_);
    EXPECT_TRUE(v.ok()) << v.error_body.dump();
    if (!v.ok()) return {};
    graph::testing::Recorder sink;
    std::atomic<bool> interrupt{false};
    return executor_.execute(*v.validated, "p", Json{{"client_id", "c"}}, sink, interrupt);
  }

  // Checkpoint → prompts → KSampler (2 steps, 128×128) → VAEDecode → SaveImage; `extra` adds or replaces
  // nodes.
  static Json graph_with(const Json& extra) {
    Json p = Json::parse(R"({
      "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-emoji.safetensors"}},
      "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red heart", "clip": ["1", 1]}},
      "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
      "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 128, "height": 128, "batch_size": 1}},
      "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 3, "steps": 2, "cfg": 5.0,
            "sampler_name": "euler", "scheduler": "normal", "positive": ["2", 0], "negative": ["3", 0],
            "latent_image": ["4", 0], "denoise": 1.0}},
      "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
      "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "t"}}
    })");
    for (auto it = extra.begin(); it != extra.end(); ++it) p[it.key()] = it.value();
    return p;
  }

  fs::path dir_;
  std::shared_ptr<NodeEnv> env_;
  graph::NodeRegistry registry_;
  graph::Executor executor_{registry_};
};

TEST_F(NodesTest, SchemasMatchComfyUI) {
  EXPECT_EQ(input("LoraLoader", "strength_model"),
            Json::parse(R"(["FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01,
                           "tooltip": "How strongly to modify the diffusion model. This value can be negative."}])"));
  EXPECT_EQ(registry_.object_info()["LoraLoader"]["output"], Json::parse(R"(["MODEL", "CLIP"])"));
  EXPECT_EQ(input("ConditioningSetArea", "width"),
            Json::parse(R"(["INT", {"default": 64, "min": 64, "max": 16384, "step": 8}])"));
  EXPECT_EQ(input("ConditioningSetArea", "strength"),
            Json::parse(R"(["FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}])"));
  EXPECT_EQ(input("LatentUpscale", "upscale_method")[0],
            Json::parse(R"(["nearest-exact", "bilinear", "area", "bicubic", "bislerp"])"));
  EXPECT_EQ(input("LatentUpscale", "width"),
            Json::parse(R"(["INT", {"default": 512, "min": 0, "max": 16384, "step": 8}])"));
  EXPECT_EQ(input("LatentUpscaleBy", "scale_by"),
            Json::parse(R"(["FLOAT", {"default": 1.5, "min": 0.01, "max": 8.0, "step": 0.01}])"));
  EXPECT_EQ(input("ImageScale", "upscale_method")[0],
            Json::parse(R"(["nearest-exact", "bilinear", "area", "bicubic", "lanczos"])"));
  EXPECT_EQ(input("ImageScale", "crop")[0], Json::parse(R"(["disabled", "center"])"));
  EXPECT_EQ(input("ImageScaleBy", "scale_by"),
            Json::parse(R"(["FLOAT", {"default": 1.0, "min": 0.01, "max": 8.0, "step": 0.01}])"));
  EXPECT_EQ(input("VAEDecodeTiled", "tile_size"),
            Json::parse(R"(["INT", {"default": 512, "min": 64, "max": 4096, "step": 32}])"));
  EXPECT_EQ(input("VAEDecodeTiled", "temporal_overlap")[1]["default"], 8);
  EXPECT_EQ(registry_.object_info()["VAEDecodeTiled"]["category"], "_for_testing");
  EXPECT_EQ(input("VAEEncodeTiled", "tile_size"),
            Json::parse(R"(["INT", {"default": 512, "min": 64, "max": 4096, "step": 64}])"));
  EXPECT_EQ(input("VAEEncodeTiled", "overlap"),
            Json::parse(R"(["INT", {"default": 64, "min": 0, "max": 4096, "step": 32}])"));
  EXPECT_EQ(input("VAEEncodeTiled", "temporal_size")[1]["tooltip"],
            "Only used for video VAEs: Amount of frames to encode at a time.");
  EXPECT_EQ(registry_.object_info()["VAEEncodeTiled"]["display_name"], "VAE Encode (Tiled)");
  EXPECT_EQ(registry_.object_info()["VAELoader"]["display_name"], "Load VAE");
}

TEST_F(NodesTest, LoraAndVaeFilesAreListedFromTheModelsFolders) {
  EXPECT_EQ(input("LoraLoader", "lora_name")[0], Json::array());
  ASSERT_TRUE(runtime::save_safetensors((dir_ / "models/loras/styles/b.safetensors").string(),
                                        {{"x.lora_up.weight", at::zeros({1, 1})}})
                  .is_ok());
  ASSERT_TRUE(runtime::save_safetensors((dir_ / "models/loras/a.safetensors").string(),
                                        {{"x.lora_up.weight", at::zeros({1, 1})}})
                  .is_ok());
  ASSERT_TRUE(runtime::save_safetensors((dir_ / "models/vae/v.safetensors").string(), {{"x", at::zeros({1})}})
                  .is_ok());
  EXPECT_EQ(input("LoraLoader", "lora_name")[0], Json::parse(R"(["a.safetensors", "styles/b.safetensors"])"));
  EXPECT_EQ(input("VAELoader", "vae_name")[0], Json::parse(R"(["v.safetensors"])"));
}

// A model linked into the folder is listed by its link's name (ComfyUI's os.walk), wherever the link points:
// workflows name it so. (std::filesystem::relative resolves links and once listed the target's path.)
TEST_F(NodesTest, LinkedModelFilesKeepTheLinksName) {
  fs::create_directories(dir_ / "elsewhere");
  ASSERT_TRUE(runtime::save_safetensors((dir_ / "elsewhere/real_lora.safetensors").string(),
                                        {{"x.lora_up.weight", at::zeros({1, 1})}})
                  .is_ok());
  fs::create_directories(dir_ / "models/loras/linked");
  fs::create_symlink(fs::absolute(dir_ / "elsewhere/real_lora.safetensors"), dir_ / "models/loras/style.safetensors");
  fs::create_directory_symlink(fs::absolute(dir_ / "elsewhere"), dir_ / "models/loras/linked/dir");
  EXPECT_EQ(input("LoraLoader", "lora_name")[0],
            Json::parse(R"(["linked/dir/real_lora.safetensors", "style.safetensors"])"));
}

// A coordinator lists its workers' checkpoints after its own, each once.
TEST_F(NodesTest, RemoteCheckpointsAreListedAfterLocalOnes) {
  EXPECT_EQ(input("CheckpointLoaderSimple", "ckpt_name")[0], Json::parse(R"(["tiny-emoji.safetensors"])"));
  env_->set_remote_checkpoints([] { return std::vector<std::string>{"a.safetensors", "tiny-emoji.safetensors"}; });
  EXPECT_EQ(input("CheckpointLoaderSimple", "ckpt_name")[0],
            Json::parse(R"(["tiny-emoji.safetensors", "a.safetensors"])"));
  EXPECT_EQ(env_->local_checkpoint_names(), std::vector<std::string>{"tiny-emoji.safetensors"});
}

// LoadImage's IS_CHANGED is the file's SHA-256 (as ComfyUI's): a file replaced under the same name is read
// again, not served from the cache, and the PNG metadata's prompt records the hash.
TEST_F(NodesTest, LoadImageRereadsAReplacedFileAndRecordsItsHash) {
  fs::create_directories(dir_ / "input");
  auto write_png = [&](uint8_t value) {
    io::Image8 im;
    im.width = im.height = 8;
    im.channels = 3;
    im.pixels.assign(8 * 8 * 3, value);
    auto bytes = io::encode_png(im, {}, 4);
    EXPECT_TRUE(bytes.is_ok());
    EXPECT_TRUE(io::write_file_atomic((dir_ / "input" / "photo.png").string(), *bytes).is_ok());
    return *bytes;
  };
  const Json p = Json::parse(R"({
    "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
    "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "copy", "images": ["1", 0]}}})");
  auto saved_pixel_and_hash = [&](const graph::ExecutionOutcome& out) -> std::pair<int, std::string> {
    EXPECT_TRUE(out.success) << out.status.to_string();
    if (!out.success) return {-1, ""};
    const std::string name = out.outputs["2"]["images"][0]["filename"].get<std::string>();
    auto bytes = io::read_file((dir_ / "output" / name).string());
    EXPECT_TRUE(bytes.is_ok());
    auto decoded = io::decode_png(*bytes, name);
    EXPECT_TRUE(decoded.is_ok());
    std::string prompt_text;
    for (const io::PngText& t : decoded->second) {
      if (t.key == "prompt") prompt_text = t.value;
    }
    Json shown = Json::parse(prompt_text, nullptr, false);
    EXPECT_TRUE(shown.is_object()) << prompt_text;
    const Json changed = shown.is_object() ? shown["1"].value("is_changed", Json()) : Json();
    return {decoded->first.pixels[0], changed.is_array() && changed.size() == 1 ? changed[0].get<std::string>() : ""};
  };
  const std::string dark = write_png(10);
  auto first = saved_pixel_and_hash(run(p));
  EXPECT_NEAR(first.first, 10, 1);
  EXPECT_EQ(first.second, io::sha256_hex(dark));
  const std::string light = write_png(200);
  auto second = saved_pixel_and_hash(run(p));
  EXPECT_NEAR(second.first, 200, 1) << "the replaced file was served from the cache";
  EXPECT_EQ(second.second, io::sha256_hex(light));
}

TEST_F(NodesTest, AreaUpscaleAndTiledDecodeGraphRuns) {
  Json p = graph_with(Json::parse(R"({
    "8": {"class_type": "CLIPTextEncode", "inputs": {"text": "a blue star", "clip": ["1", 1]}},
    "9": {"class_type": "ConditioningSetArea", "inputs": {"conditioning": ["8", 0], "width": 64, "height": 128,
          "x": 64, "y": 0, "strength": 0.8}},
    "10": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["2", 0], "conditioning_2": ["9", 0]}},
    "11": {"class_type": "LatentUpscale", "inputs": {"samples": ["5", 0], "upscale_method": "bislerp", "width": 0,
           "height": 160, "crop": "disabled"}},
    "12": {"class_type": "VAEDecodeTiled", "inputs": {"samples": ["11", 0], "vae": ["1", 2], "tile_size": 128,
           "overlap": 32, "temporal_size": 64, "temporal_overlap": 8}},
    "13": {"class_type": "ImageScaleBy", "inputs": {"image": ["12", 0], "upscale_method": "lanczos", "scale_by": 0.5}},
    "14": {"class_type": "SaveImage", "inputs": {"images": ["13", 0], "filename_prefix": "up"}}
  })"));
  p["5"]["inputs"]["positive"] = Json::parse(R"(["10", 0])");
  graph::ExecutionOutcome out = run(p);
  ASSERT_TRUE(out.status.is_ok()) << out.status.to_string();
  EXPECT_TRUE(fs::exists(dir_ / "output" / "t_00001_.png"));
  EXPECT_TRUE(fs::exists(dir_ / "output" / "up_00001_.png"));  // 160×160 decoded, halved by lanczos
}

TEST_F(NodesTest, LoraLoaderAndVaeLoaderGraphRuns) {
  auto all = runtime::load_safetensors(nodes_tiny_path());
  ASSERT_TRUE(all.is_ok());
  runtime::WeightMap vae;
  for (const auto& [name, t] : *all) {
    if (name.rfind("first_stage_model.", 0) == 0) vae[name] = t;
  }
  ASSERT_TRUE(runtime::save_safetensors((dir_ / "models/vae/tiny_vae.safetensors").string(), vae).is_ok());
  at::Tensor q = (*all)["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"];
  ASSERT_TRUE(runtime::save_safetensors(
                  (dir_ / "models/loras/style.safetensors").string(),
                  {{"lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_up.weight",
                    at::ones({q.size(0), 2}) * 0.01},
                   {"lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_down.weight",
                    at::ones({2, q.size(1)}) * 0.01}})
                  .is_ok());
  Json p = graph_with(Json::parse(R"({
    "8": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1], "lora_name": "style.safetensors",
          "strength_model": 0.7, "strength_clip": 1.0}},
    "9": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny_vae.safetensors"}}
  })"));
  p["5"]["inputs"]["model"] = Json::parse(R"(["8", 0])");
  p["2"]["inputs"]["clip"] = Json::parse(R"(["8", 1])");
  p["6"]["inputs"]["vae"] = Json::parse(R"(["9", 0])");
  graph::ExecutionOutcome out = run(p);
  ASSERT_TRUE(out.status.is_ok()) << out.status.to_string();
  EXPECT_TRUE(fs::exists(dir_ / "output" / "t_00001_.png"));
}

TEST_F(NodesTest, FailuresNameWhatIsWrong) {
  // A LoRA name that is not in models/loras fails validation, like any unknown combo value.
  Json p = graph_with(Json::parse(R"({
    "8": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1], "lora_name": "gone.safetensors",
          "strength_model": 1.0, "strength_clip": 1.0}}
  })"));
  p["5"]["inputs"]["model"] = Json::parse(R"(["8", 0])");
  graph::ValidationResult v = graph::validate_prompt(p, registry_);
  EXPECT_FALSE(v.ok());
  EXPECT_NE(v.error_body.dump().find("gone.safetensors"), std::string::npos) << v.error_body.dump();
  // A file that passes validation but is not a LoRA fails at run time naming the file.
  ASSERT_TRUE(runtime::save_safetensors((dir_ / "models/loras/bad.safetensors").string(),
                                        {{"something.else", at::zeros({2})}})
                  .is_ok());
  p["8"]["inputs"]["lora_name"] = "bad.safetensors";
  graph::ExecutionOutcome out = run(p);
  ASSERT_FALSE(out.status.is_ok());
  EXPECT_NE(out.status.to_string().find("bad.safetensors"), std::string::npos) << out.status.to_string();
  // An area outside the latent.
  Json a = graph_with(Json::parse(R"({
    "9": {"class_type": "ConditioningSetArea", "inputs": {"conditioning": ["2", 0], "width": 64, "height": 64,
          "x": 512, "y": 0, "strength": 1.0}}
  })"));
  a["5"]["inputs"]["positive"] = Json::parse(R"(["9", 0])");
  out = run(a);
  ASSERT_FALSE(out.status.is_ok());
  EXPECT_NE(out.status.to_string().find("outside"), std::string::npos) << out.status.to_string();
}

}  // namespace
}  // namespace netdist::nodes
