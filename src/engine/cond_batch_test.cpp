#include "engine/cond_batch.h"

#include <gtest/gtest.h>

namespace netdist::cond {
namespace {

// A toy denoiser: every row predicts the constant its context carries at [0, 0, 0].
struct Toy {
  std::vector<std::vector<int64_t>> calls;  // x shapes, one per model call
  ModelFn fn() {
    return [this](const at::Tensor& x, const at::Tensor&, const at::Tensor& context, const at::Tensor&) {
      calls.push_back(x.sizes().vec());
      return at::zeros_like(x) + context.select(2, 0).select(1, 0).view({-1, 1, 1, 1});
    };
  }
};

CondRow row(float value, float strength = 1.0f, std::optional<std::array<int64_t, 4>> area = std::nullopt,
            int64_t length = 77) {
  CondRow r;
  r.context = at::full({1, length, 8}, value);
  r.strength = strength;
  r.area = area;
  return r;
}

TEST(CondBatch, FullEntriesAreAStrengthWeightedMean) {
  Toy toy;
  std::vector<CondRow> pos = {row(1.0f, 1.0f), row(4.0f, 2.0f)};
  std::vector<CondRow> neg = {row(-1.0f)};
  at::Tensor x = at::zeros({2, 4, 16, 16});
  auto out = calc_cond_batch(toy.fn(), {&pos, &neg}, x, at::ones({2}));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_NEAR(out[0][1][2][3][4].item<float>(), 3.0f, 1e-6);  // (1·1 + 4·2) / 3
  EXPECT_NEAR(out[1][0][0][0][0].item<float>(), -1.0f, 1e-6);
  ASSERT_EQ(toy.calls.size(), 1u);  // one batched call of 3 entries × 2 rows
  EXPECT_EQ(toy.calls[0], (std::vector<int64_t>{6, 4, 16, 16}));
}

// A 16×16-cell latent, one full entry (1) and one area entry (5) over rows 8..15, columns 0..7: the area
// starts inside (y feathered over its first 8 rows) and ends inside on x (last 8 columns feathered), so the
// area weight at local (r, c) is (r+1)/8 · (8−c)/8, and the blend is (1 + 5m) / (1 + m).
TEST(CondBatch, AreaBlendMatchesHandComputedValues) {
  Toy toy;
  std::vector<CondRow> pos = {row(1.0f), row(5.0f, 1.0f, std::array<int64_t, 4>{8, 8, 8, 0})};
  at::Tensor x = at::zeros({1, 4, 16, 16});
  auto out = calc_cond_batch(toy.fn(), {&pos}, x, at::ones({1}));
  at::Tensor o = out[0][0][0];
  EXPECT_NEAR(o[0][0].item<float>(), 1.0f, 1e-6);  // outside the area
  EXPECT_NEAR(o[7][15].item<float>(), 1.0f, 1e-6);
  EXPECT_NEAR(o[15][0].item<float>(), 3.0f, 1e-6);          // m = 1
  EXPECT_NEAR(o[8][0].item<float>(), 13.0f / 9.0f, 1e-6);   // m = 1/8
  EXPECT_NEAR(o[11][4].item<float>(), 1.8f, 1e-6);          // m = 4/8 · 4/8
  EXPECT_NEAR(o[15][7].item<float>(), 13.0f / 9.0f, 1e-6);  // m = 1 · 1/8
  // The full entry and the 8×8 area entry have different input sizes: two model calls.
  ASSERT_EQ(toy.calls.size(), 2u);
  EXPECT_EQ(toy.calls[0], (std::vector<int64_t>{1, 4, 16, 16}));
  EXPECT_EQ(toy.calls[1], (std::vector<int64_t>{1, 4, 8, 8}));
}

TEST(CondBatch, AreaMultFeathersOnlyInnerEdgesAndScalesByStrength) {
  CondRow r = row(0.0f, 0.5f, std::array<int64_t, 4>{8, 16, 0, 0});
  at::Tensor m = area_mult(r, 16, 16);  // top and left/right are latent edges; bottom is inner
  ASSERT_EQ(m.sizes(), (std::vector<int64_t>{1, 1, 8, 16}));
  EXPECT_FLOAT_EQ(m[0][0][0][0].item<float>(), 0.5f);
  EXPECT_FLOAT_EQ(m[0][0][7][5].item<float>(), 0.5f / 8);
  EXPECT_FLOAT_EQ(m[0][0][6][15].item<float>(), 0.5f * 2 / 8);
  // An area larger than the latent is clamped to it.
  CondRow big = row(0.0f, 1.0f, std::array<int64_t, 4>{40, 40, 8, 8});
  EXPECT_EQ(area_mult(big, 16, 16).sizes(), (std::vector<int64_t>{1, 1, 8, 8}));
}

TEST(CondBatch, OppositeAreaCopiesTheAreaWithTheOtherListsContext) {
  std::vector<CondRow> pos = {row(1.0f), row(5.0f, 0.7f, std::array<int64_t, 4>{8, 8, 8, 0})};
  std::vector<CondRow> neg = {row(-1.0f)};
  add_opposite_areas(pos, neg);
  ASSERT_EQ(pos.size(), 2u);
  ASSERT_EQ(neg.size(), 2u);
  ASSERT_TRUE(neg[1].area);
  EXPECT_EQ(*neg[1].area, (std::array<int64_t, 4>{8, 8, 8, 0}));
  EXPECT_FLOAT_EQ(neg[1].strength, 0.7f);
  EXPECT_FLOAT_EQ(neg[1].context[0][0][0].item<float>(), -1.0f);
  // Running again adds nothing: each area now has its twin.
  add_opposite_areas(pos, neg);
  EXPECT_EQ(pos.size(), 2u);
  EXPECT_EQ(neg.size(), 2u);
}

TEST(CondBatch, ResolveAreaConvertsPixelsAndRejectsBadAreas) {
  auto a = resolve_area({64, 128, 64, 0}, 16, 16);  // {height, width, y, x} px
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(*a, (std::array<int64_t, 4>{8, 16, 8, 0}));
  auto outside = resolve_area({64, 64, 0, 256}, 16, 16);
  ASSERT_FALSE(outside.is_ok());
  EXPECT_NE(outside.status().message().find("outside"), std::string::npos) << outside.status().message();
  EXPECT_FALSE(resolve_area({64, 64, 96, 0}, 16, 16).is_ok());  // 4 rows left: narrower than the feather
}

TEST(CondBatch, ContextsOfDifferentLengthsConcatUpToFourTimes) {
  Toy toy;
  std::vector<CondRow> pos = {row(1.0f, 1.0f, std::nullopt, 77), row(2.0f, 1.0f, std::nullopt, 154)};
  std::vector<CondRow> neg = {row(3.0f, 1.0f, std::nullopt, 77 * 5)};
  at::Tensor x = at::zeros({1, 4, 8, 8});
  auto out = calc_cond_batch(toy.fn(), {&pos, &neg}, x, at::ones({1}));
  EXPECT_NEAR(out[0][0][0][0][0].item<float>(), 1.5f, 1e-6);
  EXPECT_NEAR(out[1][0][0][0][0].item<float>(), 3.0f, 1e-6);
  EXPECT_EQ(toy.calls.size(), 2u);  // 77 and 385 would pad 5×: not batched together
}

}  // namespace
}  // namespace netdist::cond
