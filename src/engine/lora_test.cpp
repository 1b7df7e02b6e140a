// LoRA patching on the embedded tiny model (SD1 layout) with synthetic kohya and diffusers/PEFT files, and
// the SDXL key layout on names alone.
#include "engine/lora.h"

#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <unistd.h>

#include "engine/model.h"
#include "engine/models/diffusers_layout.h"
#include "engine/runtime/tensor_io.h"
#include "netdist/source_dir.h"

namespace netdist {
namespace {

namespace fs = std::filesystem;

const char kQ[] = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight";
const char kConv[] = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight";
const char kProjIn[] = "model.diffusion_model.input_blocks.1.1.proj_in.weight";
const char kClipQ[] = "clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight";

std::shared_ptr<Model> lora_tiny_model() {
  static std::shared_ptr<Model> model = [] {
    auto m = load_model(
        (std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string(), {});
    EXPECT_TRUE(m.is_ok()) << m.status().to_string();
    return m.is_ok() ? *m : nullptr;
  }();
  return model;
}

at::Tensor param(torch::nn::Module& module, const std::string& prefix, const std::string& name) {
  for (auto& item : module.named_parameters(true)) {
    if (prefix + item.key() == name) return item.value();
  }
  ADD_FAILURE() << "no parameter " << name;
  return at::Tensor();
}

at::Tensor unet_param(Model& m, const std::string& name) {
  return param(*m.unet_, m.info_.unet_prefix, name);
}
at::Tensor clip_param(Model& m) { return param(*m.encoders_[0].model, m.encoders_[0].spec.prefix, kClipQ); }

// W + scale · reshape(up.flatten(1) @ down.flatten(1)).
at::Tensor expected(const at::Tensor& w, const at::Tensor& up, const at::Tensor& down, double scale) {
  return w + scale * at::mm(up.flatten(1), down.flatten(1)).reshape(w.sizes());
}

struct Pair {
  at::Tensor up, down;
};

Pair low_rank_pair(int64_t out, int64_t in, int64_t rank, std::vector<int64_t> kernel = {},
                   uint64_t seed = 1) {
  auto gen = at::detail::createCPUGenerator(seed);
  std::vector<int64_t> up_shape = {out, rank}, down_shape = {rank, in};
  if (!kernel.empty()) {
    up_shape = {out, rank, 1, 1};
    down_shape = {rank, in, kernel[0], kernel[1]};
  }
  return {at::randn(up_shape, gen) * 0.1, at::randn(down_shape, gen) * 0.1};
}

class LoraTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(lora_tiny_model());
    dir_ = fs::temp_directory_path() / ("netdist_lora_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const runtime::WeightMap& weights) {
    const std::string path = (dir_ / name).string();
    Status s = runtime::save_safetensors(path, weights);
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return path;
  }

  // A 3-step 64×64 render: the decoded image as bytes.
  std::vector<uint8_t> render(Model& m) {
    SampleRequest req;
    req.seed = 7;
    req.steps = 3;
    req.latent = empty_latent(m, 1, 64, 64);
    Conditioning pos = encode_prompt(m, "a red heart").value();
    Conditioning neg = encode_prompt(m, "").value();
    at::Tensor image = decode(m, sample(m, pos, neg, req, nullptr).value()).value();
    at::Tensor px = (image * 255.0).clamp(0, 255).to(at::kByte).contiguous();
    return std::vector<uint8_t>(px.data_ptr<uint8_t>(), px.data_ptr<uint8_t>() + px.numel());
  }

  fs::path dir_;
};

TEST_F(LoraTest, KohyaPatchesEqualWPlusScaledProductAndUndo) {
  Model& base = *lora_tiny_model();
  const at::Tensor q0 = unet_param(base, kQ).clone(), conv0 = unet_param(base, kConv).clone(),
                   c0 = clip_param(base).clone();
  Pair q = low_rank_pair(q0.size(0), q0.size(1), 4);
  Pair conv = low_rank_pair(conv0.size(0), conv0.size(1), 2, {conv0.size(2), conv0.size(3)}, 2);
  Pair c = low_rank_pair(c0.size(0), c0.size(1), 4, {}, 3);
  runtime::WeightMap lora = {
      {"lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_up.weight", q.up},
      {"lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_down.weight", q.down},
      {"lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.alpha",
       at::scalar_tensor(2.0, at::kFloat)},
      {"lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight", conv.up},  // diffusers-named kohya key
      {"lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight", conv.down},
      {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", c.up},
      {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight", c.down},
      {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha", at::scalar_tensor(1.0, at::kFloat)},
      {"lora_unet_no_such_block.lora_up.weight", at::zeros({2, 2})},
  };
  const std::string path = write("kohya.safetensors", lora);
  auto patched = apply_lora(lora_tiny_model(), path, 0.8, -0.5);
  ASSERT_TRUE(patched.is_ok()) << patched.status().to_string();
  Model& m = **patched;
  EXPECT_EQ(m.unet_patches_.size(), 2u);
  EXPECT_EQ(m.clip_patches_.size(), 1u);
  {
    std::lock_guard<std::mutex> lock(*m.mutex_);
    torch::NoGradGuard no_grad;
    lora::PatchScope unet(*m.unet_, m.info_.unet_prefix, m.unet_patches_);
    lora::PatchScope clip(*m.encoders_[0].model, m.encoders_[0].spec.prefix, m.clip_patches_);
    EXPECT_TRUE(at::allclose(unet_param(m, kQ), expected(q0, q.up, q.down, 0.8 * 2.0 / 4), 1e-6, 1e-6));
    EXPECT_TRUE(at::allclose(unet_param(m, kConv), expected(conv0, conv.up, conv.down, 0.8), 1e-6, 1e-6));
    EXPECT_TRUE(at::allclose(clip_param(m), expected(c0, c.up, c.down, -0.5 * 1.0 / 4), 1e-6, 1e-6));
    EXPECT_FALSE(at::equal(unet_param(base, kQ), q0));  // shared modules: patched while the scope lives
  }
  EXPECT_TRUE(at::equal(unet_param(base, kQ), q0));
  EXPECT_TRUE(at::equal(unet_param(base, kConv), conv0));
  EXPECT_TRUE(at::equal(clip_param(base), c0));
}

TEST_F(LoraTest, DiffusersAndPeftKeys) {
  Model& base = *lora_tiny_model();
  const at::Tensor q0 = unet_param(base, kQ).clone(), p0 = unet_param(base, kProjIn).clone(),
                   c0 = clip_param(base).clone();
  Pair q = low_rank_pair(q0.size(0), q0.size(1), 2, {}, 4);
  std::vector<int64_t> kernel;
  if (p0.dim() == 4) kernel = {1, 1};
  Pair p = low_rank_pair(p0.size(0), p0.size(1), 2, kernel, 5);
  Pair c = low_rank_pair(c0.size(0), c0.size(1), 2, {}, 6);
  runtime::WeightMap lora = {
      {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.up.weight", q.up},
      {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight", q.down},
      {"unet.down_blocks.0.attentions.0.proj_in.lora_B.weight", p.up},
      {"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight", p.down},
      {"text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight", c.up},
      {"text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight", c.down},
  };
  auto patched = apply_lora(lora_tiny_model(), write("diffusers.safetensors", lora), 1.0, 1.0);
  ASSERT_TRUE(patched.is_ok()) << patched.status().to_string();
  Model& m = **patched;
  std::lock_guard<std::mutex> lock(*m.mutex_);
  torch::NoGradGuard no_grad;
  lora::PatchScope unet(*m.unet_, m.info_.unet_prefix, m.unet_patches_);
  lora::PatchScope clip(*m.encoders_[0].model, m.encoders_[0].spec.prefix, m.clip_patches_);
  EXPECT_TRUE(at::allclose(unet_param(m, kQ), expected(q0, q.up, q.down, 1.0), 1e-6, 1e-6));
  EXPECT_TRUE(at::allclose(unet_param(m, kProjIn), expected(p0, p.up, p.down, 1.0), 1e-6, 1e-6));
  EXPECT_TRUE(at::allclose(clip_param(m), expected(c0, c.up, c.down, 1.0), 1e-6, 1e-6));
}

TEST_F(LoraTest, StrengthZeroRendersTheBaseImageAndTheBaseStaysUnchanged) {
  Model& base = *lora_tiny_model();
  const at::Tensor q0 = unet_param(base, kQ).clone();
  Pair q = low_rank_pair(q0.size(0), q0.size(1), 4, {}, 9);
  runtime::WeightMap lora = {
      {"lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_up.weight", q.up * 20},
      {"lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_down.weight", q.down * 20},
  };
  const std::string path = write("strong.safetensors", lora);
  const std::vector<uint8_t> before = render(base);
  auto zero = apply_lora(lora_tiny_model(), path, 0.0, 0.0);
  ASSERT_TRUE(zero.is_ok()) << zero.status().to_string();
  EXPECT_EQ(render(**zero), before);
  auto strong = apply_lora(lora_tiny_model(), path, 1.0, 1.0);
  ASSERT_TRUE(strong.is_ok());
  EXPECT_NE(render(**strong), before);
  EXPECT_EQ(render(base), before);
  EXPECT_TRUE(at::equal(unet_param(base, kQ), q0));
}

// The base and a patched handle share modules: calls from two threads must each see their own weights.
TEST_F(LoraTest, ConcurrentCallsOnBaseAndPatchedHandlesDoNotMix) {
  Model& base = *lora_tiny_model();
  const at::Tensor q0 = unet_param(base, kQ);
  Pair q = low_rank_pair(q0.size(0), q0.size(1), 4, {}, 11);
  runtime::WeightMap lora = {
      {"lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_up.weight", q.up * 20},
      {"lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_down.weight", q.down * 20},
  };
  auto patched = apply_lora(lora_tiny_model(), write("threads.safetensors", lora), 1.0, 1.0);
  ASSERT_TRUE(patched.is_ok()) << patched.status().to_string();
  const std::vector<uint8_t> want_base = render(base), want_patched = render(**patched);
  ASSERT_NE(want_base, want_patched);
  std::vector<uint8_t> got_base, got_patched;
  std::thread a([&] { got_base = render(base); });
  std::thread b([&] { got_patched = render(**patched); });
  a.join();
  b.join();
  EXPECT_EQ(got_base, want_base);
  EXPECT_EQ(got_patched, want_patched);
}

TEST_F(LoraTest, FailurePathsNameTheFile) {
  const std::string corrupt = (dir_ / "corrupt.safetensors").string();
  const std::string bytes("\x10\0\0\0\0\0\0\0{not json at all", 24);
  std::ofstream(corrupt, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  auto bad = apply_lora(lora_tiny_model(), corrupt, 1.0, 1.0);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("corrupt.safetensors"), std::string::npos)
      << bad.status().to_string();

  auto missing = apply_lora(lora_tiny_model(), (dir_ / "missing.safetensors").string(), 1.0, 1.0);
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("missing.safetensors"), std::string::npos)
      << missing.status().to_string();

  const std::string nothing =
      write("unrelated.safetensors", {{"lora_unet_foo.lora_up.weight", at::zeros({2, 2})},
                                      {"lora_unet_foo.lora_down.weight", at::zeros({2, 2})}});
  auto none = apply_lora(lora_tiny_model(), nothing, 1.0, 1.0);
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.status().message().find("unrelated.safetensors"), std::string::npos)
      << none.status().to_string();

  const std::string half =
      write("half.safetensors", {{"lora_unet_input_blocks_1_1_proj_in.lora_up.weight", at::zeros({2, 2})}});
  auto unpaired = apply_lora(lora_tiny_model(), half, 1.0, 1.0);
  ASSERT_FALSE(unpaired.is_ok());
  EXPECT_NE(unpaired.status().message().find("half.safetensors"), std::string::npos)
      << unpaired.status().to_string();
}

TEST(LoraKeys, SdxlLayoutMapsKohyaAndDiffusersNames) {
  models::UnetLayout sdxl;
  sdxl.channel_mult = {1, 2, 4};
  sdxl.transformer_depth = {0, 2, 10};
  const std::string prefix = "model.diffusion_model.";
  const std::vector<std::string> ldm = {
      "input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight", "output_blocks.2.2.conv.weight",
      "input_blocks.1.0.in_layers.2.weight", "middle_block.1.transformer_blocks.9.attn2.to_out.0.weight"};
  std::vector<std::string> full;
  for (const std::string& n : ldm) full.push_back(prefix + n);
  lora::KeyMap keys;
  lora::add_unet_keys(keys, full, prefix, models::unet_diffusers_names(ldm, sdxl, 2816));
  lora::add_clip_keys(keys, {kClipQ, "clip_g.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight",
                             "clip_g.transformer.text_projection.weight"});
  std::map<std::string, std::string> m(keys.entries().begin(), keys.entries().end());
  EXPECT_EQ(m["lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"], prefix + ldm[0]);
  EXPECT_EQ(m["lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"], prefix + ldm[0]);
  EXPECT_EQ(m["unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.processor.to_q"], prefix + ldm[0]);
  EXPECT_EQ(m["lora_unet_up_blocks_0_upsamplers_0_conv"], prefix + ldm[1]);
  EXPECT_EQ(m["lora_unet_down_blocks_0_resnets_0_conv1"], prefix + ldm[2]);
  EXPECT_EQ(m["mid_block.attentions.0.transformer_blocks.9.attn2.processor.to_out"], prefix + ldm[3]);
  EXPECT_EQ(m["lora_te1_text_model_encoder_layers_0_self_attn_q_proj"], kClipQ);
  EXPECT_EQ(m["lora_te2_text_model_encoder_layers_0_self_attn_q_proj"],
            "clip_g.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(m["text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj"],
            "clip_g.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(m["lora_te2_text_projection"], "clip_g.transformer.text_projection.weight");
}

}  // namespace
}  // namespace netdist
