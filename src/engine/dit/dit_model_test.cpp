// DiffusionTransformer (dit_model.h) against ComfyUI's BaseModel.apply_model of the families'
// supported_models classes (SD3, Flux, FluxSchnell: model sampling, timestep conversion, dtype casts) on the
// tiny goldens of tests/data/dit/ (tools/parity/dit_goldens.py), and a tiny SD3-family render on the CPU: one
// flow-matching euler step from pure noise, the latent format, a 16-channel VAE decode; shapes and
// determinism. The VAE without quant convs (SD3/Flux layout) against ComfyUI's AutoencodingEngine (vae16
// golden).
#include <cstdio>

#include <initializer_list>
#include <string>
#include <string_view>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/dit/dit_model.h"
#include "engine/models/test_keys.h"
#include "engine/runtime/tensor_io.h"
#include "engine/vae/vae.h"

namespace netdist::dit {
namespace {

// Concatenation through append (GCC 12 -O3 reports false -Wrestrict/-Warray-bounds on string + literal).
inline std::string dit_model_cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out.append(p);
  return out;
}

using models::testing::test_data_path;

struct DitModelCase {
  runtime::WeightMap weights;
  runtime::WeightMap io;
};

DitModelCase load_dit_model_case(const std::string& name) {
  DitModelCase c;
  auto w = runtime::load_safetensors(test_data_path(dit_model_cat({"dit/", name, ".safetensors"})),
                                     runtime::LoadDtype::kFloat32);
  auto io = runtime::load_safetensors(test_data_path(dit_model_cat({"dit/", name, "_io.safetensors"})),
                                      runtime::LoadDtype::kFloat32);
  EXPECT_TRUE(w.is_ok()) << w.status().to_string() << " (tools/parity/dit_goldens.py makes it)";
  EXPECT_TRUE(io.is_ok()) << io.status().to_string();
  if (w.is_ok()) c.weights = std::move(w).value();
  if (io.is_ok()) c.io = std::move(io).value();
  return c;
}

void check_apply_model(const std::string& name, DitFamily family) {
  DitModelCase c = load_dit_model_case(name);
  ASSERT_FALSE(c.weights.empty());
  ASSERT_TRUE(c.io.count("apply_denoised")) << name << "_io.safetensors has no apply_denoised";
  auto model = DiffusionTransformer::load(c.weights, name, at::kFloat, at::kCPU);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  EXPECT_EQ((*model)->family(), family);
  const at::Tensor guidance = c.io.count("apply_guidance") ? c.io.at("apply_guidance") : at::Tensor();
  auto denoised = (*model)->denoise(c.io.at("apply_x"), c.io.at("apply_sigma"), c.io.at("apply_context"),
                                    c.io.at("apply_y"), guidance);
  ASSERT_TRUE(denoised.is_ok()) << denoised.status().to_string();
  const at::Tensor& ref = c.io.at("apply_denoised");
  ASSERT_EQ(denoised->sizes(), ref.sizes());
  const double diff = (*denoised - ref).abs().max().item<double>();
  const double rel = diff / ref.abs().max().item<double>();
  std::printf("[dit golden] apply_model %s: max|diff| %.3g, relative %.3g\n", name.c_str(), diff, rel);
  EXPECT_LE(rel, 1e-5) << name;
}

TEST(DitModel, ApplyModelMatchesComfyUISd3) { check_apply_model("mmdit_sd3", DitFamily::kSd3); }
TEST(DitModel, ApplyModelMatchesComfyUISd35Medium) { check_apply_model("mmdit_sd35m", DitFamily::kSd3); }
TEST(DitModel, ApplyModelMatchesComfyUIFluxDev) { check_apply_model("flux_dev", DitFamily::kFluxDev); }
TEST(DitModel, ApplyModelMatchesComfyUIFluxSchnell) {
  check_apply_model("flux_schnell", DitFamily::kFluxSchnell);
}

TEST(DitModel, FamilyConstants) {
  EXPECT_DOUBLE_EQ(dit_latent_format(DitFamily::kSd3).scale_factor, 1.5305);
  EXPECT_DOUBLE_EQ(dit_latent_format(DitFamily::kSd3).shift_factor, 0.0609);
  EXPECT_DOUBLE_EQ(dit_latent_format(DitFamily::kFluxDev).scale_factor, 0.3611);
  EXPECT_DOUBLE_EQ(dit_latent_format(DitFamily::kFluxSchnell).shift_factor, 0.1159);
  EXPECT_EQ(dit_model_sampling(DitFamily::kSd3).schedule(), sampling::ScheduleKind::kDiscreteFlow);
  EXPECT_DOUBLE_EQ(dit_model_sampling(DitFamily::kSd3).shift(), 3.0);
  EXPECT_DOUBLE_EQ(dit_model_sampling(DitFamily::kSd3).multiplier(), 1000.0);
  EXPECT_EQ(dit_model_sampling(DitFamily::kFluxDev).schedule(), sampling::ScheduleKind::kFlux);
  EXPECT_DOUBLE_EQ(dit_model_sampling(DitFamily::kFluxDev).shift(), 1.15);
  EXPECT_DOUBLE_EQ(dit_model_sampling(DitFamily::kFluxSchnell).multiplier(), 1.0);
}

TEST(DitModel, ErrorsNameTheProblem) {
  runtime::WeightMap none;
  none["first_stage_model.decoder.conv_in.weight"] = at::zeros({1});
  auto missing = DiffusionTransformer::load(none, "vae.safetensors", at::kFloat, at::kCPU);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("vae.safetensors"), std::string::npos);
  EXPECT_NE(missing.status().message().find("joint_blocks.0"), std::string::npos);

  DitModelCase c = load_dit_model_case("flux_dev");
  ASSERT_FALSE(c.weights.empty());
  auto model = DiffusionTransformer::load(c.weights, "flux_dev", at::kFloat, at::kCPU);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  auto no_guidance = (*model)->denoise(at::zeros({1, 16, 4, 4}), at::ones({1}), at::zeros({1, 3, 40}),
                                       at::zeros({1, 24}), at::Tensor());
  ASSERT_FALSE(no_guidance.is_ok());
  EXPECT_NE(no_guidance.status().message().find("guidance"), std::string::npos);

  DitModelCase s = load_dit_model_case("mmdit_sd3");
  ASSERT_FALSE(s.weights.empty());
  runtime::WeightMap extra = s.weights;
  extra["unknown.weight"] = at::zeros({1});
  auto unexpected = DiffusionTransformer::load(extra, "sd3_extra", at::kFloat, at::kCPU);
  EXPECT_FALSE(unexpected.is_ok());
  auto sd3 = DiffusionTransformer::load(s.weights, "mmdit_sd3", at::kFloat, at::kCPU);
  ASSERT_TRUE(sd3.is_ok());
  auto too_big = (*sd3)->denoise(at::zeros({1, 16, 40, 8}), at::ones({1}), at::zeros({1, 3, 48}),
                                 at::zeros({1, 32}), at::Tensor());
  ASSERT_FALSE(too_big.is_ok());
  EXPECT_EQ(too_big.status().code(), StatusCode::kInvalidArgument);
}

// Load, one euler step from σ_max = 1 to 0 (x0 = the denoised prediction), latent format, 16-channel VAE
// decode.
at::Tensor dit_tiny_render(const std::string& name, uint64_t seed) {
  DitModelCase c = load_dit_model_case(name);
  if (c.weights.empty()) return {};
  auto model = DiffusionTransformer::load(c.weights, name, at::kFloat, at::kCPU);
  if (!model.is_ok()) return {};
  const sampling::ModelSampling& ms = (*model)->sampling();
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const at::Tensor noise = at::randn({1, 16, 8, 8}, gen, at::TensorOptions().dtype(at::kFloat));
  const at::Tensor sigma = ms.sigma_max().reshape({1});
  const at::Tensor x = ms.noise_scaling(ms.sigma_max(), noise, at::zeros_like(noise), true);
  const bool flux = (*model)->family() != DitFamily::kSd3;
  const at::Tensor context = at::randn({1, 4, flux ? 40 : 48}, gen, at::TensorOptions().dtype(at::kFloat));
  const at::Tensor y = at::randn({1, flux ? 24 : 32}, gen, at::TensorOptions().dtype(at::kFloat));
  auto denoised = (*model)->denoise(x, sigma, context, y, at::full({1}, 3.5));
  if (!denoised.is_ok()) return {};
  // Euler to σ = 0: x + (x − x0)/σ · (0 − σ) = x0.
  const at::Tensor latent = ms.inverse_noise_scaling(at::zeros({}), *denoised);
  DitModelCase v = load_dit_model_case("vae16");  // a 16-channel VAE without quant convs, as SD3's and Flux's
  auto vc = vae::detect_vae_config(v.weights, "");
  if (!vc.is_ok()) return {};
  vae::AutoencoderKL vae(*vc);
  if (!runtime::load_module_weights(*vae, v.weights, "", "vae16").is_ok()) return {};
  torch::NoGradGuard no_grad;
  return vae->decode((*model)->latent_format().process_out(latent));
}

double dit_vae_rel(const std::string& what, const at::Tensor& ours, const at::Tensor& ref) {
  EXPECT_EQ(ours.sizes(), ref.sizes()) << what;
  if (ours.sizes() != ref.sizes()) return 1e9;
  const double diff = (ours - ref).abs().max().item<double>();
  const double rel = diff / ref.abs().max().item<double>();
  std::printf("[dit golden] %s: max|diff| %.3g, relative %.3g\n", what.c_str(), diff, rel);
  return rel;
}

TEST(DitModel, SixteenChannelVaeWithoutQuantConvMatchesComfyUI) {
  DitModelCase v = load_dit_model_case("vae16");
  ASSERT_FALSE(v.weights.empty());
  auto config = vae::detect_vae_config(v.weights, "");
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_FALSE(config->use_quant_conv);
  EXPECT_EQ(config->z_channels, 16);
  EXPECT_EQ(config->embed_dim, 16);
  vae::AutoencoderKL vae(*config);
  ASSERT_TRUE(runtime::load_module_weights(*vae, v.weights, "", "vae16").is_ok());
  torch::NoGradGuard no_grad;
  EXPECT_LE(dit_vae_rel("vae16 decode", vae->decode(v.io.at("z")), v.io.at("decoded")), 1e-5);
  EXPECT_LE(dit_vae_rel("vae16 encoder moments", vae->encode_moments(v.io.at("image")), v.io.at("moments")),
            1e-5);
}

TEST(DitModel, TinyRenderShapesAndDeterminism) {
  for (const std::string name : {"mmdit_sd3", "flux_schnell"}) {
    const at::Tensor a = dit_tiny_render(name, 42);
    const at::Tensor b = dit_tiny_render(name, 42);
    const at::Tensor other = dit_tiny_render(name, 43);
    ASSERT_TRUE(a.defined()) << name;
    EXPECT_EQ(a.sizes(), (std::vector<int64_t>{1, 3, 16, 16})) << name;  // 8×8 latent, 2× VAE
    EXPECT_TRUE(at::isfinite(a).all().item<bool>()) << name;
    EXPECT_TRUE(at::equal(a, b)) << name << ": the same seed gave a different image";
    EXPECT_FALSE(at::equal(a, other)) << name << ": another seed gave the same image";
  }
}

}  // namespace
}  // namespace netdist::dit
