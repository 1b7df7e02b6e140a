// Checkpoints whose UNet the engine does not run yet are refused at load, by name (issue #15): tiny files
// shaped like depth and edit UNets (inpainting UNets and refiners load), written here with the real safetensors
// writer, and the reachable failures that used to abort (a UNet whose widths do not split into heads).
#include <gtest/gtest.h>

#include <filesystem>

#include <unistd.h>

#include "engine/models/family.h"
#include "engine/tiny_checkpoint_testing.h"
#include "netdist/engine.h"
#include "netdist/source_dir.h"

namespace netdist {
namespace {

namespace fs = std::filesystem;
using testing::TinyCheckpointShape;
using testing::write_tiny_checkpoint;

class UnsupportedCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netdist_refuse_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    options_.clip_vocab_dir =
        (std::filesystem::path(NETDIST_SOURCE_DIR) / "tests/data/clip-vit-l-14-tokenizer").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  Status load(const std::string& name, const TinyCheckpointShape& shape) {
    const std::string path = (dir_ / name).string();
    Status written = write_tiny_checkpoint(path, shape);
    if (!written.is_ok()) return written;
    auto model = load_model(path, options_);
    return model.is_ok() ? Status::ok() : model.status();
  }

  fs::path dir_;
  EngineOptions options_;
};

TEST_F(UnsupportedCheckpoint, RefinerAdmPassesTheUnetCheckAndAnUnknownShapeIsNamed) {
  // Issue #20: refiners (ADM 2560) run; this tiny one is no real family's shape, which detection names (the
  // refusal by name is gone).
  TinyCheckpointShape refiner;
  refiner.adm_channels = 2560;
  refiner.text_prefix = "conditioner.embedders.0.model.";
  Status s = load("refiner.safetensors", refiner);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported) << s.to_string();
  EXPECT_NE(s.message().find("refiner.safetensors"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("is an SDXL refiner"), std::string::npos) << s.message();
}

TEST_F(UnsupportedCheckpoint, InpaintingUnetsLoad) {
  // Issue #20: 9-channel inpainting UNets run (engine/inpaint.h; sampled in inpaint_test.cpp).
  TinyCheckpointShape inpaint;
  inpaint.in_channels = 9;
  inpaint.metadata = {{"netdist.family", "sd1"}};
  Status s = load("inpaint-sd1.safetensors", inpaint);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
}

TEST_F(UnsupportedCheckpoint, DepthEditAndUnknownUnetsAreNamed) {
  const std::pair<int64_t, std::string> cases[] = {{5, "is a depth UNet (5 input channels"},
                                                   {8, "is an instruct-pix2pix / edit UNet (8 input channels"},
                                                   {6, "is an unknown UNet with 6 input channels"}};
  for (const auto& [channels, expected] : cases) {
    TinyCheckpointShape shape;
    shape.in_channels = channels;
    Status s = load("in" + std::to_string(channels) + ".safetensors", shape);
    EXPECT_EQ(s.code(), StatusCode::kUnsupported) << s.to_string();
    EXPECT_NE(s.message().find(expected), std::string::npos) << s.message();
  }
}

TEST_F(UnsupportedCheckpoint, AdmWidthTheFamilyDoesNotBuildIsRefused) {
  TinyCheckpointShape shape;
  shape.adm_channels = 2816;
  shape.metadata = {{"netdist.family", "sd1"}};
  Status s = load("sd1-with-adm.safetensors", shape);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported) << s.to_string();
  EXPECT_NE(s.message().find("a 2816-wide ADM input where its family builds none"), std::string::npos) << s.message();
}

TEST_F(UnsupportedCheckpoint, TheSameFileAsATextToImageUnetLoads) {
  TinyCheckpointShape shape;
  shape.metadata = {{"netdist.family", "sd1"}};
  Status s = load("plain.safetensors", shape);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
}

TEST_F(UnsupportedCheckpoint, WidthsThatDoNotSplitIntoHeadsAreAnError) {
  TinyCheckpointShape shape;
  shape.model_channels = 32;  // a 32-wide level, 64-wide heads: the module used to abort on it
  shape.metadata = {{"netdist.family", "sd1"}};
  Status s = load("narrow.safetensors", shape);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("does not split into attention heads"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("narrow.safetensors"), std::string::npos) << s.message();
}

TEST(CheckSupportedUnet, RealFamiliesPassAndTheirVariantsAreRefused) {
  EXPECT_TRUE(models::check_supported_unet(4, 4, 0, 0).is_ok());        // SD1 / SD2
  EXPECT_TRUE(models::check_supported_unet(4, 4, 2816, 2816).is_ok());  // SDXL
  EXPECT_TRUE(models::check_supported_unet(4, 4, 2816, std::nullopt).is_ok());
  EXPECT_TRUE(models::check_supported_unet(4, 4, 2560, 2560).is_ok());  // SDXL refiner
  EXPECT_NE(models::check_supported_unet(4, 4, 2560, 2816).message().find("2560-wide ADM input"), std::string::npos);
  EXPECT_TRUE(models::check_supported_unet(9, 4, 2816, 2816).is_ok());  // SDXL inpainting
  EXPECT_TRUE(models::check_supported_unet(9, 4, 0, 0).is_ok());        // SD1.5 inpainting
  EXPECT_NE(models::check_supported_unet(4, 8, 0, 0).message().find("8 output channels"), std::string::npos);
  EXPECT_NE(models::check_supported_unet(4, 4, 1536, 0).message().find("1536-wide ADM input"), std::string::npos);
}

}  // namespace
}  // namespace netdist
