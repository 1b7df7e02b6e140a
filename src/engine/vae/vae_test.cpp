#include "engine/vae/vae.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/unet/key_list_testing.h"
#include "engine/vae/vae_tiled.h"

namespace netdist::vae {
namespace {

constexpr const char* kPrefix = "first_stage_model.";
const at::TensorOptions kVaeMetaOptions = at::TensorOptions().device(at::kMeta).dtype(at::kFloat);

AutoencoderKL random_vae(uint64_t seed) {
  AutoencoderKL vae(VaeConfig::tiny());
  layers::randomize_parameters(*vae, seed, 0.1);
  return vae;
}

TEST(Vae, SdKeysMatchComfyUI) {
  const std::string path = testing::test_data_path("keys/sd_vae.txt");
  auto golden = testing::read_key_list(path);
  if (!golden)
    GTEST_FAIL() << "golden key list " << path << " is missing (tools/parity/dump_keys.py makes it)";
  AutoencoderKL vae(VaeConfig::sd(), kVaeMetaOptions);
  const std::string diff = testing::key_list_diff(*golden, testing::key_list_of(*vae));
  EXPECT_TRUE(diff.empty()) << diff;
  auto detected = detect_vae_config(testing::meta_weights(*golden, kPrefix), kPrefix);
  ASSERT_TRUE(detected.is_ok()) << detected.status().to_string();
  EXPECT_EQ(*detected, VaeConfig::sd()) << detected->to_string();
}

TEST(Vae, DetectRoundTrips) {
  for (const VaeConfig& c : {VaeConfig::sd(), VaeConfig::tiny()}) {
    AutoencoderKL vae(c, kVaeMetaOptions);
    auto detected = detect_vae_config(runtime::module_weights(*vae, kPrefix), kPrefix);
    ASSERT_TRUE(detected.is_ok()) << detected.status().to_string();
    EXPECT_EQ(*detected, c) << detected->to_string();
  }
  EXPECT_EQ(VaeConfig::sd().downscale(), 8);
}

TEST(Vae, MissingKeysAreNamed) {
  auto empty = detect_vae_config(runtime::WeightMap{}, kPrefix);
  EXPECT_EQ(empty.status().code(), StatusCode::kNotFound);
  EXPECT_NE(empty.status().message().find("first_stage_model.decoder.conv_in.weight"), std::string::npos);
  AutoencoderKL vae(VaeConfig::sd(), kVaeMetaOptions);
  runtime::WeightMap weights = runtime::module_weights(*vae, kPrefix);
  weights.erase("first_stage_model.post_quant_conv.weight");
  auto missing = detect_vae_config(weights, kPrefix);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("'first_stage_model.post_quant_conv.weight'"), std::string::npos)
      << missing.status().message();
}

TEST(Vae, TinyEncodeDecodeShapes) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  AutoencoderKL vae = random_vae(1);
  at::Tensor image = torch::rand({2, 3, 16, 12}) * 2 - 1;
  at::Tensor moments = vae->encode_moments(image);
  EXPECT_EQ(moments.sizes(), (at::IntArrayRef{2, 8, 8, 6}));
  at::Tensor z = vae->encode(image);
  EXPECT_TRUE(torch::equal(z, moments.narrow(1, 0, 4)));
  at::Tensor decoded = vae->decode(z);
  EXPECT_EQ(decoded.sizes(), image.sizes());
  EXPECT_TRUE(decoded.isfinite().all().item<bool>());
}

TEST(Vae, LatentSampleUsesClampedLogVariance) {
  at::Tensor moments = torch::cat({torch::zeros({1, 4, 2, 2}), torch::full({1, 4, 2, 2}, -40.0)}, 1);
  moments[0][0][0][1] = 0.5;
  moments[0][4][0][0] = 2.0;
  at::Tensor noise = torch::ones({1, 4, 2, 2});
  at::Tensor s = latent_sample(moments, noise);
  EXPECT_NEAR(s[0][0][0][0].item<double>(), std::exp(1.0), 1e-5);
  EXPECT_NEAR(s[0][0][0][1].item<double>(), 0.5, 1e-6);
  EXPECT_NEAR(s[0][1][1][1].item<double>() / std::exp(-15.0), 1.0, 1e-5);
  EXPECT_TRUE(torch::equal(latent_sample(moments, torch::zeros({1, 4, 2, 2})), latent_mean(moments)));
}

TEST(Vae, TiledScaleOfAPointwiseFunctionIsExact) {
  at::Tensor samples = torch::randn({2, 3, 13, 11});
  auto fn = [](const at::Tensor& t) {
    return at::upsample_nearest2d(t, {t.size(2) * 4, t.size(3) * 4}, c10::nullopt, c10::nullopt) * 2.0;
  };
  at::Tensor tiled = tiled_scale(samples, fn, 6, 5, 2, 4, 3);
  EXPECT_EQ(tiled.sizes(), (at::IntArrayRef{2, 3, 52, 44}));
  EXPECT_TRUE(torch::allclose(tiled, fn(samples), 1e-5, 1e-6));
}

// GroupNorm statistics and the mid-block attention are per tile, so tiled decoding only approximates a full
// decode (closely for real VAEs on natural latents, loosely for a random tiny model); the blending itself
// is checked exactly above.
TEST(Vae, TiledDecodeApproximatesDecode) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  AutoencoderKL vae = random_vae(2);
  at::Tensor z = torch::randn({1, 4, 12, 12});
  at::Tensor full = vae->decode(z);
  at::Tensor single_tile = vae->decode_tiled(z, 32, 4);
  EXPECT_TRUE(torch::allclose(single_tile, full, 1e-5, 1e-6));
  at::Tensor tiled = vae->decode_tiled(z, 8, 3);
  EXPECT_EQ(tiled.sizes(), full.sizes());
  const double err = (tiled - full).abs().mean().item<double>();
  const double scale = full.abs().mean().item<double>();
  EXPECT_LT(err, 0.75 * scale) << "mean |tiled - full| " << err << " vs mean |full| " << scale;
}

}  // namespace
}  // namespace netdist::vae
