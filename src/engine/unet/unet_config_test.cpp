#include "engine/unet/unet_config.h"

#include <gtest/gtest.h>

#include "engine/unet/key_list_testing.h"
#include "engine/unet/unet.h"

namespace netdist::unet {
namespace {

constexpr const char* kPrefix = "model.diffusion_model.";

const at::TensorOptions kUnetMetaOptions = at::TensorOptions().device(at::kMeta).dtype(at::kFloat);

void expect_matches_golden(const UNetConfig& config, const std::string& file) {
  const std::string path = testing::test_data_path("keys/" + file);
  auto golden = testing::read_key_list(path);
  if (!golden)
    GTEST_FAIL() << "golden key list " << path << " is missing (tools/parity/dump_keys.py makes it)";
  UNetModel model(config, kUnetMetaOptions);
  const std::string diff = testing::key_list_diff(*golden, testing::key_list_of(*model));
  EXPECT_TRUE(diff.empty()) << file << " vs " << config.to_string() << ":\n" << diff;
}

TEST(UNetConfig, PresetsAreValid) {
  for (const UNetConfig& c : {UNetConfig::sd15(), UNetConfig::sd2(), UNetConfig::sdxl(), UNetConfig::tiny()}) {
    EXPECT_TRUE(c.validate().is_ok()) << c.validate().to_string();
  }
  EXPECT_EQ(UNetConfig::sd15().heads_for(640), 8);
  EXPECT_EQ(UNetConfig::sd15().head_dim_for(640), 80);
  EXPECT_EQ(UNetConfig::sdxl().heads_for(1280), 20);
  EXPECT_EQ(UNetConfig::sdxl().head_dim_for(1280), 64);
}

TEST(UNetConfig, Sd15KeysMatchComfyUI) { expect_matches_golden(UNetConfig::sd15(), "sd15_unet.txt"); }
TEST(UNetConfig, Sd2KeysMatchComfyUI) { expect_matches_golden(UNetConfig::sd2(), "sd2_unet.txt"); }
TEST(UNetConfig, SdxlKeysMatchComfyUI) { expect_matches_golden(UNetConfig::sdxl(), "sdxl_unet.txt"); }

TEST(UNetConfig, DetectsPresetsFromGoldenKeyLists) {
  const std::pair<const char*, UNetConfig> cases[] = {
      {"sd15_unet.txt", UNetConfig::sd15()}, {"sd2_unet.txt", UNetConfig::sd2()}, {"sdxl_unet.txt", UNetConfig::sdxl()}};
  for (const auto& [file, expected] : cases) {
    const std::string path = testing::test_data_path(std::string("keys/") + file);
    auto golden = testing::read_key_list(path);
    if (!golden)
      GTEST_FAIL() << "golden key list " << path << " is missing (tools/parity/dump_keys.py makes it)";
    auto detected = detect_unet_config(testing::meta_weights(*golden, kPrefix), kPrefix);
    ASSERT_TRUE(detected.is_ok()) << file << ": " << detected.status().to_string();
    EXPECT_EQ(*detected, expected) << file << ": " << detected->to_string();
  }
}

TEST(UNetConfig, DetectRoundTripsThroughModules) {
  for (const UNetConfig& c : {UNetConfig::sd15(), UNetConfig::sd2(), UNetConfig::sdxl()}) {
    UNetModel model(c, kUnetMetaOptions);
    auto detected = detect_unet_config(runtime::module_weights(*model, kPrefix), kPrefix);
    ASSERT_TRUE(detected.is_ok()) << detected.status().to_string();
    EXPECT_EQ(*detected, c) << detected->to_string();
  }
}

TEST(UNetConfig, TinyRoundTripsExceptHeads) {
  const UNetConfig tiny = UNetConfig::tiny();
  UNetModel model(tiny, kUnetMetaOptions);
  auto detected = detect_unet_config(runtime::module_weights(*model, kPrefix), kPrefix);
  ASSERT_TRUE(detected.is_ok()) << detected.status().to_string();
  EXPECT_EQ(detected->num_head_channels, 64);
  EXPECT_FALSE(detected->validate().is_ok());
  UNetConfig c = *detected;
  c.num_heads = tiny.num_heads;
  c.num_head_channels = tiny.num_head_channels;
  EXPECT_EQ(c, tiny) << c.to_string();
}

TEST(UNetConfig, DetectsMiddleBlockVariants) {
  UNetConfig c = UNetConfig::tiny();
  c.num_heads = -1;
  c.num_head_channels = 32;
  for (int64_t middle : {-1, -2, 2}) {
    c.transformer_depth_middle = middle;
    UNetModel model(c, kUnetMetaOptions);
    auto detected = detect_unet_config(runtime::module_weights(*model, kPrefix), kPrefix);
    ASSERT_TRUE(detected.is_ok()) << detected.status().to_string();
    EXPECT_EQ(detected->transformer_depth_middle, middle);
  }
}

TEST(UNetConfig, MissingKeysAreNamed) {
  auto empty = detect_unet_config(runtime::WeightMap{}, kPrefix);
  ASSERT_FALSE(empty.is_ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kNotFound);
  EXPECT_NE(empty.status().message().find("model.diffusion_model.input_blocks.0.0.weight"), std::string::npos)
      << empty.status().message();

  UNetModel model(UNetConfig::sd15(), kUnetMetaOptions);
  runtime::WeightMap weights = runtime::module_weights(*model, kPrefix);
  weights.erase("model.diffusion_model.input_blocks.4.0.out_layers.3.weight");
  auto missing = detect_unet_config(weights, kPrefix);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("'model.diffusion_model.input_blocks.4.0.out_layers.3.weight'"),
            std::string::npos)
      << missing.status().message();

  weights = runtime::module_weights(*model, kPrefix);
  weights.erase("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight");
  auto no_to_k = detect_unet_config(weights, kPrefix);
  ASSERT_FALSE(no_to_k.is_ok());
  EXPECT_NE(no_to_k.status().message().find("attn2.to_k.weight"), std::string::npos) << no_to_k.status().message();

  auto wrong_prefix = detect_unet_config(runtime::module_weights(*model, kPrefix), "unet.");
  EXPECT_EQ(wrong_prefix.status().code(), StatusCode::kNotFound);
}

TEST(UNetConfig, InvalidConfigsAreRejectedWithField) {
  UNetConfig c = UNetConfig::sd15();
  c.transformer_depth.pop_back();
  EXPECT_NE(c.validate().message().find("transformer_depth"), std::string::npos);
  c = UNetConfig::sd15();
  c.num_head_channels = 64;
  EXPECT_NE(c.validate().message().find("num_heads"), std::string::npos);
  c = UNetConfig::sd15();
  c.num_heads = 7;
  EXPECT_NE(c.validate().message().find("heads"), std::string::npos);
}

}  // namespace
}  // namespace netdist::unet
