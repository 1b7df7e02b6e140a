// The conditioning operation classes (conditioning_ops_nodes.h) through the real registry: schemas against
// the pinned ComfyUI, values computed by hand from its formulas, bad input as a Status naming node and input.
#include <gtest/gtest.h>

#include "nodes/ops_test_util.h"

namespace netdist::nodes {
namespace {

using graph::Json;
using graph::NodeInputs;
using ops_testing::cond_value;
using ops_testing::output;

CondEntry cond_ops_entry(at::Tensor context, at::Tensor pooled = {}) {
  CondEntry e;
  e.context = std::move(context);
  e.pooled = std::move(pooled);
  return e;
}

class ConditioningOpsTest : public ::testing::Test {
 protected:
  ops_testing::OpsHarness h_{"cond"};

  Conditioning run_cond(const std::string& cls, const NodeInputs& in) {
    auto r = h_.run(cls, in);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    if (!r.is_ok()) return {};
    auto c = output<ConditioningObject>(*r, 0);
    return c ? c->conditioning : Conditioning{};
  }
  std::string error_of(const std::string& cls, const NodeInputs& in) {
    auto r = h_.run(cls, in);
    EXPECT_FALSE(r.is_ok());
    return r.is_ok() ? "" : r.status().message();
  }
};

TEST_F(ConditioningOpsTest, SchemasMatchComfyUI) {
  // nodes.py's display-name key is "ConditioningAverage " (trailing space): ComfyUI shows the class name.
  EXPECT_EQ(h_.info("ConditioningAverage")["display_name"], "ConditioningAverage");
  EXPECT_EQ(h_.info("ConditioningAverage")["input"]["required"]["conditioning_to_strength"][1],
            Json::parse(R"({"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01})"));
  EXPECT_EQ(h_.info("ConditioningConcat")["display_name"], "Conditioning (Concat)");
  EXPECT_EQ(h_.info("ConditioningConcat")["input_order"]["required"],
            Json::parse(R"(["conditioning_to", "conditioning_from"])"));
  EXPECT_EQ(h_.info("ConditioningZeroOut")["category"], "advanced/conditioning");
  EXPECT_EQ(h_.info("ConditioningSetAreaStrength")["input"]["required"]["strength"][1],
            Json::parse(R"({"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01})"));
}

TEST_F(ConditioningOpsTest, ConcatAppendsTheFirstFromContext) {
  CondEntry to = cond_ops_entry(at::zeros({1, 2, 3}));
  to.strength = 0.5f;
  to.area = std::array<int, 4>{64, 64, 0, 8};
  NodeInputs in;
  in.set("conditioning_to", cond_value({to, cond_ops_entry(at::ones({1, 1, 3}))}));
  in.set("conditioning_from", cond_value({cond_ops_entry(at::full({1, 1, 3}, 2.0f)), cond_ops_entry(at::ones({1, 1, 3}))}));
  Conditioning out = run_cond("ConditioningConcat", in);
  ASSERT_EQ(out.size(), 2u);
  ASSERT_EQ(out[0].context.sizes(), (std::vector<int64_t>{1, 3, 3}));
  EXPECT_EQ(out[0].context[0][2][1].item<float>(), 2);
  EXPECT_EQ(out[0].strength, 0.5f);
  ASSERT_TRUE(out[0].area);
  EXPECT_EQ((*out[0].area)[3], 8);
  EXPECT_EQ(out[1].context.sizes(), (std::vector<int64_t>{1, 2, 3}));
  in.set("conditioning_from", cond_value({cond_ops_entry(at::ones({1, 1, 4}))}));
  EXPECT_NE(error_of("ConditioningConcat", in).find("ConditioningConcat: input 'conditioning_to' has a context of width 3"),
            std::string::npos);
  in.set("conditioning_from", cond_value({}));
  EXPECT_NE(error_of("ConditioningConcat", in).find("input 'conditioning_from' has no entries"), std::string::npos);
}

TEST_F(ConditioningOpsTest, AverageMixesContextAndPooled) {
  NodeInputs in;
  in.set("conditioning_to", cond_value({cond_ops_entry(at::ones({1, 3, 2}), at::ones({1, 2})),
                                        cond_ops_entry(at::ones({1, 1, 2}))}));
  in.set("conditioning_from", cond_value({cond_ops_entry(at::full({1, 2, 2}, 3.0f), at::full({1, 2}, 3.0f))}));
  in.set("conditioning_to_strength", 0.25);
  Conditioning out = run_cond("ConditioningAverage", in);
  ASSERT_EQ(out.size(), 2u);
  ASSERT_EQ(out[0].context.sizes(), (std::vector<int64_t>{1, 3, 2}));
  EXPECT_FLOAT_EQ(out[0].context[0][1][1].item<float>(), 2.5f);   // 1·0.25 + 3·0.75
  EXPECT_FLOAT_EQ(out[0].context[0][2][0].item<float>(), 0.25f);  // from zero-padded to 3 tokens
  EXPECT_FLOAT_EQ(out[0].pooled[0][1].item<float>(), 2.5f);
  ASSERT_EQ(out[1].context.sizes(), (std::vector<int64_t>{1, 1, 2}));  // from cut to 1 token
  EXPECT_FLOAT_EQ(out[1].context[0][0][0].item<float>(), 2.5f);
  ASSERT_TRUE(out[1].pooled.defined());  // no pooled of its own: from's, averaged with itself
  EXPECT_FLOAT_EQ(out[1].pooled[0][0].item<float>(), 3.0f);
}

TEST_F(ConditioningOpsTest, ZeroOutAndAreaStrength) {
  CondEntry e = cond_ops_entry(at::ones({1, 2, 3}), at::ones({1, 4}));
  e.area = std::array<int, 4>{64, 64, 8, 8};
  NodeInputs in;
  in.set("conditioning", cond_value({e}));
  Conditioning z = run_cond("ConditioningZeroOut", in);
  ASSERT_EQ(z.size(), 1u);
  EXPECT_EQ(z[0].context.sizes(), e.context.sizes());
  EXPECT_EQ(z[0].context.abs().sum().item<float>(), 0);
  EXPECT_EQ(z[0].pooled.abs().sum().item<float>(), 0);
  EXPECT_EQ(e.context.sum().item<float>(), 6);  // the input is not modified
  in.set("strength", 2.5);
  Conditioning s = run_cond("ConditioningSetAreaStrength", in);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].strength, 2.5f);
  EXPECT_TRUE(s[0].area);
}

TEST_F(ConditioningOpsTest, MaskRangeAndPercentageSchemasMatchComfyUI) {
  // From the pinned ComfyUI's INPUT_TYPES (nodes.py), read with tools/parity/cpu/cpu_comfy.py.
  const Json mask = h_.info("ConditioningSetMask");
  EXPECT_EQ(mask["display_name"], "Conditioning (Set Mask)");
  EXPECT_EQ(mask["category"], "conditioning");
  EXPECT_EQ(mask["input_order"]["required"], Json::parse(R"(["conditioning", "mask", "strength", "set_cond_area"])"));
  EXPECT_EQ(mask["input"]["required"]["strength"][1],
            Json::parse(R"({"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01})"));
  EXPECT_EQ(mask["input"]["required"]["set_cond_area"][0], Json::parse(R"(["default", "mask bounds"])"));
  const Json range = h_.info("ConditioningSetTimestepRange");
  EXPECT_EQ(range["display_name"], "ConditioningSetTimestepRange");
  EXPECT_EQ(range["category"], "advanced/conditioning");
  EXPECT_EQ(range["input"]["required"]["start"][1],
            Json::parse(R"({"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001})"));
  EXPECT_EQ(range["input"]["required"]["end"][1],
            Json::parse(R"({"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001})"));
  const Json pct = h_.info("ConditioningSetAreaPercentage");
  EXPECT_EQ(pct["display_name"], "Conditioning (Set Area with Percentage)");
  EXPECT_EQ(pct["input_order"]["required"],
            Json::parse(R"(["conditioning", "width", "height", "x", "y", "strength"])"));
  EXPECT_EQ(pct["input"]["required"]["width"][1], Json::parse(R"({"default": 1.0, "min": 0, "max": 1.0, "step": 0.01})"));
  EXPECT_EQ(pct["input"]["required"]["x"][1], Json::parse(R"({"default": 0, "min": 0, "max": 1.0, "step": 0.01})"));
}

TEST_F(ConditioningOpsTest, SetMaskRangeAndPercentageSetEveryEntry) {
  CondEntry a = cond_ops_entry(at::zeros({1, 2, 3}));
  a.area = std::array<int, 4>{64, 64, 0, 8};
  NodeInputs in;
  in.set("conditioning", cond_value({a, cond_ops_entry(at::ones({1, 2, 3}))}));
  in.set("mask", ops_testing::mask_value(at::ones({4, 5})));
  in.set("strength", 0.5);
  in.set("set_cond_area", std::string("mask bounds"));
  Conditioning masked = run_cond("ConditioningSetMask", in);
  ASSERT_EQ(masked.size(), 2u);
  for (const CondEntry& e : masked) {
    EXPECT_EQ(e.mask.sizes(), (std::vector<int64_t>{1, 4, 5}));  // [H, W] gains a batch dimension
    EXPECT_EQ(e.mask_strength, 0.5f);
    EXPECT_TRUE(e.set_area_to_bounds);
  }
  EXPECT_TRUE(masked[0].area.has_value());  // kept: the sampler replaces it by the mask's bounds

  NodeInputs range;
  range.set("conditioning", cond_value(masked));
  range.set("start", 0.25);
  range.set("end", 0.75);
  Conditioning ranged = run_cond("ConditioningSetTimestepRange", range);
  ASSERT_EQ(ranged.size(), 2u);
  EXPECT_EQ(ranged[1].start_percent, 0.25);
  EXPECT_EQ(ranged[1].end_percent, 0.75);
  EXPECT_TRUE(ranged[1].mask.defined());

  NodeInputs pct;
  pct.set("conditioning", cond_value(ranged));
  pct.set("width", 0.5);
  pct.set("height", 0.25);
  pct.set("x", 0.125);
  pct.set("y", 0.0);
  pct.set("strength", 2.0);
  Conditioning area = run_cond("ConditioningSetAreaPercentage", pct);
  ASSERT_EQ(area.size(), 2u);
  EXPECT_FALSE(area[0].area.has_value());  // one "area" key: the percentage replaces the pixel area
  ASSERT_TRUE(area[0].area_percent.has_value());
  EXPECT_EQ(*area[0].area_percent, (std::array<double, 4>{0.25, 0.5, 0.0, 0.125}));
  EXPECT_EQ(area[0].strength, 2.0f);
  EXPECT_FALSE(area[0].set_area_to_bounds);
  EXPECT_TRUE(area[0].mask.defined());

  NodeInputs bad;
  bad.set("conditioning", cond_value({a}));
  bad.set("mask", ops_testing::mask_value(at::ones({4}, at::kFloat)));
  bad.set("strength", 1.0);
  bad.set("set_cond_area", std::string("default"));
  EXPECT_NE(error_of("ConditioningSetMask", bad).find("ConditioningSetMask"), std::string::npos);
}

}  // namespace
}  // namespace netdist::nodes
