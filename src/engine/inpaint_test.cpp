// Inpainting in the engine (engine/inpaint.h): ComfyUI's mask helpers against values worked out from
// comfy/utils.py, KSamplerX0Inpaint's arithmetic around a fake denoiser, the noise mask in sample() on the
// tiny model (a zero mask keeps the latent, a ones mask changes nothing, a split batch with a mask equals the
// unsplit one), a 9-channel inpainting checkpoint loaded and sampled (its concat input reaches the UNet),
// and bad masks refused by name.
#include <gtest/gtest.h>

#include <filesystem>

#include <unistd.h>

#include <torch/torch.h>

#include "engine/inpaint.h"
#include "engine/micro_batch.h"
#include "engine/runtime/tensor_io.h"
#include "engine/sampling/noise.h"
#include "io/safetensors.h"
#include "netdist/engine.h"
#include "netdist/source_dir.h"

namespace netdist {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<Model> inpaint_tiny_model() {
  static std::shared_ptr<Model> model = [] {
    auto m = load_model(
        (std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string(), {});
    EXPECT_TRUE(m.is_ok()) << m.status().to_string();
    return m.is_ok() ? *m : nullptr;
  }();
  return model;
}

TEST(InpaintMask, RepeatToBatchSizeRepeatsOrCuts) {
  at::Tensor t = at::arange(3, at::kFloat).reshape({3, 1});
  EXPECT_TRUE(at::equal(inpaint::repeat_to_batch_size(t, 2), t.slice(0, 0, 2)));
  EXPECT_TRUE(at::equal(inpaint::repeat_to_batch_size(t, 7).flatten(),
                        at::tensor({0.f, 1.f, 2.f, 0.f, 1.f, 2.f, 0.f})));
}

TEST(InpaintMask, ResizeToBatchSizePicksNearestRows) {
  at::Tensor t = at::arange(4, at::kFloat).reshape({4, 1});
  // Fewer: scale (4−1)/(3−1) = 1.5, rows round(0), round(1.5) = 2, round(3) = 3.
  EXPECT_TRUE(at::equal(inpaint::resize_to_batch_size(t, 3).flatten(), at::tensor({0.f, 2.f, 3.f})));
  // More: scale 4/6, rows floor((i + 0.5)·2/3) = 0, 1, 1, 2, 3, 3.
  EXPECT_TRUE(at::equal(inpaint::resize_to_batch_size(t, 6).flatten(), at::tensor({0.f, 1.f, 1.f, 2.f, 3.f, 3.f})));
  EXPECT_TRUE(at::equal(inpaint::resize_to_batch_size(t, 1).flatten(), at::tensor({0.f})));
}

TEST(InpaintMask, ReshapeMaskScalesRepeatsChannelsAndBatch) {
  // A 16×16 mask, left half 1: bilinear to 2×2 (align_corners false) gives exactly 1 and 0 columns.
  at::Tensor mask = at::zeros({16, 16});
  mask.slice(1, 0, 8).fill_(1.0);
  at::Tensor m = inpaint::reshape_mask(mask, {3, 4, 2, 2});
  ASSERT_EQ(m.sizes(), (std::vector<int64_t>{3, 4, 2, 2}));
  EXPECT_TRUE(at::equal(m.select(3, 0), at::ones({3, 4, 2})));
  EXPECT_TRUE(at::equal(m.select(3, 1), at::zeros({3, 4, 2})));
  // Same-size masks pass unchanged; rows repeat cyclically.
  at::Tensor two = at::rand({2, 1, 4, 4});
  at::Tensor r = inpaint::reshape_mask(two, {5, 4, 4, 4});
  EXPECT_TRUE(at::equal(r.select(0, 4).select(0, 3), two.select(0, 0).select(0, 0)));
}

TEST(InpaintMask, UpscaleCenterCropsToTheTargetAspect) {
  // 4 wide, 2 high → 1×1: old aspect 2 > new aspect 1, x = round((4 − 4·0.5)/2) = 1: columns 1..2.
  at::Tensor t = at::arange(8, at::kFloat).reshape({1, 1, 2, 4});
  at::Tensor out = inpaint::upscale_bilinear_center(t, 2, 2);
  EXPECT_TRUE(at::equal(out.flatten(), at::tensor({1.f, 2.f, 5.f, 6.f})));
}

TEST(InpaintMask, MaskedDenoiserIsKSamplerX0Inpaint) {
  sampling::ModelSampling ms;
  at::Tensor mask = at::tensor({1.f, 0.f, 0.25f, 1.f}).reshape({1, 1, 2, 2});
  at::Tensor noise = at::full({1, 1, 2, 2}, 2.0);
  at::Tensor latent = at::full({1, 1, 2, 2}, 3.0);
  at::Tensor seen;
  sampling::Denoiser inner = [&](const at::Tensor& x, const at::Tensor&) {
    seen = x.clone();
    return x * 10.0;
  };
  sampling::Denoiser d = inpaint::masked_denoiser(inner, ms, mask, noise, latent);
  at::Tensor x = at::full({1, 1, 2, 2}, 5.0);
  at::Tensor out = d(x, at::tensor({0.5f}));
  // Where masked out: the latent noised to σ (3 + 2·0.5 = 4); in: x; mixed at 0.25.
  EXPECT_TRUE(at::allclose(seen.flatten(), at::tensor({5.f, 4.f, 4.25f, 5.f})));
  // The prediction where masked out is the latent itself.
  EXPECT_TRUE(at::allclose(out.flatten(), at::tensor({50.f, 3.f, 42.5f * 0.25f + 3.f * 0.75f, 50.f})));
}

SampleRequest masked_request(Model& m, int64_t batch) {
  SampleRequest req;
  req.seed = 7;
  req.steps = 3;
  req.cfg = 5.0;
  req.latent = at::randn({batch, 4, 8, 8}, at::TensorOptions().dtype(at::kFloat)) * 0.5;
  return req;
}

TEST(InpaintSample, ZeroMaskKeepsTheLatentAndOnesMaskChangesNothing) {
  Model& m = *inpaint_tiny_model();
  Conditioning pos = encode_prompt(m, "a red heart").value();
  Conditioning neg = encode_prompt(m, "").value();
  SampleRequest req = masked_request(m, 2);
  at::Tensor plain = sample(m, pos, neg, req, nullptr).value();
  req.noise_mask = at::ones({1, 1, 64, 64});
  EXPECT_TRUE(at::equal(sample(m, pos, neg, req, nullptr).value(), plain));
  req.noise_mask = at::zeros({1, 1, 64, 64});
  at::Tensor kept = sample(m, pos, neg, req, nullptr).value();
  EXPECT_TRUE(at::allclose(kept, req.latent, 1e-4, 1e-5)) << (kept - req.latent).abs().max().item<float>();
  // Left half masked: the right half keeps the latent, the left half is sampled like the unmasked run.
  at::Tensor half = at::zeros({64, 64});
  half.slice(1, 0, 32).fill_(1.0);
  req.noise_mask = half;
  at::Tensor out = sample(m, pos, neg, req, nullptr).value();
  EXPECT_TRUE(at::allclose(out.slice(3, 4, 8), req.latent.slice(3, 4, 8), 1e-4, 1e-5));
  EXPECT_FALSE(at::allclose(out.slice(3, 0, 4), req.latent.slice(3, 0, 4), 1e-2, 1e-2));
}

TEST(InpaintSample, SplitBatchWithAMaskEqualsTheUnsplitOne) {
  Model& m = *inpaint_tiny_model();
  Conditioning pos = encode_prompt(m, "a red heart").value();
  Conditioning neg = encode_prompt(m, "").value();
  for (const char* sampler : {"euler", "euler_ancestral"}) {
    SampleRequest req = masked_request(m, 5);
    req.sampler = sampler;
    req.noise_mask = at::rand({2, 1, 16, 16});  // two masks, repeated over five rows
    at::Tensor whole = sample(m, pos, neg, req, nullptr).value();
    const std::vector<int64_t> bounds = micro_batch_bounds(5);
    for (size_t g = 0; g + 1 < bounds.size(); ++g) {
      SampleRequest part = req;
      part.row_begin = bounds[g];
      part.row_end = bounds[g + 1];
      EXPECT_TRUE(at::equal(sample(m, pos, neg, part, nullptr).value(), whole.slice(0, bounds[g], bounds[g + 1])))
          << sampler << " rows [" << bounds[g] << ", " << bounds[g + 1] << ")";
    }
  }
}

TEST(InpaintSample, DdimReNoisesWithItsOwnNoise) {
  // ComfyUI's "ddim" is euler whose kept latent is noised with randn(seed + 1) instead of the initial noise.
  Model& m = *inpaint_tiny_model();
  Conditioning pos = encode_prompt(m, "a red heart").value();
  Conditioning neg = encode_prompt(m, "").value();
  SampleRequest req = masked_request(m, 1);
  req.noise_mask = at::ones({8, 8});
  req.sampler = "euler";
  at::Tensor euler = sample(m, pos, neg, req, nullptr).value();
  req.sampler = "ddim";
  EXPECT_TRUE(at::equal(sample(m, pos, neg, req, nullptr).value(), euler));  // nothing kept, nothing re-noised
  at::Tensor half = at::zeros({8, 8});
  half.slice(1, 0, 4).fill_(1.0);
  req.noise_mask = half;
  at::Tensor ddim = sample(m, pos, neg, req, nullptr).value();
  req.sampler = "euler";
  EXPECT_FALSE(at::allclose(sample(m, pos, neg, req, nullptr).value(), ddim, 1e-5, 1e-6));
  EXPECT_TRUE(at::equal(inpaint::inpaint_noise("ddim", 7, {3, 4, 2, 2}, {}, 1, 2),
                        sampling::initial_noise_rows(8, {3, 4, 2, 2}, 1, 2)));
}

TEST(InpaintSample, BadMasksAreRefusedByName) {
  Model& m = *inpaint_tiny_model();
  Conditioning pos = encode_prompt(m, "x").value();
  SampleRequest req = masked_request(m, 1);
  req.noise_mask = at::ones({4});
  Result<at::Tensor> r = sample(m, pos, pos, req, nullptr);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("latent_image's noise_mask is [4]"), std::string::npos) << r.status().message();
  req.noise_mask = at::ones({1, 8, 8}, at::kInt);
  r = sample(m, pos, pos, req, nullptr);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("not floating point"), std::string::npos) << r.status().message();
  req.noise_mask = at::ones({1, 0, 8});
  EXPECT_FALSE(sample(m, pos, pos, req, nullptr).is_ok());
}

TEST(InpaintConcat, ComfyUIDefaultsAndMasks) {
  const std::vector<int64_t> shape = {2, 4, 2, 2};
  at::Tensor latent = at::full({2, 4, 2, 2}, 0.5);
  // No mask at all: ones and the blank (mid-grey) image latent.
  at::Tensor c = inpaint::concat_cond(shape, latent, {}, {}, {}, 0.18215);
  ASSERT_EQ(c.sizes(), (std::vector<int64_t>{2, 5, 2, 2}));
  EXPECT_TRUE(at::equal(c.select(1, 0), at::ones({2, 2, 2})));
  EXPECT_TRUE(at::allclose(c.select(1, 2), at::full({2, 2, 2}, -0.6876)));
  // The sampler's mask (first channel, rounded) and the sampled latent itself.
  at::Tensor mask = at::full({2, 4, 2, 2}, 0.6);
  c = inpaint::concat_cond(shape, latent, mask, {}, {}, 0.18215);
  EXPECT_TRUE(at::equal(c.slice(1, 0, 1), at::ones({2, 1, 2, 2})));
  EXPECT_TRUE(at::equal(c.slice(1, 1, 5), latent));
  // InpaintModelConditioning's values win: its latent scaled, its pixel mask resized and rounded.
  at::Tensor concat_latent = at::full({1, 4, 2, 2}, 2.0);
  at::Tensor concat_mask = at::zeros({1, 1, 16, 16});
  c = inpaint::concat_cond(shape, latent, mask, concat_latent, concat_mask, 0.5);
  EXPECT_TRUE(at::equal(c.slice(1, 0, 1), at::zeros({2, 1, 2, 2})));
  EXPECT_TRUE(at::equal(c.slice(1, 1, 5), at::ones({2, 4, 2, 2})));
}

// The tiny model made an inpainting model: its UNet's first convolution widened to 9 input channels (the 5
// new ones random, so that the concat input matters), written with the real safetensors writer.
class InpaintCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netdist_inpaint_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    path_ = (dir_ / "tiny-inpaint.safetensors").string();
    const std::string tiny =
        (std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string();
    auto file = io::SafetensorsFile::open(tiny);
    ASSERT_TRUE(file.is_ok()) << file.status().to_string();
    auto weights = runtime::load_safetensors(tiny);
    ASSERT_TRUE(weights.is_ok()) << weights.status().to_string();
    runtime::WeightMap w = *weights;
    at::Tensor& conv = w.at("model.diffusion_model.input_blocks.0.0.weight");
    torch::manual_seed(3);
    conv = at::cat({conv.to(at::kFloat), at::randn({conv.size(0), 5, 3, 3}) * 0.1}, 1);
    ASSERT_TRUE(runtime::save_safetensors(path_, w, (*file)->metadata()).is_ok());
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::string path_;
};

TEST_F(InpaintCheckpoint, LoadsAndSamplesWithItsConcatInput) {
  auto model = load_model(path_, {});
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  Model& m = **model;
  Conditioning pos = encode_prompt(m, "a red heart").value();
  Conditioning neg = encode_prompt(m, "").value();
  SampleRequest req = masked_request(m, 3);
  req.steps = 2;
  at::Tensor plain = sample(m, pos, neg, req, nullptr).value();
  ASSERT_EQ(plain.sizes(), req.latent.sizes());
  EXPECT_TRUE(at::isfinite(plain).all().item<bool>());
  // InpaintModelConditioning's masked-image latent changes what the UNet sees.
  Conditioning pos2 = pos, neg2 = neg;
  for (Conditioning* c : {&pos2, &neg2}) {
    (*c)[0].concat_latent_image = at::full({1, 4, 8, 8}, 3.0);
    (*c)[0].concat_mask = at::zeros({1, 1, 64, 64});
  }
  at::Tensor conditioned = sample(m, pos2, neg2, req, nullptr).value();
  EXPECT_FALSE(at::allclose(conditioned, plain, 1e-4, 1e-5));
  // With a mask, split rows equal the unsplit batch.
  req.noise_mask = at::rand({3, 1, 64, 64});
  at::Tensor whole = sample(m, pos2, neg2, req, nullptr).value();
  const std::vector<int64_t> bounds = micro_batch_bounds(3);
  for (size_t g = 0; g + 1 < bounds.size(); ++g) {
    SampleRequest part = req;
    part.row_begin = bounds[g];
    part.row_end = bounds[g + 1];
    EXPECT_TRUE(at::equal(sample(m, pos2, neg2, part, nullptr).value(), whole.slice(0, bounds[g], bounds[g + 1])))
        << "rows from " << bounds[g];
  }
}

}  // namespace
}  // namespace netdist
