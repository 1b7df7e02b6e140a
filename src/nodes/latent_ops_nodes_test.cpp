// The latent operation classes (latent_ops_nodes.h) through the real registry: schemas against the pinned
// ComfyUI, values computed by hand from its formulas, bad input as a Status naming node and input.
#include <gtest/gtest.h>

#include "nodes/ops_test_util.h"

namespace netdist::nodes {
namespace {

using graph::Json;
using graph::NodeInputs;
using ops_testing::latent_value;
using ops_testing::output;

class LatentOpsTest : public ::testing::Test {
 protected:
  ops_testing::OpsHarness h_{"latent"};

  std::shared_ptr<const LatentObject> run_latent(const std::string& cls, const NodeInputs& in) {
    auto r = h_.run(cls, in);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    if (!r.is_ok()) return nullptr;
    return output<LatentObject>(*r, 0);
  }
  std::string error_of(const std::string& cls, const NodeInputs& in) {
    auto r = h_.run(cls, in);
    EXPECT_FALSE(r.is_ok());
    return r.is_ok() ? "" : r.status().message();
  }
};

TEST_F(LatentOpsTest, SchemasMatchComfyUI) {
  EXPECT_EQ(h_.info("LatentRotate")["display_name"], "Rotate Latent");
  EXPECT_EQ(h_.info("LatentRotate")["input"]["required"]["rotation"][0],
            Json::parse(R"(["none", "90 degrees", "180 degrees", "270 degrees"])"));
  EXPECT_EQ(h_.info("LatentFlip")["input"]["required"]["flip_method"][0],
            Json::parse(R"(["x-axis: vertically", "y-axis: horizontally"])"));
  EXPECT_EQ(h_.info("LatentFlip")["category"], "latent/transform");
  EXPECT_EQ(h_.info("LatentCrop")["input"]["required"]["width"][1],
            Json::parse(R"({"default": 512, "min": 64, "max": 16384, "step": 8})"));
  EXPECT_EQ(h_.info("LatentComposite")["input_order"]["required"],
            Json::parse(R"(["samples_to", "samples_from", "x", "y", "feather"])"));
  Json blend = h_.info("LatentBlend");
  EXPECT_EQ(blend["category"], "_for_testing");
  EXPECT_EQ(blend["input"]["required"]["blend_factor"][1].dump(), R"({"default":0.5,"min":0,"max":1,"step":0.01})");
  EXPECT_EQ(h_.info("LatentBatch")["python_module"], "comfy_extras.nodes_latent");
  EXPECT_EQ(h_.info("LatentBatch")["category"], "latent/batch");
}

TEST_F(LatentOpsTest, CompositePastesAndFeathers) {
  NodeInputs in;
  in.set("samples_to", latent_value(at::zeros({1, 1, 4, 4}), std::vector<int64_t>{7}));
  in.set("samples_from", latent_value(at::ones({1, 1, 2, 2})));
  in.set("x", int64_t(8));
  in.set("y", int64_t(8));
  in.set("feather", int64_t(0));
  auto out = run_latent("LatentComposite", in);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->samples.sum().item<float>(), 4);
  EXPECT_EQ(out->samples[0][0][2][2].item<float>(), 1);
  EXPECT_EQ(out->samples[0][0][3][3].item<float>(), 0);
  ASSERT_TRUE(out->batch_index);
  EXPECT_EQ(*out->batch_index, std::vector<int64_t>{7});  // samples_to's other fields kept

  // feather 16 → 2 cells: ramps 1/2, 2/2 on every side that is not a latent edge.
  in.set("samples_to", latent_value(at::zeros({1, 1, 6, 6})));
  in.set("samples_from", latent_value(at::ones({1, 1, 3, 3})));
  in.set("feather", int64_t(16));
  out = run_latent("LatentComposite", in);
  ASSERT_NE(out, nullptr);
  EXPECT_FLOAT_EQ(out->samples[0][0][1][1].item<float>(), 0.25f);
  EXPECT_FLOAT_EQ(out->samples[0][0][1][2].item<float>(), 0.5f);
  EXPECT_FLOAT_EQ(out->samples[0][0][2][2].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(out->samples.sum().item<float>(), 4.0f);

  in.set("samples_from", latent_value(at::ones({2, 1, 3, 3})));
  in.set("samples_to", latent_value(at::zeros({3, 1, 6, 6})));
  EXPECT_NE(error_of("LatentComposite", in).find("LatentComposite: "), std::string::npos);
}

TEST_F(LatentOpsTest, BlendCropFlipRotate) {
  NodeInputs blend;
  blend.set("samples1", latent_value(at::ones({1, 1, 2, 2})));
  blend.set("samples2", latent_value(at::full({1, 1, 2, 2}, 3.0f)));
  blend.set("blend_factor", 0.25);
  auto out = run_latent("LatentBlend", blend);
  ASSERT_NE(out, nullptr);
  EXPECT_FLOAT_EQ(out->samples[0][0][1][1].item<float>(), 2.5f);
  blend.set("samples2", latent_value(at::full({1, 1, 4, 4}, 3.0f)));  // resized bicubic to 2×2
  out = run_latent("LatentBlend", blend);
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(out->samples.sizes(), (std::vector<int64_t>{1, 1, 2, 2}));
  EXPECT_NEAR(out->samples[0][0][0][1].item<float>(), 2.5f, 1e-5);

  NodeInputs crop;
  crop.set("samples", latent_value(at::arange(256, at::kFloat).reshape({1, 1, 16, 16})));
  crop.set("width", int64_t(64));
  crop.set("height", int64_t(64));
  crop.set("x", int64_t(16));
  crop.set("y", int64_t(8));
  out = run_latent("LatentCrop", crop);
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(out->samples.sizes(), (std::vector<int64_t>{1, 1, 8, 8}));
  EXPECT_EQ(out->samples[0][0][0][0].item<float>(), 18);
  crop.set("x", int64_t(200));  // 25 cells > 16 - 8: clamped to 8
  out = run_latent("LatentCrop", crop);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->samples[0][0][0][0].item<float>(), 24);

  at::Tensor m = at::tensor({1.0f, 2.0f, 3.0f, 4.0f}).reshape({1, 1, 2, 2});  // [[1, 2], [3, 4]]
  NodeInputs flip;
  flip.set("samples", latent_value(m));
  flip.set("flip_method", std::string("x-axis: vertically"));
  EXPECT_EQ(run_latent("LatentFlip", flip)->samples[0][0][0][0].item<float>(), 3);
  flip.set("flip_method", std::string("y-axis: horizontally"));
  EXPECT_EQ(run_latent("LatentFlip", flip)->samples[0][0][0][0].item<float>(), 2);
  NodeInputs rot;
  rot.set("samples", latent_value(m));
  rot.set("rotation", std::string("90 degrees"));  // rot90 over dims [3, 2]: clockwise → [[3, 1], [4, 2]]
  at::Tensor r90 = run_latent("LatentRotate", rot)->samples;
  EXPECT_EQ(r90[0][0][0][0].item<float>(), 3);
  EXPECT_EQ(r90[0][0][0][1].item<float>(), 1);
  rot.set("rotation", std::string("none"));
  EXPECT_TRUE(at::equal(run_latent("LatentRotate", rot)->samples, m));
  rot.set("samples", latent_value(at::zeros({2, 2})));
  EXPECT_NE(error_of("LatentRotate", rot).find("LatentRotate: input 'samples'"), std::string::npos);
}

TEST_F(LatentOpsTest, BatchResizesAndJoinsBatchIndex) {
  NodeInputs in;
  in.set("samples1", latent_value(at::ones({1, 4, 2, 2}), std::vector<int64_t>{5}));
  in.set("samples2", latent_value(at::full({2, 4, 4, 4}, 2.0f)));
  auto out = run_latent("LatentBatch", in);
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(out->samples.sizes(), (std::vector<int64_t>{3, 4, 2, 2}));
  EXPECT_FLOAT_EQ(out->samples[2][3][1][1].item<float>(), 2.0f);
  ASSERT_TRUE(out->batch_index);
  EXPECT_EQ(*out->batch_index, (std::vector<int64_t>{5, 0, 1}));
  in.set("samples2", latent_value(at::zeros({1, 3, 2, 2})));
  EXPECT_NE(error_of("LatentBatch", in).find("LatentBatch: samples1 has 4 channels, samples2 3"), std::string::npos);
  in.set("samples2", latent_value(at::zeros({0, 4, 2, 2})));
  EXPECT_NE(error_of("LatentBatch", in).find("LatentBatch: input 'samples2'"), std::string::npos);
}

TEST_F(LatentOpsTest, NoiseMaskAndBatchIndexTravelAsInComfyUI) {
  // nodes.py / nodes_latent.py: every latent op starts from samples.copy(), so the first input's noise_mask
  // (and batch_index) stay as they are, uncropped and unflipped; LatentFromBatch keeps an existing batch_index.
  auto l = std::make_shared<LatentObject>();
  l->samples = at::randn({3, 4, 16, 16});
  l->noise_mask = at::rand({3, 1, 128, 128});
  l->batch_index = std::vector<int64_t>{5, 6, 7};
  const graph::Value v = object(l);
  NodeInputs flip;
  flip.set("samples", v);
  flip.set("flip_method", std::string("x-axis: vertically"));
  NodeInputs crop;
  crop.set("samples", v);
  crop.set("width", int64_t{64});
  crop.set("height", int64_t{64});
  crop.set("x", int64_t{8});
  crop.set("y", int64_t{8});
  NodeInputs rotate;
  rotate.set("samples", v);
  rotate.set("rotation", std::string("90 degrees"));
  NodeInputs composite;
  composite.set("samples_to", v);
  composite.set("samples_from", latent_value(at::ones({1, 4, 8, 8})));
  composite.set("x", int64_t{8});
  composite.set("y", int64_t{8});
  composite.set("feather", int64_t{0});
  NodeInputs blend;
  blend.set("samples1", v);
  blend.set("samples2", latent_value(at::ones({3, 4, 16, 16})));
  blend.set("blend_factor", 0.5);
  for (const auto& [cls, in] : {std::pair{"LatentFlip", flip}, std::pair{"LatentCrop", crop},
                                std::pair{"LatentRotate", rotate}, std::pair{"LatentComposite", composite},
                                std::pair{"LatentBlend", blend}}) {
    auto out = run_latent(cls, in);
    ASSERT_TRUE(out) << cls;
    EXPECT_TRUE(out->noise_mask.defined() && at::equal(out->noise_mask, l->noise_mask)) << cls;
    EXPECT_EQ(out->batch_index, l->batch_index) << cls;
  }
  NodeInputs batch;
  batch.set("samples1", latent_value(at::ones({1, 4, 16, 16})));
  batch.set("samples2", v);
  auto joined = run_latent("LatentBatch", batch);
  ASSERT_TRUE(joined);
  EXPECT_FALSE(joined->noise_mask.defined());  // samples1's (none), not samples2's
  EXPECT_EQ(joined->batch_index, (std::vector<int64_t>{0, 5, 6, 7}));
  NodeInputs from;
  from.set("samples", v);
  from.set("batch_index", int64_t{1});
  from.set("length", int64_t{2});
  auto picked = run_latent("LatentFromBatch", from);
  ASSERT_TRUE(picked);
  EXPECT_EQ(picked->batch_index, (std::vector<int64_t>{6, 7}));
  EXPECT_TRUE(at::equal(picked->noise_mask, l->noise_mask.slice(0, 1, 3)));
}

}  // namespace
}  // namespace netdist::nodes
