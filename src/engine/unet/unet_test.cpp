#include "engine/unet/unet.h"

#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/runtime/weights.h"
#include "engine/unet/sdxl_adm.h"

namespace netdist::unet {
namespace {

UNetConfig tiny_xl() {
  UNetConfig c;
  c.model_channels = 32;
  c.channel_mult = {1, 2};
  c.num_res_blocks = {1, 1};
  c.transformer_depth = {0, 2};
  c.transformer_depth_output = {0, 0, 2, 2};
  c.transformer_depth_middle = 1;
  c.num_head_channels = 16;
  c.context_dim = 48;
  c.use_linear_in_transformer = true;
  c.adm_in_channels = 40;
  return c;
}

UNetModel random_model(const UNetConfig& c, uint64_t seed) {
  torch::manual_seed(static_cast<int64_t>(seed));
  UNetModel model(c);
  layers::randomize_parameters(*model, seed);
  return model;
}

TEST(UNet, TimestepEmbeddingIsCosThenSin) {
  at::Tensor t = torch::tensor({0.0f, 10.0f, 999.0f});
  at::Tensor e = timestep_embedding(t, 8);
  ASSERT_EQ(e.sizes(), (at::IntArrayRef{3, 8}));
  EXPECT_EQ(e.scalar_type(), at::kFloat);
  for (int64_t b = 0; b < 3; ++b) {
    for (int64_t i = 0; i < 4; ++i) {
      const double f = std::exp(-std::log(10000.0) * static_cast<double>(i) / 4.0);
      const double arg = t[b].item<double>() * f;
      EXPECT_NEAR(e[b][i].item<double>(), std::cos(arg), 1e-4);
      EXPECT_NEAR(e[b][i + 4].item<double>(), std::sin(arg), 1e-4);
    }
  }
  EXPECT_EQ(timestep_embedding(t, 7).size(1), 7);
  EXPECT_EQ(timestep_embedding(t, 7)[1][6].item<float>(), 0.0f);
}

TEST(UNet, TinyForwardRunsOnCpu) {
  torch::NoGradGuard no_grad;
  UNetModel model = random_model(UNetConfig::tiny(), 1);
  at::Tensor x = torch::randn({2, 4, 8, 8});
  at::Tensor out = model(x, torch::tensor({999.0f, 1.5f}), torch::randn({2, 5, 32}));
  EXPECT_EQ(out.sizes(), x.sizes());
  EXPECT_TRUE(out.isfinite().all().item<bool>());
  EXPECT_GT(out.abs().mean().item<float>(), 0.0f);
}

TEST(UNet, OddLatentSizesFollowSkipShapes) {
  torch::NoGradGuard no_grad;
  UNetModel model = random_model(UNetConfig::tiny(), 2);
  at::Tensor x = torch::randn({1, 4, 9, 7});
  at::Tensor out = model(x, torch::tensor({500.0f}), torch::randn({1, 3, 32}));
  EXPECT_EQ(out.sizes(), x.sizes());
}

TEST(UNet, LinearProjectionAndAdmPath) {
  torch::NoGradGuard no_grad;
  UNetModel model = random_model(tiny_xl(), 3);
  at::Tensor x = torch::randn({2, 4, 8, 8});
  at::Tensor t = torch::tensor({10.0f, 700.0f});
  at::Tensor ctx = torch::randn({2, 6, 48});
  at::Tensor y = torch::randn({2, 40});
  at::Tensor out = model(x, t, ctx, y);
  EXPECT_EQ(out.sizes(), x.sizes());
  EXPECT_TRUE(out.isfinite().all().item<bool>());
  at::Tensor other = model(x, t, ctx, y + 1.0);
  EXPECT_GT((out - other).abs().max().item<float>(), 1e-6f);
}

TEST(UNet, BatchItemsAreIndependent) {
  torch::NoGradGuard no_grad;
  UNetModel model = random_model(UNetConfig::tiny(), 4);
  at::Tensor x = torch::randn({2, 4, 8, 8});
  at::Tensor t = torch::tensor({100.0f, 800.0f});
  at::Tensor ctx = torch::randn({2, 4, 32});
  at::Tensor both = model(x, t, ctx);
  for (int64_t b = 0; b < 2; ++b) {
    at::Tensor one = model(x.narrow(0, b, 1), t.narrow(0, b, 1), ctx.narrow(0, b, 1));
    EXPECT_TRUE(torch::allclose(both.narrow(0, b, 1), one, 1e-4, 1e-5));
  }
}

TEST(UNet, ChannelsLastInputGivesSameOutput) {
  torch::NoGradGuard no_grad;
  UNetModel model = random_model(UNetConfig::tiny(), 5);
  at::Tensor x = torch::randn({1, 4, 8, 8});
  at::Tensor t = torch::tensor({250.0f});
  at::Tensor ctx = torch::randn({1, 4, 32});
  at::Tensor a = model(x, t, ctx);
  at::Tensor b = model(x.contiguous(at::MemoryFormat::ChannelsLast), t, ctx);
  EXPECT_TRUE(torch::allclose(a, b, 1e-4, 1e-5));
}

TEST(UNet, WeightsLoadIntoAFreshModel) {
  torch::NoGradGuard no_grad;
  UNetModel source = random_model(UNetConfig::tiny(), 6);
  UNetModel target(UNetConfig::tiny());
  const runtime::WeightMap weights = runtime::module_weights(*source, "model.diffusion_model.");
  ASSERT_TRUE(runtime::load_module_weights(*target, weights, "model.diffusion_model.", "tiny").is_ok());
  at::Tensor x = torch::randn({1, 4, 8, 8});
  at::Tensor t = torch::tensor({42.0f});
  at::Tensor ctx = torch::randn({1, 2, 32});
  EXPECT_TRUE(torch::equal(source(x, t, ctx), target(x, t, ctx)));
}

TEST(UNet, CrossAttentionSplitsHeadsLikeComfyUI) {
  torch::NoGradGuard no_grad;
  CrossAttention attn(16, 12, 2, 8, at::kFloat);
  layers::randomize_parameters(*attn, 7, 0.3);
  at::Tensor x = torch::randn({2, 5, 16});
  at::Tensor ctx = torch::randn({2, 3, 12});
  at::Tensor out = attn(x, ctx);
  auto params = attn->named_parameters();
  at::Tensor q = at::linear(x, params["to_q.weight"]);
  at::Tensor k = at::linear(ctx, params["to_k.weight"]);
  at::Tensor v = at::linear(ctx, params["to_v.weight"]);
  std::vector<at::Tensor> heads;
  for (int64_t h = 0; h < 2; ++h) {
    at::Tensor qh = q.narrow(2, h * 8, 8), kh = k.narrow(2, h * 8, 8), vh = v.narrow(2, h * 8, 8);
    heads.push_back(at::softmax(at::matmul(qh, kh.transpose(1, 2)) / std::sqrt(8.0), -1).matmul(vh));
  }
  at::Tensor expected = at::linear(at::cat(heads, 2), params["to_out.0.weight"], params["to_out.0.bias"]);
  EXPECT_TRUE(torch::allclose(out, expected, 1e-4, 1e-5));
}

TEST(UNet, FeedForwardGatesWithTheSecondHalf) {
  torch::NoGradGuard no_grad;
  FeedForward ff(8, at::kFloat);
  layers::randomize_parameters(*ff, 8, 0.3);
  auto params = ff->named_parameters();
  at::Tensor x = torch::randn({3, 8});
  at::Tensor p = at::linear(x, params["net.0.proj.weight"], params["net.0.proj.bias"]);
  at::Tensor a = p.narrow(1, 0, 32), gate = p.narrow(1, 32, 32);
  at::Tensor expected = at::linear(a * 0.5 * gate * (1 + at::erf(gate / std::sqrt(2.0))), params["net.2.weight"],
                                   params["net.2.bias"]);
  EXPECT_TRUE(torch::allclose(ff(x), expected, 1e-4, 1e-5));
}

TEST(UNet, SdxlAdmLayout) {
  at::Tensor pooled = torch::randn({2, 1280});
  at::Tensor y = sdxl_adm(pooled, 1024, 768, 0, 16, 1024, 768);
  ASSERT_EQ(y.sizes(), (at::IntArrayRef{2, 2816}));
  EXPECT_TRUE(torch::equal(y.narrow(1, 0, 1280), pooled));
  const double values[] = {768, 1024, 16, 0, 768, 1024};  // height, width, crop_h, crop_w, target h, target w
  for (int i = 0; i < 6; ++i) {
    const int64_t base = 1280 + 256 * i;
    EXPECT_NEAR(y[1][base].item<double>(), std::cos(values[i]), 1e-4) << i;
    EXPECT_NEAR(y[1][base + 128].item<double>(), std::sin(values[i]), 1e-4) << i;
    const double f = std::exp(-std::log(10000.0) * 5.0 / 128.0);
    EXPECT_NEAR(y[0][base + 5].item<double>(), std::cos(values[i] * f), 1e-4) << i;
  }
}

TEST(UNet, SdxlRefinerAdmLayout) {
  // ComfyUI SDXLRefiner.encode_adm: pooled, then height, width, crop_h, crop_w, aesthetic score (2560 wide).
  at::Tensor pooled = torch::randn({2, 1280});
  at::Tensor y = sdxl_refiner_adm(pooled, 1024, 768, 8, 16, 2.5);
  ASSERT_EQ(y.sizes(), (at::IntArrayRef{2, 2560}));
  EXPECT_TRUE(torch::equal(y.narrow(1, 0, 1280), pooled));
  const double values[] = {768, 1024, 16, 8, 2.5};
  const double f = std::exp(-std::log(10000.0) * 5.0 / 128.0);
  for (int i = 0; i < 5; ++i) {
    const int64_t base = 1280 + 256 * i;
    EXPECT_NEAR(y[1][base].item<double>(), std::cos(values[i]), 1e-4) << i;
    EXPECT_NEAR(y[1][base + 128].item<double>(), std::sin(values[i]), 1e-4) << i;
    EXPECT_NEAR(y[0][base + 5].item<double>(), std::cos(values[i] * f), 1e-4) << i;
  }
  // Its first four blocks are the base model's.
  at::Tensor base = sdxl_adm(pooled, 1024, 768, 8, 16, 1024, 768);
  EXPECT_TRUE(torch::equal(y.narrow(1, 0, 1280 + 4 * 256), base.narrow(1, 0, 1280 + 4 * 256)));
}

}  // namespace
}  // namespace netdist::unet
