// UpscaleModelLoader and ImageUpscaleWithModel through the real registry, validator and executor: the
// schemas as ComfyUI declares them, the model list from models_dir/upscale_models, a LoadImage → upscale →
// SaveImage graph equal to the engine API's result, and refused files reported as the node's error.
#include <gtest/gtest.h>

#include <filesystem>

#include <unistd.h>

#include "engine/runtime/tensor_io.h"
#include "engine/upscale/upscale_testing.h"
#include "graph/executor.h"
#include "graph/test_util.h"
#include "graph/validate.h"
#include "io/files.h"
#include "io/png.h"
#include "nodes/core_nodes.h"

namespace netdist::nodes {
namespace {

namespace fs = std::filesystem;
using graph::Json;

class UpscaleModelNodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netdist_upscale_nodes_" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "models" / "upscale_models" / "sub");
    fs::create_directories(dir_ / "input");
    NodeEnvOptions o;
    o.models_dir = (dir_ / "models").string();
    o.output_dir = (dir_ / "output").string();
    o.temp_dir = (dir_ / "temp").string();
    o.input_dir = (dir_ / "input").string();
    env_ = std::make_shared<NodeEnv>(o);
    register_core_nodes(registry_, env_);
    weights_ = upscale::testing::random_upscale_weights(upscale::testing::compact_config(4, 1, 2), 21);
    EXPECT_TRUE(runtime::save_safetensors(model_path("sub/tiny_x2.safetensors"), weights_).is_ok());
    EXPECT_TRUE(runtime::save_safetensors(model_path("unknown.safetensors"), {{"w", at::ones({2})}}).is_ok());
    EXPECT_TRUE(io::write_file_atomic(model_path("RealESRGAN_x4plus.pth"), "PK\x03\x04").is_ok());
    EXPECT_TRUE(io::write_file_atomic(model_path("notes.txt"), "not a model").is_ok());
    io::Image8 im;
    im.width = 12;
    im.height = 10;
    im.channels = 3;
    for (int i = 0; i < im.width * im.height * 3; ++i) im.pixels.push_back(static_cast<uint8_t>((i * 37) % 256));
    auto png = io::encode_png(im, {}, 1);
    EXPECT_TRUE(png.is_ok());
    EXPECT_TRUE(io::write_file_atomic((dir_ / "input" / "in.png").string(), *png).is_ok());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string model_path(const std::string& name) { return (dir_ / "models" / "upscale_models" / name).string(); }

  graph::ExecutionOutcome run(const std::string& model_name) {
    Json p = Json::parse(R"({
      "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
      "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": ""}},
      "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
      "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "up"}}})");
    p["2"]["inputs"]["model_name"] = model_name;
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
  runtime::WeightMap weights_;
};

TEST_F(UpscaleModelNodesTest, SchemasAndModelListMatchComfyUI) {
  const Json info = registry_.object_info();
  const Json& loader = info["UpscaleModelLoader"];
  EXPECT_EQ(loader["display_name"], "Load Upscale Model");
  EXPECT_EQ(loader["category"], "loaders");
  EXPECT_EQ(loader["output"], Json::parse(R"(["UPSCALE_MODEL"])"));
  EXPECT_EQ(loader["input"]["required"]["model_name"][0],
            Json::parse(R"(["RealESRGAN_x4plus.pth", "sub/tiny_x2.safetensors", "unknown.safetensors"])"));
  const Json& node = info["ImageUpscaleWithModel"];
  EXPECT_EQ(node["display_name"], "Upscale Image (using Model)");
  EXPECT_EQ(node["category"], "image/upscaling");
  EXPECT_EQ(node["input"]["required"]["upscale_model"], Json::parse(R"(["UPSCALE_MODEL"])"));
  EXPECT_EQ(node["input"]["required"]["image"], Json::parse(R"(["IMAGE"])"));
  EXPECT_EQ(node["output"], Json::parse(R"(["IMAGE"])"));
}

TEST_F(UpscaleModelNodesTest, GraphUpscalesAsTheEngineApiDoes) {
  graph::ExecutionOutcome out = run("sub/tiny_x2.safetensors");
  ASSERT_TRUE(out.success) << out.status.to_string();
  const std::string name = out.outputs["4"]["images"][0]["filename"].get<std::string>();
  auto bytes = io::read_file((dir_ / "output" / name).string());
  ASSERT_TRUE(bytes.is_ok());
  auto decoded = io::decode_png(*bytes, name);
  ASSERT_TRUE(decoded.is_ok());
  EXPECT_EQ(decoded->first.width, 24);
  EXPECT_EQ(decoded->first.height, 20);

  auto model = env_->load_upscale_model("sub/tiny_x2.safetensors");
  ASSERT_TRUE(model.is_ok());
  auto in_bytes = io::read_file((dir_ / "input" / "in.png").string());
  ASSERT_TRUE(in_bytes.is_ok());
  auto in = io::decode_png(*in_bytes, "in.png");
  ASSERT_TRUE(in.is_ok());
  at::Tensor image = at::tensor(std::vector<float>(in->first.pixels.begin(), in->first.pixels.end()))
                         .reshape({1, 10, 12, 3}) / 255.0f;
  auto want = upscale_image(**model, image, nullptr);
  ASSERT_TRUE(want.is_ok());
  const at::Tensor want8 = (*want * 255.0f).clamp(0, 255).to(at::kByte).flatten();
  const at::Tensor got8 = at::tensor(std::vector<int64_t>(decoded->first.pixels.begin(), decoded->first.pixels.end()));
  EXPECT_LE((got8 - want8.to(at::kLong)).abs().max().item<int64_t>(), 1);
}

TEST_F(UpscaleModelNodesTest, RefusedModelsFailTheNodeNamingTheFile) {
  for (const std::string name : {"unknown.safetensors", "RealESRGAN_x4plus.pth"}) {
    graph::ExecutionOutcome out = run(name);
    EXPECT_FALSE(out.success) << name;
    EXPECT_EQ(out.status.code(), StatusCode::kUnsupported) << out.status.to_string();
    EXPECT_NE(out.status.message().find("UpscaleModelLoader"), std::string::npos) << out.status.to_string();
    EXPECT_NE(out.status.message().find(name), std::string::npos) << out.status.to_string();
  }
  EXPECT_FALSE(env_->load_upscale_model("../escape.safetensors").is_ok());
  EXPECT_FALSE(env_->load_upscale_model("absent.safetensors").is_ok());
}

}  // namespace
}  // namespace netdist::nodes
