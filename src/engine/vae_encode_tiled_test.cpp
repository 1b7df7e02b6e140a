// encode_tiled (VAEEncodeTiled) against ComfyUI's own VAE.encode_tiled on the embedded tiny model's VAE
// (tests/data/vae_tiles/vae_encode_tiled.safetensors, made by tools/parity/vae_encode_tiled_golden.py with
// the pinned ComfyUI on this machine's CPU torch 1.13, fp32; the regulariser's mode, as netdist's encode).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/runtime/tensor_io.h"
#include "netdist/engine.h"
#include "netdist/source_dir.h"
#include "netdist/vae_tiles.h"

namespace netdist {
namespace {

std::string vae_encode_tiled_golden_path() {
  return (std::filesystem::path(NETDIST_SOURCE_DIR) / "tests" / "data" / "vae_tiles" /
          "vae_encode_tiled.safetensors")
      .string();
}

class VaeEncodeTiledTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string ckpt =
        (std::filesystem::path(NETDIST_SOURCE_DIR) / "models" / "tiny-emoji.safetensors").string();
    auto m = load_model(ckpt, {});
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    model_ = *m;
  }
  static void TearDownTestSuite() { model_.reset(); }
  static std::shared_ptr<Model> model_;
};
std::shared_ptr<Model> VaeEncodeTiledTest::model_;

// The maximum |a − b| over the maximum |b|.
double vae_encode_tiled_rel(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

TEST_F(VaeEncodeTiledTest, MatchesComfyUIGoldens) {
  // A missing golden is a failure (CI rule), not a skip.
  auto golden = runtime::load_safetensors(vae_encode_tiled_golden_path());
  ASSERT_TRUE(golden.is_ok()) << golden.status().to_string();
  const at::Tensor pixels = golden->at("pixels");
  ASSERT_EQ(pixels.sizes(), (at::IntArrayRef{2, 203, 165, 3}));
  for (const auto& [tile, overlap] :
       std::vector<std::pair<int64_t, int64_t>>{{128, 32}, {64, 16}, {512, 64}, {64, 0}}) {
    const std::string key =
        std::string("latent_").append(std::to_string(tile)).append("_").append(std::to_string(overlap));
    ASSERT_TRUE(golden->count(key)) << key;
    const at::Tensor want = golden->at(key).to(at::kFloat);
    auto got = encode_tiled(*model_, pixels, tile, overlap);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    ASSERT_EQ(got->sizes(), want.sizes()) << key;
    const double rel = vae_encode_tiled_rel(*got, want);
    // Measured on this machine (Debian libtorch 1.13, fp32): see docs/parity.md's VAEEncodeTiled row.
    EXPECT_LE(rel, 1e-5) << key;
    std::printf("VAEEncodeTiled %s: max |Δ| / max |golden| = %.3g\n", key.c_str(), rel);
  }
  // One tile covering the image is the plain encode.
  auto whole = encode_tiled(*model_, pixels, 512, 64);
  auto plain = encode(*model_, pixels);
  ASSERT_TRUE(whole.is_ok() && plain.is_ok());
  EXPECT_LE(vae_encode_tiled_rel(*whole, *plain), 1e-6);
  EXPECT_LE(vae_encode_tiled_rel(*plain, golden->at("latent_whole").to(at::kFloat)), 1e-5);
}

TEST_F(VaeEncodeTiledTest, RefusesTilesNoLargerThanTheOverlap) {
  const at::Tensor pixels = at::full({1, 200, 200, 3}, 0.5);
  auto r = encode_tiled(*model_, pixels, 64, 32);  // the 32-pixel-high pass cannot step
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("overlap 32"), std::string::npos) << r.status().message();
  EXPECT_FALSE(encode_tiled(*model_, at::full({1, 200, 200, 2}, 0.5), 128, 32).is_ok());
  EXPECT_FALSE(encode_tiled(*model_, at::full({1, 4, 4, 3}, 0.5), 128, 32).is_ok());
  EXPECT_TRUE(encode_tiled(*model_, at::full({1, 24, 24, 3}, 0.5), 64, 32).is_ok());  // one tile: no stepping
}

}  // namespace
}  // namespace netdist
