// The model-patch classes (model_patch_nodes.h) through the real registry: schemas against the pinned
// ComfyUI's INPUT_TYPES (printed with tools/parity/cpu/cpu_comfy.py), patched handles, bad input as a Status.
// The numerics are engine/model_patches_test.cpp's.
#include <gtest/gtest.h>

#include <filesystem>

#include "engine/model.h"
#include "engine/model_patches.h"
#include "netdist/source_dir.h"
#include "nodes/ops_test_util.h"

namespace netdist::nodes {
namespace {

using graph::Json;
using graph::NodeInputs;
using ops_testing::output;

class ModelPatchNodesTest : public ::testing::Test {
 protected:
  ops_testing::OpsHarness h_{"model_patch"};

  static std::shared_ptr<Model> tiny() {
    static std::shared_ptr<Model> m =
        load_model((std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string(), {})
            .value();
    return m;
  }
  static graph::Value model_value(std::shared_ptr<Model> m) {
    auto o = std::make_shared<ModelObject>();
    o->model = std::move(m);
    o->name = "tiny";
    return object(o);
  }
  std::shared_ptr<Model> run_model(const std::string& cls, const NodeInputs& in) {
    auto r = h_.run(cls, in);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    if (!r.is_ok()) return nullptr;
    auto o = output<ModelObject>(*r, 0);
    return o ? o->model : nullptr;
  }
};

TEST_F(ModelPatchNodesTest, SchemasMatchComfyUI) {
  const Json freeu = h_.info("FreeU");
  EXPECT_EQ(freeu["category"], "model_patches/unet");
  EXPECT_EQ(freeu["python_module"], "comfy_extras.nodes_freelunch");
  EXPECT_EQ(freeu["input_order"]["required"], Json::parse(R"(["model", "b1", "b2", "s1", "s2"])"));
  EXPECT_EQ(freeu["input"]["required"]["b1"][1],
            Json::parse(R"({"default": 1.1, "min": 0.0, "max": 10.0, "step": 0.01})"));
  EXPECT_EQ(freeu["input"]["required"]["s2"][1],
            Json::parse(R"({"default": 0.2, "min": 0.0, "max": 10.0, "step": 0.01})"));
  const Json v2 = h_.info("FreeU_V2");
  EXPECT_EQ(v2["display_name"], "FreeU_V2");
  EXPECT_EQ(v2["input"]["required"]["b1"][1]["default"], 1.3);
  EXPECT_EQ(v2["input"]["required"]["b2"][1]["default"], 1.4);
  const Json rescale = h_.info("RescaleCFG");
  EXPECT_EQ(rescale["category"], "advanced/model");
  EXPECT_EQ(rescale["python_module"], "comfy_extras.nodes_model_advanced");
  EXPECT_EQ(rescale["input"]["required"]["multiplier"][1],
            Json::parse(R"({"default": 0.7, "min": 0.0, "max": 1.0, "step": 0.01})"));
  const Json lora = h_.info("LoraLoaderModelOnly");
  EXPECT_EQ(lora["category"], "loaders");
  EXPECT_EQ(lora["output"], Json::parse(R"(["MODEL"])"));
  EXPECT_EQ(lora["input_order"]["required"], Json::parse(R"(["model", "lora_name", "strength_model"])"));
  EXPECT_EQ(lora["input"]["required"]["strength_model"][1],
            Json::parse(R"({"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01})"));
  // Inherited from LoraLoader in ComfyUI, both tooltips included.
  EXPECT_EQ(lora["output_tooltips"],
            Json::parse(R"(["The modified diffusion model.", "The modified CLIP model."])"));
}

TEST_F(ModelPatchNodesTest, PatchesChainOnNewHandles) {
  ASSERT_TRUE(tiny());
  NodeInputs a;
  a.set("model", model_value(tiny()));
  a.set("b1", 1.1);
  a.set("b2", 1.2);
  a.set("s1", 0.9);
  a.set("s2", 0.2);
  auto freeu = run_model("FreeU", a);
  ASSERT_TRUE(freeu && freeu->patches_);
  NodeInputs b;
  b.set("model", model_value(freeu));
  b.set("multiplier", 0.5);
  auto rescaled = run_model("RescaleCFG", b);
  ASSERT_TRUE(rescaled && rescaled->patches_);
  EXPECT_EQ(rescaled->patches_->output_block.size(), 1u);
  EXPECT_EQ(rescaled->patches_->rescale_cfg.value_or(0), 0.5);
  EXPECT_FALSE(tiny()->patches_);
  EXPECT_FALSE(freeu->patches_->rescale_cfg.has_value());
}

TEST_F(ModelPatchNodesTest, LoraModelOnlyNamesAMissingFile) {
  ASSERT_TRUE(tiny());
  NodeInputs in;
  in.set("model", model_value(tiny()));
  in.set("lora_name", std::string("absent.safetensors"));
  in.set("strength_model", 1.0);
  auto r = h_.run("LoraLoaderModelOnly", in);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("absent.safetensors"), std::string::npos) << r.status().message();
  in.set("strength_model", 0.0);  // strength 0: the model passes through, as ComfyUI's load_lora returns it
  EXPECT_EQ(run_model("LoraLoaderModelOnly", in), tiny());
}

}  // namespace
}  // namespace netdist::nodes
