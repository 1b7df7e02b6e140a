#include "nodes/upscale.h"

#include <gtest/gtest.h>

#include "nodes/upscale_nodes.h"

namespace netdist::nodes {
namespace {

at::Tensor t2x2() { return at::tensor({1.0f, 2.0f, 3.0f, 4.0f}).reshape({1, 1, 2, 2}); }

void expect_values(const at::Tensor& got, std::vector<float> want, int64_t h, int64_t w) {
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{1, 1, h, w}));
  at::Tensor expected = at::tensor(want).reshape({1, 1, h, w});
  EXPECT_TRUE(at::allclose(got, expected, 1e-6, 1e-6)) << got;
}

TEST(Upscale, NearestExactKnownValues) {
  auto out = common_upscale(t2x2(), 4, 4, "nearest-exact", "disabled");
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  expect_values(*out, {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}, 4, 4);
}

TEST(Upscale, BilinearKnownValues) {
  auto out = common_upscale(t2x2(), 4, 4, "bilinear", "disabled");
  ASSERT_TRUE(out.is_ok());
  expect_values(*out,
                {1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f, 2.5f, 2.75f, 3.25f, 3.5f, 3, 3.25f, 3.75f, 4},
                4, 4);
}

TEST(Upscale, AreaKnownValues) {
  at::Tensor x = at::arange(16, at::kFloat).reshape({1, 1, 4, 4});
  auto out = common_upscale(x, 2, 2, "area", "disabled");
  ASSERT_TRUE(out.is_ok());
  expect_values(*out, {2.5f, 4.5f, 10.5f, 12.5f}, 2, 2);
}

TEST(Upscale, BicubicShape) {
  auto out = common_upscale(at::rand({2, 4, 3, 5}), 7, 6, "bicubic", "disabled");
  ASSERT_TRUE(out.is_ok());
  EXPECT_EQ(out->sizes(), (std::vector<int64_t>{2, 4, 6, 7}));
}

TEST(Upscale, CenterCropTrimsToTheTargetAspect) {
  at::Tensor x = at::arange(32, at::kFloat).reshape({1, 1, 4, 8});
  auto out = common_upscale(x, 4, 4, "nearest-exact", "center");
  ASSERT_TRUE(out.is_ok());
  EXPECT_TRUE(at::equal(*out, x.narrow(3, 2, 4))) << *out;
  at::Tensor tall = at::arange(32, at::kFloat).reshape({1, 1, 8, 4});
  auto out2 = common_upscale(tall, 4, 4, "nearest-exact", "center");
  ASSERT_TRUE(out2.is_ok());
  EXPECT_TRUE(at::equal(*out2, tall.narrow(2, 2, 4)));
}

TEST(Upscale, BislerpKeepsConstantsAndShapes) {
  at::Tensor x = at::ones({1, 4, 3, 3}) * 0.5;
  at::Tensor out = bislerp(x, 6, 5);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 4, 5, 6}));
  EXPECT_TRUE(at::allclose(out, at::ones({1, 4, 5, 6}) * 0.5, 1e-5, 1e-5));
  at::Tensor r = at::randn({2, 4, 4, 4});
  at::Tensor same = bislerp(r, 4, 4);
  EXPECT_TRUE(at::allclose(same, r, 1e-5, 1e-5));
}

TEST(Upscale, LanczosMatchesPilFixedPoint) {
  // Two pixels 0 and 255 down to one: both taps weigh exactly 0.5 → (2^21 + 255·2^21) >> 22 = 128.
  at::Tensor x = at::tensor({0.0f, 1.0f}).reshape({1, 1, 1, 2});
  at::Tensor out = lanczos(x, 1, 1);
  EXPECT_FLOAT_EQ(out.item<float>(), 128.0f / 255.0f);
  // Same size: only the uint8 round trip (truncation of 255·x).
  at::Tensor y = at::tensor({0.5f, 0.25f, 1.0f, 0.0f}).reshape({1, 1, 2, 2});
  at::Tensor same = lanczos(y, 2, 2);
  EXPECT_TRUE(at::allclose(same, at::tensor({127.0f, 63.0f, 255.0f, 0.0f}).reshape({1, 1, 2, 2}) / 255.0f));
  // Upscaling a constant image keeps it.
  at::Tensor c = at::full({1, 3, 5, 7}, 200.0f / 255.0f);
  EXPECT_TRUE(at::allclose(lanczos(c, 13, 11), at::full({1, 3, 11, 13}, 200.0f / 255.0f)));
}

// Golden values from PIL 9.4 (Image.fromarray(uint8 HWC).resize((w, h), LANCZOS)) for a 7×5 RGB image:
// one resize widens and shortens, the other narrows and heightens.
TEST(Upscale, LanczosMatchesPilGolden) {
  const std::vector<int> in = {0,   11,  22,  33,  44,  55,  66,  37,  61,  85,  109, 133, 157, 181, 74,
                               111, 148, 185, 222, 3,   40,  111, 161, 211, 5,   55,  105, 155, 148, 211,
                               18,  81,  144, 207, 14,  71,  82,  93,  104, 115, 126, 137, 108, 132, 156,
                               180, 204, 228, 252, 145, 182, 219, 0,   37,  74,  111, 182, 232, 26,  76,
                               126, 176, 226, 219, 26,  89,  152, 215, 22,  85,  142, 153, 164, 175, 186,
                               197, 208, 179, 203, 227, 251, 19,  43,  67,  216, 253, 34,  71,  108, 145,
                               182, 253, 47,  97,  147, 197, 247, 41,  34,  97,  160, 223, 30,  93,  156};
  const std::vector<int> wide = {
      5,   9,   19,  27,  33,  36,  41,  59,  87,  101, 103, 48,  60,  81,  95,  121, 161, 197, 168,
      100, 100, 126, 95,  108, 153, 208, 161, 76,  105, 108, 46,  71,  111, 133, 181, 199, 99,  32,
      49,  76,  149, 205, 120, 43,  75,  82,  89,  90,  108, 136, 147, 151, 160, 169, 175, 120, 124,
      154, 203, 176, 109, 117, 147, 159, 181, 193, 159, 203, 226, 145, 56,  24,  43,  86,  123, 161,
      177, 228, 158, 56,  42,  85,  149, 216, 176, 71,  86,  136, 147, 146, 156, 182, 208, 207, 167,
      146, 159, 167, 168, 182, 221, 243, 170, 159, 180, 85,  20,  53,  101, 124, 251, 212, 113, 55,
      52,  95,  150, 211, 234, 155, 88,  76,  67,  73,  126, 204, 220, 115, 64,  121, 132, 116};
  const std::vector<int> tall = {
      3,   27,  43,  17,  47,  96,  47,  95,  161, 73,  166, 129, 99,  185, 58,  140, 131, 67,  162, 74,  112,
      152, 83,  126, 139, 102, 129, 75,  91,  112, 86,  132, 172, 115, 178, 237, 158, 146, 163, 186, 75,  70,
      194, 54,  134, 163, 84,  192, 121, 122, 129, 98,  144, 73,  141, 171, 225, 166, 184, 147, 205, 183, 44,
      222, 121, 61,  198, 71,  157, 160, 102, 190, 119, 153, 159, 96,  154, 116, 91,  145, 89};
  auto to_tensor = [](const std::vector<int>& v, int64_t h, int64_t w, float offset) {
    std::vector<float> f;
    for (int x : v) f.push_back((static_cast<float>(x) + offset) / 255.0f);
    return at::tensor(f).reshape({1, 3, h, w});
  };
  at::Tensor x = to_tensor(in, 5, 7, 0.5f);  // truncation of 255·x gives back the integers
  EXPECT_TRUE(at::equal(lanczos(x, 11, 4), to_tensor(wide, 4, 11, 0.0f)));
  EXPECT_TRUE(at::equal(lanczos(x, 3, 9), to_tensor(tall, 9, 3, 0.0f)));
}

TEST(Upscale, FailurePaths) {
  EXPECT_FALSE(common_upscale(t2x2(), 4, 4, "nearest", "disabled").is_ok());
  EXPECT_FALSE(common_upscale(t2x2(), 4, 4, "bilinear", "left").is_ok());
  EXPECT_FALSE(common_upscale(t2x2(), 0, 4, "bilinear", "disabled").is_ok());
  auto bad = common_upscale(t2x2(), 4, 4, "lanczoz", "disabled");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("lanczoz"), std::string::npos);
}

TEST(Upscale, LatentUpscaleSizeFollowsComfyUI) {
  LatentSize s = latent_upscale_size(8, 12, 0, 128);  // 64×96 px → height 128, width round(12·128/8) = 192
  EXPECT_EQ(s.width, 24);
  EXPECT_EQ(s.height, 16);
  s = latent_upscale_size(8, 8, 16, 300);  // each side at least 64 px; 300 // 8
  EXPECT_EQ(s.width, 8);
  EXPECT_EQ(s.height, 37);
  EXPECT_EQ(py_round(2.5), 2);
  EXPECT_EQ(py_round(3.5), 4);
}

}  // namespace
}  // namespace netdist::nodes
