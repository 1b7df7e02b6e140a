// UltimateSDUpscaleNoUpscale through the real registry and executor on the embedded tiny model: its
// /object_info entry as the custom node declares it, a 256² image redrawn in 64² tiles (padding 16) for both
// redraw modes and every seam-fix mode — each run completes, changes the image and differs from the other
// modes; two of them give the same bytes when run again — ConditioningSetArea cropped per tile, and bad
// settings failing with the node and the input named.
#include <gtest/gtest.h>

#include <filesystem>

#include <unistd.h>

#include "engine/runtime/tensor_io.h"
#include "engine/upscale/upscale_testing.h"
#include "graph/executor.h"
#include "graph/test_util.h"
#include "graph/validate.h"
#include "netdist/source_dir.h"
#include "nodes/core_nodes.h"
#include "nodes/node_types.h"
#include "nodes/node_util.h"
#include "nodes/usdu_nodes.h"

namespace netdist::nodes {
namespace {

namespace fs = std::filesystem;
using graph::Json;

class UsduNodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netdist_usdu_" + std::to_string(::getpid()));
    fs::create_directories(dir_ / "models");
    NodeEnvOptions o;
    o.models_dir = (dir_ / "models").string();
    o.output_dir = (dir_ / "output").string();
    o.temp_dir = (dir_ / "temp").string();
    o.input_dir = (dir_ / "input").string();
    o.default_checkpoint = (fs::path(NETDIST_SOURCE_DIR) / "models" / "tiny-emoji.safetensors").string();
    env_ = std::make_shared<NodeEnv>(o);
    register_core_nodes(registry_, env_);
    add_fn_node(registry_, make_schema("TestPattern", "Pattern", "test", {}, {"IMAGE"}),
                [](graph::NodeContext&, const graph::NodeInputs&) -> Result<std::vector<graph::Value>> {
                  auto out = std::make_shared<ImageObject>();
                  out->images = image_input();
                  return std::vector<graph::Value>{object(out)};
                });
    graph::NodeSchema probe =
        make_schema("TestProbe", "Probe", "test", {graph::link_input("image", "IMAGE")}, {});
    probe.output_node = true;
    add_fn_node(
        registry_, probe,
        [this](graph::NodeContext&, const graph::NodeInputs& in) -> Result<std::vector<graph::Value>> {
          ND_ASSIGN_OR_RETURN(auto image, need<ImageObject>(in, "image"));
          image_ = image->images;
          return std::vector<graph::Value>{};
        });
  }
  void TearDown() override { fs::remove_all(dir_); }

  static Json prompt(const std::string& mode, const std::string& seam_fix) {
    Json p = Json::parse(R"({
      "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-emoji.safetensors"}},
      "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red heart", "clip": ["1", 1]}},
      "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
      "4": {"class_type": "TestPattern", "inputs": {}},
      "5": {"class_type": "UltimateSDUpscaleNoUpscale", "inputs": {"upscaled_image": ["4", 0], "model": ["1", 0],
            "positive": ["2", 0], "negative": ["3", 0], "vae": ["1", 2], "seed": 7, "steps": 1, "cfg": 5.0,
            "sampler_name": "euler", "scheduler": "normal", "denoise": 0.4, "mode_type": "Linear",
            "tile_width": 64, "tile_height": 64, "mask_blur": 8, "tile_padding": 16, "seam_fix_mode": "None",
            "seam_fix_denoise": 1.0, "seam_fix_width": 32, "seam_fix_mask_blur": 8, "seam_fix_padding": 16,
            "force_uniform_tiles": true, "tiled_decode": false, "batch_size": 1}},
      "6": {"class_type": "TestProbe", "inputs": {"image": ["5", 0]}}
    })");
    p["5"]["inputs"]["mode_type"] = mode;
    p["5"]["inputs"]["seam_fix_mode"] = seam_fix;
    return p;
  }

  // TestPattern's image.
  static at::Tensor image_input() {
    at::Tensor y = at::arange(256, at::kFloat).reshape({1, 256, 1, 1});
    at::Tensor x = at::arange(256, at::kFloat).reshape({1, 1, 256, 1});
    at::Tensor c = at::arange(3, at::kFloat).reshape({1, 1, 1, 3});
    return at::remainder(x * 3 + y * 5 + c * 70 + x * y / 64, 256) / 255.0;
  }

  graph::ExecutionOutcome run(const Json& p) {
    graph::ValidationResult v = graph::validate_prompt(p, registry_);
    EXPECT_TRUE(v.ok()) << v.error_body.dump();
    if (!v.ok()) return {};
    graph::Executor executor(registry_);
    graph::testing::Recorder sink;
    std::atomic<bool> interrupt{false};
    return executor.execute(*v.validated, "p", Json{{"client_id", "c"}}, sink, interrupt);
  }

  fs::path dir_;
  std::shared_ptr<NodeEnv> env_;
  graph::NodeRegistry registry_;
  at::Tensor image_;
};

TEST_F(UsduNodesTest, ObjectInfoIsTheCustomNodes) {
  const Json info = registry_.object_info()["UltimateSDUpscaleNoUpscale"];
  EXPECT_EQ(info["display_name"], "Ultimate SD Upscale (No Upscale)");
  EXPECT_EQ(info["category"], "image/upscaling");
  EXPECT_EQ(info["python_module"], "custom_nodes.ComfyUI_UltimateSDUpscale");
  std::vector<std::string> names;
  for (const auto& n : info["input_order"]["required"]) names.push_back(n.get<std::string>());
  const std::vector<std::string> want = {"upscaled_image",
                                         "model",
                                         "positive",
                                         "negative",
                                         "vae",
                                         "seed",
                                         "steps",
                                         "cfg",
                                         "sampler_name",
                                         "scheduler",
                                         "denoise",
                                         "mode_type",
                                         "tile_width",
                                         "tile_height",
                                         "mask_blur",
                                         "tile_padding",
                                         "seam_fix_mode",
                                         "seam_fix_denoise",
                                         "seam_fix_width",
                                         "seam_fix_mask_blur",
                                         "seam_fix_padding",
                                         "force_uniform_tiles",
                                         "tiled_decode",
                                         "batch_size"};
  EXPECT_EQ(names, want);
  const Json req = info["input"]["required"];
  EXPECT_EQ(req["mode_type"][0], Json::parse(R"(["Linear", "Chess", "None"])"));
  EXPECT_EQ(req["seam_fix_mode"][0],
            Json::parse(R"(["None", "Band Pass", "Half Tile", "Half Tile + Intersections"])"));
  EXPECT_EQ(req["denoise"][1]["default"], 0.2);
  EXPECT_EQ(req["tile_width"][1]["max"], 8192);
  EXPECT_EQ(req["seed"][1]["max"], Json(uint64_t(0xffffffffffffffffULL)));
  EXPECT_EQ(req["force_uniform_tiles"][1]["default"], true);
  EXPECT_EQ(info["output"], Json::parse(R"(["IMAGE"])"));
  // UltimateSDUpscale: `image`, upscale_by after vae, upscale_model after denoise.
  const Json full = registry_.object_info()["UltimateSDUpscale"];
  std::vector<std::string> full_names;
  for (const auto& n : full["input_order"]["required"]) full_names.push_back(n.get<std::string>());
  ASSERT_EQ(full_names.size(), want.size() + 2);
  EXPECT_EQ(full_names[0], "image");
  EXPECT_EQ(full_names[5], "upscale_by");
  EXPECT_EQ(full_names[12], "upscale_model");
  EXPECT_EQ(full["input"]["required"]["upscale_by"][1]["default"], 2);
  EXPECT_EQ(full["input"]["required"]["upscale_model"],
            Json::parse(R"(["UPSCALE_MODEL", {"tooltip": "The upscaler model for upscaling the image."}])"));
}

TEST_F(UsduNodesTest, EveryModeRunsAndIsDeterministic) {
  std::vector<at::Tensor> results;
  for (const std::string mode : {"Linear", "Chess"}) {
    for (const std::string fix : {"None", "Band Pass", "Half Tile", "Half Tile + Intersections"}) {
      graph::ExecutionOutcome out = run(prompt(mode, fix));
      ASSERT_TRUE(out.success) << mode << " / " << fix << ": " << out.status.to_string();
      ASSERT_TRUE(image_.defined());
      EXPECT_EQ(image_.sizes(), (std::vector<int64_t>{1, 256, 256, 3}));
      const at::Tensor first = image_;
      EXPECT_FALSE(at::equal(first, image_input())) << mode << " / " << fix << " changed nothing";
      if ((mode == "Chess" && fix == "Half Tile + Intersections") ||
          (mode == "Linear" && fix == "Band Pass")) {
        image_ = at::Tensor();
        out = run(prompt(mode, fix));
        ASSERT_TRUE(out.success) << out.status.to_string();
        EXPECT_TRUE(at::equal(first, image_)) << mode << " / " << fix << " differs between two runs";
      }
      for (const at::Tensor& earlier : results)
        EXPECT_FALSE(at::equal(first, earlier)) << mode << " / " << fix;
      results.push_back(first);
    }
  }
}

// UltimateSDUpscale with a ×2 upscale model and upscale_by 2 equals UltimateSDUpscaleNoUpscale given
// ImageUpscaleWithModel's output: the model runs once, the canvas is the model's output size (no resize), and
// both classes then redraw the same 8-bit picture (tiny random-weight SRVGGNetCompact ×2, 128² tiles).
TEST_F(UsduNodesTest, WithAnUpscaleModelItEqualsNoUpscaleAfterImageUpscaleWithModel) {
  fs::create_directories(dir_ / "models" / "upscale_models");
  ASSERT_TRUE(runtime::save_safetensors(
                  (dir_ / "models" / "upscale_models" / "tiny_x2.safetensors").string(),
                  upscale::testing::random_upscale_weights(upscale::testing::compact_config(4, 1, 2), 5))
                  .is_ok());
  Json no_upscale = prompt("Chess", "None");
  no_upscale["7"] = Json::parse(R"({"class_type": "UpscaleModelLoader", "inputs": {"model_name": "tiny_x2.safetensors"}})");
  no_upscale["8"] = Json::parse(
      R"({"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["7", 0], "image": ["4", 0]}})");
  Json& n = no_upscale["5"]["inputs"];
  n["upscaled_image"] = Json::array({"8", 0});
  n["tile_width"] = 128;
  n["tile_height"] = 128;
  graph::ExecutionOutcome out = run(no_upscale);
  ASSERT_TRUE(out.success) << out.status.to_string();
  const at::Tensor expected = image_;
  ASSERT_EQ(expected.sizes(), (std::vector<int64_t>{1, 512, 512, 3}));

  Json with_model = no_upscale;
  Json& w = with_model["5"];
  w["class_type"] = "UltimateSDUpscale";
  w["inputs"].erase("upscaled_image");
  w["inputs"]["image"] = Json::array({"4", 0});
  w["inputs"]["upscale_model"] = Json::array({"7", 0});
  w["inputs"]["upscale_by"] = 2.0;
  with_model.erase("8");
  image_ = at::Tensor();
  out = run(with_model);
  ASSERT_TRUE(out.success) << out.status.to_string();
  ASSERT_TRUE(image_.defined());
  EXPECT_TRUE(at::equal(expected, image_)) << "max |diff| " << (expected - image_).abs().max().item<float>();
}

TEST_F(UsduNodesTest, BadSettingsNameTheNodeAndInput) {
  Json p = prompt("Linear", "Band Pass");
  p["5"]["inputs"]["seam_fix_width"] = 0;
  graph::ExecutionOutcome out = run(p);
  ASSERT_FALSE(out.success);
  EXPECT_NE(out.status.to_string().find("UltimateSDUpscaleNoUpscale"), std::string::npos)
      << out.status.to_string();
  EXPECT_NE(out.status.to_string().find("seam_fix_width"), std::string::npos) << out.status.to_string();
  p = prompt("Linear", "None");
  p["5"]["inputs"]["batch_size"] = 2;
  p["5"]["inputs"]["force_uniform_tiles"] = false;
  out = run(p);
  ASSERT_FALSE(out.success);
  EXPECT_NE(out.status.to_string().find("force_uniform_tiles"), std::string::npos) << out.status.to_string();
  p = prompt("Spiral", "None");
  EXPECT_FALSE(graph::validate_prompt(p, registry_).ok());
}

TEST(UsduConditioning, AreasAreCroppedToTheTile) {
  Conditioning c(2);
  c[0].area = std::array<int, 4>{64, 64, 0, 0};  // h, w, y, x in pixels: the top-left 64²
  c[0].strength = 0.5f;
  c[1].area = std::array<int, 4>{32, 32, 200, 200};  // far from the tile
  c[1].strength = 0.7f;
  const Conditioning out = usdu_crop_conditioning(c, PilBox{48, 16, 144, 112}, 256, 256, 256, 256);
  ASSERT_TRUE(out[0].area.has_value());
  // Intersection (48, 16)–(64, 64) → tile origin: x 0, y 0, w 16, h 48.
  EXPECT_EQ(*out[0].area, (std::array<int, 4>{48, 16, 0, 0}));
  EXPECT_FLOAT_EQ(out[0].strength, 0.5f);
  EXPECT_FALSE(out[1].area.has_value());  // crop_area deletes "area" and "strength"
  EXPECT_FLOAT_EQ(out[1].strength, 1.0f);
}

}  // namespace
}  // namespace netdist::nodes
