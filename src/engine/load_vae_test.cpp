// load_vae (VAELoader) and decode_tiled on the embedded tiny model's VAE cut out into its own files.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>

#include <unistd.h>

#include "engine/model.h"
#include "engine/models/diffusers_layout.h"
#include "engine/runtime/tensor_io.h"
#include "netdist/source_dir.h"

namespace netdist {
namespace {

namespace fs = std::filesystem;

class LoadVaeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netdist_vae_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    auto all = runtime::load_safetensors(checkpoint());
    ASSERT_TRUE(all.is_ok()) << all.status().to_string();
    for (const auto& [name, tensor] : *all) {
      if (name.rfind("first_stage_model.", 0) == 0) vae_[name] = tensor;
    }
    ASSERT_FALSE(vae_.empty());
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string checkpoint() {
    return (std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string();
  }

  std::string write(const std::string& name, const runtime::WeightMap& weights) {
    const std::string path = (dir_ / name).string();
    EXPECT_TRUE(runtime::save_safetensors(path, weights).is_ok());
    return path;
  }

  fs::path dir_;
  runtime::WeightMap vae_;
};

TEST_F(LoadVaeTest, PrefixedBareAndDiffusersFilesDecodeLikeTheCheckpoint) {
  auto model = load_model(checkpoint(), {});
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  at::Tensor latent = at::randn({1, 4, 8, 8}, at::detail::createCPUGenerator(3));
  at::Tensor want = decode(**model, latent).value();

  runtime::WeightMap bare = runtime::strip_prefix(vae_, "first_stage_model.");
  bare["loss.logvar"] = at::zeros({1});  // training leftovers are ignored
  std::vector<std::string> files = {write("prefixed.safetensors", vae_), write("bare.safetensors", bare)};
  auto diffusers = models::ldm_to_diffusers(vae_, (*model)->info_);
  if (diffusers.is_ok()) files.push_back(write("diffusers.safetensors", diffusers->vae));
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    auto vae = load_vae(path, {});
    ASSERT_TRUE(vae.is_ok()) << vae.status().to_string();
    auto got = decode(**vae, latent);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    EXPECT_TRUE(at::equal(*got, want));
  }
  EXPECT_EQ(files.size(), 3u) << "the diffusers conversion failed: " << diffusers.status().to_string();
}

TEST_F(LoadVaeTest, TiledDecodeOfOneTileEqualsDecode) {
  auto vae = load_vae(write("prefixed.safetensors", vae_), {});
  ASSERT_TRUE(vae.is_ok()) << vae.status().to_string();
  at::Tensor latent = at::randn({1, 4, 8, 8}, at::detail::createCPUGenerator(4));
  auto tiled = decode_tiled(**vae, latent, 512, 64);  // 64-cell tiles: one tile per pass
  ASSERT_TRUE(tiled.is_ok()) << tiled.status().to_string();
  EXPECT_TRUE(at::allclose(*tiled, decode(**vae, latent).value(), 1e-5, 1e-5));
  auto small = decode_tiled(**vae, at::randn({1, 4, 16, 16}), 64, 32);  // overlap clamps to tile/4
  ASSERT_TRUE(small.is_ok()) << small.status().to_string();
  EXPECT_EQ(small->sizes(), (std::vector<int64_t>{1, 128, 128, 3}));
}

TEST_F(LoadVaeTest, FailurePathsNameTheFile) {
  auto missing = load_vae((dir_ / "nope.safetensors").string(), {});
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("nope.safetensors"), std::string::npos)
      << missing.status().to_string();
  const std::string not_vae =
      write("not_a_vae.safetensors", {{"lora_unet_x.lora_up.weight", at::zeros({2, 2})}});
  auto wrong = load_vae(not_vae, {});
  ASSERT_FALSE(wrong.is_ok());
  EXPECT_NE(wrong.status().to_string().find("not_a_vae.safetensors"), std::string::npos)
      << wrong.status().to_string();
}

}  // namespace
}  // namespace netdist
