// ControlNet against the pinned ComfyUI (goldens from tools/parity/controlnet_golden.py: comfy.cldm's
// ControlNet, comfy.controlnet.ControlNet.get_control over a chain, UNetModel with control, on tiny SD1-like
// and SDXL-like configs whose weights both sides draw from torch's CPU generator), the loader's layouts and
// errors, and sampling with a ControlNet on the embedded model: rows sampled alone equal the unsplit batch,
// an inactive range changes nothing, chained and negative-side ControlNets.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "engine/control/controlnet.h"
#include "engine/model.h"
#include "engine/runtime/tensor_io.h"
#include "netdist/controlnet.h"
#include "netdist/engine.h"
#include "netdist/source_dir.h"

namespace netdist {
namespace {

namespace fs = std::filesystem;

runtime::WeightMap controlnet_golden_map() {
  static runtime::WeightMap g = [] {
    const fs::path p =
        fs::path(NETDIST_SOURCE_DIR) / "tests" / "data" / "controlnet" / "controlnet_golden.safetensors";
    auto w = runtime::load_safetensors(p.string());
    EXPECT_TRUE(w.is_ok()) << w.status().to_string() << " (run tools/parity/controlnet_golden.py)";
    return w.is_ok() ? *w : runtime::WeightMap{};
  }();
  return g;
}

const at::Tensor& cn_gt(const std::string& name);

// cn_gt(prefix + suffix), the key built with append (GCC 12 -O3's false -Wstringop-overflow on string +
// literal).
const at::Tensor& cn_gt(const std::string& prefix, const char* suffix) {
  std::string key = prefix;
  key.append(suffix);
  return cn_gt(key);
}

const at::Tensor& cn_gt(const std::string& name) {
  static runtime::WeightMap g = controlnet_golden_map();
  static const at::Tensor none;
  auto it = g.find(name);
  EXPECT_TRUE(it != g.end()) << "golden tensor '" << name << "' missing";
  return it == g.end() ? none : it->second;
}

// tools/parity/controlnet_golden.py fill(): every parameter in sorted-name order from one CPU generator.
std::vector<double> controlnet_test_fill(torch::nn::Module& m, uint64_t seed) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (const auto& p : m.named_parameters(true)) params.emplace_back(p.key(), p.value());
  std::sort(params.begin(), params.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<double> sums;
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : params) {
    at::Tensor r = at::randn(t.sizes(), g, at::kFloat);
    if (t.dim() >= 2) {
      int64_t fan_in = 1;
      for (int64_t i = 1; i < t.dim(); ++i) fan_in *= t.size(i);
      r = r * (1.0 / std::pow(static_cast<double>(fan_in), 0.5));
    } else if (name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0) {
      r = r * 0.1 + 1.0;
    } else {
      r = r * 0.1;
    }
    t.copy_(r);
    sums.push_back(r.to(at::kDouble).sum().item<double>());
  }
  return sums;
}

void cn_expect_sums(const std::vector<double>& sums, const at::Tensor& golden_sums, const std::string& what) {
  ASSERT_EQ(static_cast<int64_t>(sums.size()), golden_sums.numel()) << what << ": parameter count";
  for (size_t i = 0; i < sums.size(); ++i) {
    const double g = golden_sums[static_cast<int64_t>(i)].item<double>();
    ASSERT_NEAR(sums[i], g, 1e-9 * std::max(1.0, std::abs(g))) << what << " parameter " << i;
  }
}

unet::UNetConfig cn_tiny_config(bool sdxl) {
  unet::UNetConfig c;
  c.model_channels = 32;
  c.channel_mult = {1, 2};
  c.num_res_blocks = {1, 1};
  c.transformer_depth = {1, 1};
  c.transformer_depth_output = {1, 1, 1, 1};
  c.transformer_depth_middle = 1;
  c.num_heads = -1;
  c.num_head_channels = 32;
  c.context_dim = 32;
  c.use_linear_in_transformer = sdxl;
  c.adm_in_channels = sdxl ? 48 : 0;
  return c;
}

// Largest |a − b| relative to max |b|.
double cn_rel_err(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(1e-12, b.abs().max().item<double>());
}

void cn_check_case(const std::string& name, bool sdxl) {
  const unet::UNetConfig config = cn_tiny_config(sdxl);
  unet::UNetModel u(config);
  auto net1 = std::make_shared<ControlNet>(), net2 = std::make_shared<ControlNet>();
  net1->model_ = control::ControlNetModel(config, 3, at::kFloat);
  net2->model_ = control::ControlNetModel(config, 3, at::kFloat);
  cn_expect_sums(controlnet_test_fill(*u, 11), cn_gt(name, ".sums.unet"), "UNet");
  cn_expect_sums(controlnet_test_fill(*net1->model_, 12), cn_gt(name, ".sums.cn1"), "ControlNet 1");
  cn_expect_sums(controlnet_test_fill(*net2->model_, 13), cn_gt(name, ".sums.cn2"), "ControlNet 2");

  auto c1 = std::make_shared<ControlApply>();
  c1->net = net1;
  c1->hint = cn_gt(name, ".hint1");
  c1->strength = 0.7;
  auto c2 = std::make_shared<ControlApply>();
  c2->net = net2;
  c2->hint = cn_gt(name, ".hint2");
  c2->strength = 1.3;
  c2->start_percent = 0.2;
  c2->end_percent = 0.9;
  c2->previous = c1;

  const sampling::ModelSampling ms;
  const at::Tensor range = cn_gt(name, ".range");
  EXPECT_EQ(control::percent_to_sigma(ms, 0.2), range[0].item<double>());
  EXPECT_EQ(control::percent_to_sigma(ms, 0.9), range[1].item<double>());
  const at::Tensor x = cn_gt(name, ".x"), context = cn_gt(name, ".context");
  const at::Tensor y = sdxl ? cn_gt(name, ".y") : at::Tensor();
  c10::InferenceMode inference;
  for (int step = 0; step < 3; ++step) {
    std::string s = name;
    s.append(".s").append(std::to_string(step));
    const at::Tensor sigma = cn_gt(s, ".sigma");
    const at::Tensor xc = ms.calculate_input(sigma, x);
    const at::Tensor t = ms.timestep(sigma).to(at::kFloat);
    auto ctrl = control::chain_control(*c2, ms, xc, t, context, y, sigma[0].item<double>(), 0, 2);
    ASSERT_TRUE(ctrl.has_value());
    ASSERT_EQ(ctrl->middle.size(), 1u);
    ASSERT_EQ(ctrl->output.size(), 4u);
    if (step < 2) {
      EXPECT_LE(cn_rel_err(ctrl->middle[0], cn_gt(s, ".middle.0")), 1e-5) << s;
      EXPECT_LE(cn_rel_err(ctrl->output[0], cn_gt(s, ".output.0")), 1e-5) << s;
      EXPECT_LE(cn_rel_err(ctrl->output[3], cn_gt(s, ".output.3")), 1e-5) << s;
    }
    const at::Tensor out = u->forward(xc, t, context, y, &*ctrl);
    const double err = cn_rel_err(ms.calculate_denoised(sigma, out, x), cn_gt(s, ".denoised"));
    EXPECT_LE(err, 1e-5) << s << " denoised";
    std::printf("[controlnet golden] %s: denoised max relative error %.3g\n", s.c_str(), err);
  }
}

TEST(ControlNetGolden, Sd1ChainMatchesComfyUI) { cn_check_case("sd1", false); }

// A whole KSampler (euler, normal, 4 steps, cfg 5, batch 2, seed 21) through sample() on a Model holding the
// tiny UNet, against comfy.sample.sample on ComfyUI's BaseModel with the same weights and ControlNet chain.
TEST(ControlNetGolden, KSamplerMatchesComfyUI) {
  const unet::UNetConfig config = cn_tiny_config(false);
  auto model = std::make_shared<Model>();
  model->path_ = "tiny-controlnet-golden";
  model->unet_ = unet::UNetModel(config);
  model->sampling_ = std::make_shared<sampling::ModelSampling>();
  model->info_.vae_scale_factor = 0.18215;
  controlnet_test_fill(*model->unet_, 11);
  auto net1 = std::make_shared<ControlNet>(), net2 = std::make_shared<ControlNet>();
  net1->model_ = control::ControlNetModel(config, 3, at::kFloat);
  net2->model_ = control::ControlNetModel(config, 3, at::kFloat);
  controlnet_test_fill(*net1->model_, 12);
  controlnet_test_fill(*net2->model_, 13);
  auto c1 = std::make_shared<ControlApply>();
  c1->net = net1;
  c1->hint = cn_gt("ksampler.hint");
  c1->strength = 0.8;
  auto c2 = std::make_shared<ControlApply>();
  c2->net = net2;
  c2->hint = cn_gt("ksampler.hint").slice(0, 0, 1);
  c2->strength = 1.2;
  c2->start_percent = 0.2;
  c2->end_percent = 0.7;
  c2->previous = c1;
  CondEntry pos, neg;
  pos.context = cn_gt("ksampler.pos");
  neg.context = cn_gt("ksampler.neg");
  pos.control = neg.control = c2;
  SampleRequest req;
  req.seed = 21;
  req.steps = 4;
  req.cfg = 5.0;
  req.sampler = "euler";
  req.scheduler = "normal";
  req.latent = at::zeros({2, 4, 8, 8});
  auto out = sample(*model, {pos}, {neg}, req, nullptr);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  const double err = cn_rel_err(*out, cn_gt("ksampler.samples"));
  std::printf("[controlnet golden] KSampler: samples max relative error %.3g\n", err);
  EXPECT_LE(err, 1e-4);
}
TEST(ControlNetGolden, SdxlChainMatchesComfyUI) { cn_check_case("sdxl", true); }

}  // namespace
}  // namespace netdist
