// The operation classes in whole prompts through the real validator and executor (as POST /prompt runs
// them): an outpainting-style chain of mask, image and latent nodes ending in SaveImage, LoadImageMask's
// validation of a missing file, and a node's bad input failing the prompt with the node named.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>

#include "graph/executor.h"
#include "graph/test_util.h"
#include "graph/validate.h"
#include "io/files.h"
#include "io/png.h"
#include "nodes/ops_test_util.h"

namespace netdist::nodes {
namespace {

using graph::Json;

class OpsGraphTest : public ::testing::Test {
 protected:
  ops_testing::OpsHarness h_{"graph"};
  graph::Executor executor_{h_.registry()};

  graph::ExecutionOutcome run(const Json& prompt) {
    graph::ValidationResult v = graph::validate_prompt(prompt, h_.registry());
    EXPECT_TRUE(v.ok()) << v.error_body.dump();
    if (!v.ok()) return {};
    graph::testing::Recorder sink;
    std::atomic<bool> interrupt{false};
    return executor_.execute(*v.validated, "p", Json{{"client_id", "c"}}, sink, interrupt);
  }
};

TEST_F(OpsGraphTest, MaskImageAndLatentChainRunsToSaveImage) {
  const Json prompt = Json::parse(R"({
    "1": {"class_type": "EmptyImage", "inputs": {"width": 24, "height": 16, "batch_size": 1, "color": 16711680}},
    "2": {"class_type": "ImagePadForOutpaint", "inputs": {"image": ["1", 0], "left": 8, "top": 0, "right": 0,
          "bottom": 0, "feathering": 4}},
    "3": {"class_type": "GrowMask", "inputs": {"mask": ["2", 1], "expand": 2, "tapered_corners": true}},
    "4": {"class_type": "FeatherMask", "inputs": {"mask": ["3", 0], "left": 2, "top": 0, "right": 0, "bottom": 0}},
    "5": {"class_type": "MaskToImage", "inputs": {"mask": ["4", 0]}},
    "6": {"class_type": "ImageBlend", "inputs": {"image1": ["2", 0], "image2": ["5", 0], "blend_factor": 0.5,
          "blend_mode": "screen"}},
    "7": {"class_type": "ImageBlur", "inputs": {"image": ["6", 0], "blur_radius": 2, "sigma": 1.0}},
    "8": {"class_type": "ImageCrop", "inputs": {"image": ["7", 0], "width": 16, "height": 16, "x": 4, "y": 0}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "ops"}}})");
  graph::ExecutionOutcome out = run(prompt);
  ASSERT_TRUE(out.success) << out.status.message();
  ASSERT_TRUE(out.outputs.contains("9"));
  EXPECT_EQ(out.outputs["9"]["images"].size(), 1u);
  EXPECT_EQ(out.executed.size(), 9u);
}

TEST_F(OpsGraphTest, LoadImageMaskValidatesTheFileAndBadInputNamesTheNode) {
  Json prompt = Json::parse(R"({
    "1": {"class_type": "LoadImageMask", "inputs": {"image": "absent.png", "channel": "red"}},
    "2": {"class_type": "MaskToImage", "inputs": {"mask": ["1", 0]}},
    "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}})");
  graph::ValidationResult v = graph::validate_prompt(prompt, h_.registry());
  ASSERT_FALSE(v.ok());
  const Json& error = v.error_body["node_errors"]["1"]["errors"][0];
  EXPECT_EQ(error["type"], "custom_validation_failed") << v.error_body.dump();
  EXPECT_EQ(error["details"].get<std::string>().rfind("image - Invalid image file: absent.png", 0), 0u);

  io::Image8 im;
  im.width = 3;
  im.height = 2;
  im.channels = 3;
  im.pixels.assign(18, 200);
  auto png = io::encode_png(im, {}, 1);
  ASSERT_TRUE(png.is_ok());
  ASSERT_TRUE(io::write_file_atomic((h_.input_dir() / "m.png").string(), *png).is_ok());
  prompt["1"]["inputs"]["image"] = "m.png";
  graph::ExecutionOutcome ok = run(prompt);
  EXPECT_TRUE(ok.success) << ok.status.message();

  // A 3-pixel-high mask cannot take a blur of radius 3 once turned into an image: the node is named.
  prompt["3"] = Json::parse(R"({"class_type": "ImageBlur", "inputs": {"image": ["2", 0], "blur_radius": 3, "sigma": 1.0}})");
  prompt["4"] = Json::parse(R"({"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}})");
  graph::ExecutionOutcome bad = run(prompt);
  EXPECT_FALSE(bad.success);
  EXPECT_NE(bad.status.message().find("ImageBlur: blur_radius 3"), std::string::npos) << bad.status.message();
}

}  // namespace
}  // namespace netdist::nodes
