// The image operation classes (image_ops_nodes.h) through the real registry: schemas against the pinned
// ComfyUI, values computed by hand from its formulas, bad input as a Status naming node and input.
#include <gtest/gtest.h>

#include <cmath>

#include "nodes/ops_test_util.h"

namespace netdist::nodes {
namespace {

using graph::Json;
using graph::NodeInputs;
using ops_testing::image_value;
using ops_testing::output;

class ImageOpsTest : public ::testing::Test {
 protected:
  ops_testing::OpsHarness h_{"image"};

  at::Tensor run_image(const std::string& cls, const NodeInputs& in) {
    auto r = h_.run(cls, in);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    if (!r.is_ok()) return {};
    auto im = output<ImageObject>(*r, 0);
    EXPECT_NE(im, nullptr);
    return im ? im->images : at::Tensor();
  }
  std::string error_of(const std::string& cls, const NodeInputs& in) {
    auto r = h_.run(cls, in);
    EXPECT_FALSE(r.is_ok());
    return r.is_ok() ? "" : r.status().message();
  }
  float blend(const std::string& mode, float a, float b, double f) {
    NodeInputs in;
    in.set("image1", image_value(at::full({1, 1, 1, 3}, a)));
    in.set("image2", image_value(at::full({1, 1, 1, 3}, b)));
    in.set("blend_factor", f);
    in.set("blend_mode", mode);
    at::Tensor t = run_image("ImageBlend", in);
    return t.defined() ? t[0][0][0][1].item<float>() : -1;
  }
};

TEST_F(ImageOpsTest, SchemasMatchComfyUI) {
  EXPECT_EQ(h_.info("ImageCrop")["display_name"], "Image Crop");
  EXPECT_EQ(h_.info("ImageCrop")["category"], "image/transform");
  EXPECT_EQ(h_.info("ImageCrop")["python_module"], "comfy_extras.nodes_images");
  EXPECT_EQ(h_.info("ImageBlend")["input"]["required"]["blend_mode"][0],
            Json::parse(R"(["normal", "multiply", "screen", "overlay", "soft_light", "difference"])"));
  EXPECT_EQ(h_.info("ImageBlend")["python_module"], "comfy_extras.nodes_post_processing");
  EXPECT_EQ(h_.info("ImageBlur")["input"]["required"]["blur_radius"][1],
            Json::parse(R"({"default": 1, "min": 1, "max": 31, "step": 1})"));
  EXPECT_EQ(h_.info("ImageBlur")["input"]["required"]["sigma"][1]["step"], 0.1);
  EXPECT_EQ(h_.info("ImageSharpen")["input"]["required"]["sigma"][1]["step"], 0.01);
  EXPECT_EQ(h_.info("ImageSharpen")["input"]["required"]["alpha"][1]["max"], 5.0);
  EXPECT_EQ(h_.info("EmptyImage")["input"]["required"]["color"][1],
            Json::parse(R"({"default": 0, "min": 0, "max": 16777215, "step": 1, "display": "color"})"));
  EXPECT_EQ(h_.info("ImagePadForOutpaint")["display_name"], "Pad Image for Outpainting");
  EXPECT_EQ(h_.info("ImagePadForOutpaint")["output"], Json::parse(R"(["IMAGE", "MASK"])"));
  EXPECT_EQ(h_.info("ImagePadForOutpaint")["input"]["required"]["feathering"][1]["default"], 40);
  EXPECT_EQ(h_.info("ImageInvert")["display_name"], "Invert Image");
}

TEST_F(ImageOpsTest, CropInvertEmpty) {
  NodeInputs crop;
  crop.set("image", image_value(at::arange(60, at::kFloat).reshape({1, 4, 5, 3})));
  crop.set("width", int64_t(2));
  crop.set("height", int64_t(2));
  crop.set("x", int64_t(9));  // clamped to the last column 4
  crop.set("y", int64_t(3));
  at::Tensor c = run_image("ImageCrop", crop);
  ASSERT_EQ(c.sizes(), (std::vector<int64_t>{1, 1, 1, 3}));
  EXPECT_EQ(c[0][0][0][0].item<float>(), (3 * 5 + 4) * 3);
  crop.set("image", image_value(at::zeros({1, 0, 5, 3})));
  EXPECT_NE(error_of("ImageCrop", crop).find("ImageCrop: input 'image'"), std::string::npos);

  NodeInputs inv;
  inv.set("image", image_value(at::full({1, 1, 1, 3}, 0.25f)));
  EXPECT_FLOAT_EQ(run_image("ImageInvert", inv)[0][0][0][2].item<float>(), 0.75f);

  NodeInputs empty;
  empty.set("width", int64_t(3));
  empty.set("height", int64_t(2));
  empty.set("batch_size", int64_t(2));
  empty.set("color", int64_t(0xFF8000));
  at::Tensor e = run_image("EmptyImage", empty);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{2, 2, 3, 3}));
  EXPECT_FLOAT_EQ(e[1][1][2][0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(e[1][1][2][1].item<float>(), static_cast<float>(128.0 / 255.0));
  EXPECT_FLOAT_EQ(e[1][1][2][2].item<float>(), 0.0f);
}

TEST_F(ImageOpsTest, BlendModes) {
  EXPECT_NEAR(blend("normal", 0.2f, 0.6f, 0.5), 0.4f, 1e-6);
  EXPECT_NEAR(blend("multiply", 0.2f, 0.6f, 1.0), 0.12f, 1e-6);
  EXPECT_NEAR(blend("screen", 0.2f, 0.6f, 1.0), 0.68f, 1e-6);
  EXPECT_NEAR(blend("overlay", 0.2f, 0.6f, 1.0), 0.24f, 1e-6);
  EXPECT_NEAR(blend("overlay", 0.7f, 0.6f, 1.0), 1 - 2 * 0.3f * 0.4f, 1e-6);
  // soft_light, img2 > 0.5: img1 + (2·img2 - 1)(g(img1) - img1), g(0.2) = ((16·0.2 - 12)·0.2 + 4)·0.2 = 0.448
  EXPECT_NEAR(blend("soft_light", 0.2f, 0.6f, 1.0), 0.2f + 0.2f * 0.248f, 1e-6);
  EXPECT_NEAR(blend("soft_light", 0.64f, 0.6f, 1.0), 0.64f + 0.2f * (0.8f - 0.64f), 1e-6);  // g = sqrt
  EXPECT_NEAR(blend("soft_light", 0.2f, 0.3f, 1.0), 0.2f - 0.4f * 0.2f * 0.8f, 1e-6);
  EXPECT_NEAR(blend("difference", 0.2f, 0.6f, 1.0), 0.0f, 1e-6);  // -0.4 clamped
  EXPECT_NEAR(blend("difference", 0.6f, 0.2f, 0.5), 0.5f, 1e-6);  // 0.3 + 0.2
  NodeInputs in;
  in.set("image1", image_value(at::full({1, 2, 2, 3}, 0.2f)));
  in.set("image2", image_value(at::full({1, 4, 4, 3}, 0.6f)));  // resized bicubic to 2×2
  in.set("blend_factor", 0.5);
  in.set("blend_mode", std::string("normal"));
  EXPECT_NEAR(run_image("ImageBlend", in)[0][1][1][0].item<float>(), 0.4f, 1e-5);
  in.set("image2", image_value(at::full({1, 2, 2, 4}, 0.6f)));
  EXPECT_NE(error_of("ImageBlend", in).find("ImageBlend: "), std::string::npos);
}

TEST_F(ImageOpsTest, BlurAndSharpenUseComfyUIsKernel) {
  const double e1 = std::exp(-0.5), e2 = std::exp(-1.0), sum = 1 + 4 * e1 + 4 * e2;  // linspace(-1, 1, 3)
  at::Tensor impulse = at::zeros({1, 5, 5, 1});
  impulse[0][2][2][0] = 1;
  NodeInputs blur;
  blur.set("image", image_value(impulse));
  blur.set("blur_radius", int64_t(1));
  blur.set("sigma", 1.0);
  at::Tensor b = run_image("ImageBlur", blur);
  ASSERT_EQ(b.sizes(), (std::vector<int64_t>{1, 5, 5, 1}));
  EXPECT_NEAR(b[0][2][2][0].item<float>(), 1 / sum, 1e-6);
  EXPECT_NEAR(b[0][1][2][0].item<float>(), e1 / sum, 1e-6);
  EXPECT_NEAR(b[0][1][1][0].item<float>(), e2 / sum, 1e-6);
  EXPECT_NEAR(b.sum().item<float>(), 1.0, 1e-5);
  blur.set("image", image_value(at::full({1, 3, 4, 3}, 0.3f)));  // reflect padding keeps a flat image flat
  EXPECT_NEAR((run_image("ImageBlur", blur) - 0.3).abs().max().item<float>(), 0, 1e-6);
  blur.set("blur_radius", int64_t(3));
  EXPECT_NE(error_of("ImageBlur", blur).find("ImageBlur: blur_radius 3"), std::string::npos);

  at::Tensor bump = at::full({1, 5, 5, 1}, 0.5f);
  bump[0][2][2][0] = 0.51f;
  NodeInputs sharpen;
  sharpen.set("image", image_value(bump));
  sharpen.set("sharpen_radius", int64_t(1));
  sharpen.set("sigma", 1.0);
  sharpen.set("alpha", 1.0);
  at::Tensor s = run_image("ImageSharpen", sharpen);
  // kernel = -10·g, centre = -10·g_c + 10 + 1: the flat part stays 0.5, the bump is amplified.
  EXPECT_NEAR(s[0][2][2][0].item<float>(), 0.5 + 0.01 * (11 - 10 / sum), 1e-5);
  EXPECT_NEAR(s[0][2][1][0].item<float>(), 0.5 - 0.01 * 10 * e1 / sum, 1e-5);
  EXPECT_NEAR(s[0][0][0][0].item<float>(), 0.5, 1e-5);
  sharpen.set("alpha", 5.0);
  bump[0][2][2][0] = 0.9f;
  sharpen.set("image", image_value(bump));
  EXPECT_EQ(run_image("ImageSharpen", sharpen)[0][2][2][0].item<float>(), 1.0f);  // clamped
}

TEST_F(ImageOpsTest, PadForOutpaintFeathersTowardsPaddedSides) {
  NodeInputs in;
  in.set("image", image_value(at::full({1, 6, 6, 3}, 0.2f)));
  in.set("left", int64_t(2));
  in.set("top", int64_t(0));
  in.set("right", int64_t(0));
  in.set("bottom", int64_t(1));
  in.set("feathering", int64_t(2));
  auto r = h_.run("ImagePadForOutpaint", in);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  at::Tensor im = output<ImageObject>(*r, 0)->images;
  at::Tensor m = output<MaskObject>(*r, 1)->mask;
  ASSERT_EQ(im.sizes(), (std::vector<int64_t>{1, 7, 8, 3}));
  ASSERT_EQ(m.sizes(), (std::vector<int64_t>{1, 7, 8}));
  EXPECT_FLOAT_EQ(im[0][0][0][0].item<float>(), 0.5f);
  EXPECT_FLOAT_EQ(im[0][0][2][0].item<float>(), 0.2f);
  EXPECT_FLOAT_EQ(im[0][6][4][0].item<float>(), 0.5f);
  EXPECT_FLOAT_EQ(m[0][0][1].item<float>(), 1.0f);   // padding
  EXPECT_FLOAT_EQ(m[0][6][5].item<float>(), 1.0f);   // padding below
  EXPECT_FLOAT_EQ(m[0][0][2].item<float>(), 1.0f);   // j = 0: d = 0 → ((2 - 0) / 2)²
  EXPECT_FLOAT_EQ(m[0][0][3].item<float>(), 0.25f);  // j = 1: d = 1 → (1 / 2)²
  EXPECT_FLOAT_EQ(m[0][0][5].item<float>(), 0.0f);   // far from padded sides (top is not padded)
  EXPECT_FLOAT_EQ(m[0][5][5].item<float>(), 0.25f);  // i = 5: bottom distance 6 - 5 = 1
  in.set("feathering", int64_t(3));                  // 2·3 is not < 6: no feathering
  r = h_.run("ImagePadForOutpaint", in);
  ASSERT_TRUE(r.is_ok());
  EXPECT_FLOAT_EQ(output<MaskObject>(*r, 1)->mask[0][0][2].item<float>(), 0.0f);
  in.set("image", image_value(at::zeros({6, 6, 3})));
  r = h_.run("ImagePadForOutpaint", in);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("ImagePadForOutpaint: input 'image'"), std::string::npos);
}

}  // namespace
}  // namespace netdist::nodes
