// The mask node classes (mask_nodes.h) through the real registry: schemas against the pinned ComfyUI's
// nodes_mask.py / nodes.py, values computed by hand from ComfyUI's formulas on small tensors, and bad input
// reported as a Status naming node and input.
#include <gtest/gtest.h>

#include "io/files.h"
#include "io/png.h"
#include "nodes/ops_test_util.h"

namespace netdist::nodes {
namespace {

using graph::Json;
using graph::NodeInputs;
using ops_testing::image_value;
using ops_testing::latent_value;
using ops_testing::mask_value;
using ops_testing::output;

class MaskNodesTest : public ::testing::Test {
 protected:
  ops_testing::OpsHarness h_{"mask"};

  at::Tensor run_mask(const std::string& cls, const NodeInputs& in) {
    auto r = h_.run(cls, in);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    if (!r.is_ok()) return {};
    auto m = output<MaskObject>(*r, 0);
    EXPECT_NE(m, nullptr);
    return m ? m->mask : at::Tensor();
  }
  std::string error_of(const std::string& cls, const NodeInputs& in) {
    auto r = h_.run(cls, in);
    EXPECT_FALSE(r.is_ok());
    return r.is_ok() ? "" : r.status().message();
  }
};

TEST_F(MaskNodesTest, SchemasMatchComfyUI) {
  Json load = h_.info("LoadImageMask");
  EXPECT_EQ(load["display_name"], "Load Image (as Mask)");
  EXPECT_EQ(load["category"], "mask");
  EXPECT_EQ(load["input"]["required"]["channel"][0], Json::parse(R"(["alpha", "red", "green", "blue"])"));
  EXPECT_EQ(load["input"]["required"]["image"][1]["image_upload"], true);
  EXPECT_EQ(load["output"], Json::parse(R"(["MASK"])"));
  Json grow = h_.info("GrowMask");
  EXPECT_EQ(grow["python_module"], "comfy_extras.nodes_mask");
  EXPECT_EQ(grow["input"]["required"]["expand"][1], Json::parse(R"({"default": 0, "min": -16384, "max": 16384, "step": 1})"));
  EXPECT_EQ(grow["input"]["required"]["tapered_corners"][1]["default"], true);
  EXPECT_EQ(h_.info("MaskComposite")["input"]["required"]["operation"][0],
            Json::parse(R"(["multiply", "add", "subtract", "and", "or", "xor"])"));
  EXPECT_EQ(h_.info("MaskToImage")["display_name"], "Convert Mask to Image");
  EXPECT_EQ(h_.info("ImageToMask")["display_name"], "Convert Image to Mask");
  EXPECT_EQ(h_.info("ImageToMask")["input"]["required"]["channel"][0], Json::parse(R"(["red", "green", "blue", "alpha"])"));
  EXPECT_EQ(h_.info("SolidMask")["input"]["required"]["value"][1],
            Json::parse(R"({"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01})"));
  Json lcm = h_.info("LatentCompositeMasked");
  EXPECT_EQ(lcm["category"], "latent");
  EXPECT_EQ(lcm["input"]["required"]["x"][1]["step"], 8);
  EXPECT_EQ(lcm["input"]["optional"]["mask"], Json::parse(R"(["MASK"])"));
  EXPECT_EQ(h_.info("ImageCompositeMasked")["input"]["required"]["y"][1]["step"], 1);
  EXPECT_EQ(h_.info("ImageCompositeMasked")["category"], "image");
  EXPECT_EQ(h_.info("FeatherMask")["input_order"]["required"], Json::parse(R"(["mask", "left", "top", "right", "bottom"])"));
}

TEST_F(MaskNodesTest, ConversionsSolidAndInvert) {
  NodeInputs in;
  in.set("mask", mask_value(at::tensor({0.25f, 0.5f, 0.75f, 1.0f}).reshape({1, 2, 2})));
  auto r = h_.run("MaskToImage", in);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  at::Tensor im = output<ImageObject>(*r, 0)->images;
  ASSERT_EQ(im.sizes(), (std::vector<int64_t>{1, 2, 2, 3}));
  EXPECT_FLOAT_EQ(im[0][1][0][2].item<float>(), 0.75f);

  NodeInputs to_mask;
  to_mask.set("image", image_value(at::arange(12, at::kFloat).reshape({1, 2, 2, 3}) / 12));
  to_mask.set("channel", std::string("green"));
  at::Tensor g = run_mask("ImageToMask", to_mask);
  ASSERT_EQ(g.sizes(), (std::vector<int64_t>{1, 2, 2}));
  EXPECT_FLOAT_EQ(g[0][1][1].item<float>(), 10.0f / 12);
  to_mask.set("channel", std::string("alpha"));
  EXPECT_NE(error_of("ImageToMask", to_mask).find("ImageToMask: channel 'alpha'"), std::string::npos);

  NodeInputs solid;
  solid.set("value", 0.3);
  solid.set("width", int64_t(3));
  solid.set("height", int64_t(2));
  at::Tensor s = run_mask("SolidMask", solid);
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_FLOAT_EQ(s[0][1][2].item<float>(), 0.3f);

  NodeInputs inv;
  inv.set("mask", mask_value(at::full({1, 2, 2}, 0.25f)));
  EXPECT_FLOAT_EQ(run_mask("InvertMask", inv)[0][0][1].item<float>(), 0.75f);
}

TEST_F(MaskNodesTest, GrowMaskDilatesAndErodesWithScipyFootprints) {
  at::Tensor dot = at::zeros({1, 5, 5});
  dot[0][2][2] = 1;
  NodeInputs in;
  in.set("mask", mask_value(dot));
  in.set("expand", int64_t(1));
  in.set("tapered_corners", true);
  EXPECT_EQ(run_mask("GrowMask", in).sum().item<float>(), 5);  // cross
  in.set("tapered_corners", false);
  EXPECT_EQ(run_mask("GrowMask", in).sum().item<float>(), 9);  // square
  in.set("expand", int64_t(2));
  in.set("tapered_corners", true);
  at::Tensor diamond = run_mask("GrowMask", in);
  EXPECT_EQ(diamond.sum().item<float>(), 13);
  EXPECT_EQ(diamond[0][0][2].item<float>(), 1);
  EXPECT_EQ(diamond[0][0][1].item<float>(), 0);

  at::Tensor block = at::zeros({1, 5, 5});
  block.slice(1, 1, 4).slice(2, 1, 4).fill_(0.8);
  in.set("mask", mask_value(block));
  in.set("expand", int64_t(-1));
  at::Tensor eroded = run_mask("GrowMask", in);
  EXPECT_NEAR(eroded.sum().item<float>(), 0.8, 1e-6);
  EXPECT_FLOAT_EQ(eroded[0][2][2].item<float>(), 0.8f);
  // Reflect mode at the border: a full mask stays full under erosion.
  in.set("mask", mask_value(at::ones({1, 3, 4})));
  in.set("tapered_corners", false);
  EXPECT_EQ(run_mask("GrowMask", in).sum().item<float>(), 12);
}

TEST_F(MaskNodesTest, FeatherMaskKeepsComfyUIsIndexing) {
  NodeInputs in;
  in.set("mask", mask_value(at::ones({1, 2, 4})));
  in.set("left", int64_t(2));
  in.set("top", int64_t(0));
  in.set("right", int64_t(2));
  in.set("bottom", int64_t(0));
  at::Tensor m = run_mask("FeatherMask", in);
  // left: col 0 · 1/2, col 1 · 1; right: output[:, :, -0] (col 0) · 1/2, col -1 (3) · 2/2.
  EXPECT_FLOAT_EQ(m[0][0][0].item<float>(), 0.25f);
  EXPECT_FLOAT_EQ(m[0][1][1].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(m[0][1][3].item<float>(), 1.0f);
  in.set("left", int64_t(0));
  in.set("right", int64_t(0));
  in.set("bottom", int64_t(5));  // clamped to the height 2: row 0 · 1/2, row 1 · 2/2
  m = run_mask("FeatherMask", in);
  EXPECT_FLOAT_EQ(m[0][0][2].item<float>(), 0.5f);
  EXPECT_FLOAT_EQ(m[0][1][2].item<float>(), 1.0f);
}

TEST_F(MaskNodesTest, MaskCompositeOperations) {
  NodeInputs in;
  in.set("destination", mask_value(at::full({1, 3, 3}, 0.6f)));
  in.set("source", mask_value(at::full({1, 2, 2}, 0.7f)));
  in.set("x", int64_t(2));
  in.set("y", int64_t(1));
  in.set("operation", std::string("add"));
  at::Tensor m = run_mask("MaskComposite", in);
  EXPECT_FLOAT_EQ(m[0][1][2].item<float>(), 1.0f);  // 1.3 clamped
  EXPECT_FLOAT_EQ(m[0][1][1].item<float>(), 0.6f);
  EXPECT_FLOAT_EQ(m[0][0][2].item<float>(), 0.6f);
  in.set("operation", std::string("multiply"));
  EXPECT_NEAR(run_mask("MaskComposite", in)[0][2][2].item<float>(), 0.42f, 1e-6);
  in.set("operation", std::string("subtract"));
  EXPECT_FLOAT_EQ(run_mask("MaskComposite", in)[0][2][2].item<float>(), 0.0f);
  in.set("source", mask_value(at::full({1, 2, 2}, 0.4f)));  // rounds to 0; destination 0.6 rounds to 1
  in.set("operation", std::string("and"));
  EXPECT_FLOAT_EQ(run_mask("MaskComposite", in)[0][2][2].item<float>(), 0.0f);
  in.set("operation", std::string("xor"));
  at::Tensor x = run_mask("MaskComposite", in);
  EXPECT_FLOAT_EQ(x[0][2][2].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(x[0][0][0].item<float>(), 0.6f);  // outside the source: unchanged
  in.set("source", mask_value(at::zeros({2, 2, 2})));
  in.set("destination", mask_value(at::zeros({3, 3, 3})));
  EXPECT_NE(error_of("MaskComposite", in).find("MaskComposite: input 'source' has 2 masks"), std::string::npos);
  in.set("source", mask_value(at::zeros({4})));
  EXPECT_NE(error_of("MaskComposite", in).find("input 'source'"), std::string::npos);
}

TEST_F(MaskNodesTest, LoadImageMaskReadsOneChannel) {
  io::Image8 im;
  im.width = 2;
  im.height = 1;
  im.channels = 4;
  im.pixels = {255, 10, 20, 51, 0, 30, 40, 255};
  auto png = io::encode_png(im, {}, 1);
  ASSERT_TRUE(png.is_ok());
  ASSERT_TRUE(io::write_file_atomic((h_.input_dir() / "m.png").string(), *png).is_ok());
  NodeInputs in;
  in.set("image", std::string("m.png"));
  in.set("channel", std::string("alpha"));
  at::Tensor a = run_mask("LoadImageMask", in);
  ASSERT_EQ(a.sizes(), (std::vector<int64_t>{1, 1, 2}));
  EXPECT_FLOAT_EQ(a[0][0][0].item<float>(), 1.0f - 51.0f / 255.0f);
  EXPECT_FLOAT_EQ(a[0][0][1].item<float>(), 0.0f);
  in.set("channel", std::string("green"));
  EXPECT_FLOAT_EQ(run_mask("LoadImageMask", in)[0][0][1].item<float>(), 30.0f / 255.0f);
  im.channels = 3;
  im.pixels = {1, 2, 3, 4, 5, 6};
  png = io::encode_png(im, {}, 1);
  ASSERT_TRUE(io::write_file_atomic((h_.input_dir() / "rgb.png").string(), *png).is_ok());
  in.set("image", std::string("rgb.png"));
  in.set("channel", std::string("alpha"));
  at::Tensor opaque = run_mask("LoadImageMask", in);
  ASSERT_EQ(opaque.sizes(), (std::vector<int64_t>{1, 1, 2}));
  EXPECT_EQ(opaque.abs().sum().item<float>(), 0);
  in.set("image", std::string("missing.png"));
  EXPECT_NE(error_of("LoadImageMask", in).find("LoadImageMask"), std::string::npos);
}

TEST_F(MaskNodesTest, CompositeMaskedLatentAndImage) {
  NodeInputs in;
  in.set("destination", latent_value(at::zeros({1, 4, 4, 4})));
  in.set("source", latent_value(at::ones({1, 4, 2, 2})));
  in.set("x", int64_t(8));
  in.set("y", int64_t(16));
  in.set("resize_source", false);
  auto r = h_.run("LatentCompositeMasked", in);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  at::Tensor s = output<LatentObject>(*r, 0)->samples;
  EXPECT_EQ(s.sum().item<float>(), 16);  // 4 channels × rows 2..3 × cols 1..2
  EXPECT_EQ(s[0][3][3][2].item<float>(), 1);
  EXPECT_EQ(s[0][3][1][2].item<float>(), 0);
  in.set("mask", mask_value(at::full({1, 1, 1}, 0.5f)));  // resized bilinearly to 2×2: 0.5 everywhere
  r = h_.run("LatentCompositeMasked", in);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_FLOAT_EQ(output<LatentObject>(*r, 0)->samples.sum().item<float>(), 8);

  NodeInputs im;
  im.set("destination", image_value(at::zeros({1, 3, 3, 3})));
  im.set("source", image_value(at::ones({1, 2, 2, 3})));
  im.set("x", int64_t(2));
  im.set("y", int64_t(2));
  im.set("resize_source", false);
  r = h_.run("ImageCompositeMasked", im);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  at::Tensor out = output<ImageObject>(*r, 0)->images;
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{1, 3, 3, 3}));
  EXPECT_EQ(out.sum().item<float>(), 3);
  EXPECT_EQ(out[0][2][2][1].item<float>(), 1);
  im.set("resize_source", true);
  r = h_.run("ImageCompositeMasked", im);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(output<ImageObject>(*r, 0)->images.sum().item<float>(), 3);  // resized to 3×3, pasted at (2, 2)

  in.set("destination", latent_value(at::zeros({4, 4, 4})));
  auto bad = h_.run("LatentCompositeMasked", in);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("LatentCompositeMasked: input 'destination'"), std::string::npos);
  im.set("source", image_value(at::ones({1, 2, 2, 4})));
  im.set("resize_source", false);
  bad = h_.run("ImageCompositeMasked", im);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("ImageCompositeMasked: "), std::string::npos);
}

}  // namespace
}  // namespace netdist::nodes
