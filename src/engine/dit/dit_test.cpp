// netdist's MMDiT and Flux against the pinned ComfyUI's own classes: tiny random-weight models and outputs
// made by tools/parity/dit_goldens.py (tests/data/dit/, fp32 CPU), and the configs and parameter names of the
// real SD3 / SD3.5 Medium / SD3.5 Large / Flux dev / Flux schnell models (key lists of ComfyUI's modules
// built on the meta device). A missing golden file fails the test.
#include <cstdio>
#include <set>

#include <initializer_list>
#include <string>
#include <string_view>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/dit/flux.h"
#include "engine/dit/mmdit.h"
#include "engine/models/test_keys.h"
#include "engine/runtime/tensor_io.h"

namespace netdist::dit {
namespace {

// Concatenation through append (GCC 12 -O3 reports false -Wrestrict/-Warray-bounds on string + literal).
inline std::string dit_test_cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out.append(p);
  return out;
}

using models::testing::read_key_list;
using models::testing::test_data_path;

struct DitGolden {
  runtime::WeightMap weights;
  runtime::WeightMap io;
};

DitGolden load_dit_golden(const std::string& name) {
  DitGolden g;
  auto weights = runtime::load_safetensors(test_data_path(dit_test_cat({"dit/", name, ".safetensors"})),
                                           runtime::LoadDtype::kFloat32);
  auto io = runtime::load_safetensors(test_data_path(dit_test_cat({"dit/", name, "_io.safetensors"})),
                                      runtime::LoadDtype::kFloat32);
  EXPECT_TRUE(weights.is_ok()) << name << ": " << weights.status().to_string()
                               << " (tools/parity/dit_goldens.py makes it)";
  EXPECT_TRUE(io.is_ok()) << name << ": " << io.status().to_string();
  if (weights.is_ok()) g.weights = std::move(weights).value();
  if (io.is_ok()) g.io = std::move(io).value();
  return g;
}

// max |ours − ref| / max |ref|, printed with the absolute difference.
double dit_relative_error(const std::string& what, const at::Tensor& ours, const at::Tensor& ref) {
  EXPECT_EQ(ours.sizes(), ref.sizes()) << what;
  if (ours.sizes() != ref.sizes()) return 1e9;
  const double diff = (ours - ref).abs().max().item<double>();
  const double scale = ref.abs().max().item<double>();
  std::printf("[dit golden] %s: max|diff| %.3g, max|ref| %.3g, relative %.3g\n", what.c_str(), diff, scale,
              diff / scale);
  return diff / scale;
}

constexpr double kDitTolerance = 1e-5;  // fp32 CPU, same libtorch as the Python reference

void check_mmdit_golden(const std::string& name, bool qk_norm, std::vector<int64_t> xsa) {
  DitGolden g = load_dit_golden(name);
  ASSERT_FALSE(g.weights.empty());
  ASSERT_FALSE(g.io.empty());
  auto config = detect_mmdit_config(g.weights, "");
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(config->depth, 1);
  EXPECT_EQ(config->num_blocks, 2);
  EXPECT_EQ(config->qk_norm_rms, qk_norm);
  EXPECT_EQ(config->x_block_self_attn_layers, xsa);
  EXPECT_EQ(config->adm_in_channels, 32);
  EXPECT_EQ(config->context_in, 48);
  MMDiT model(config.value());
  ASSERT_TRUE(runtime::load_module_weights(*model, g.weights, "", name).is_ok());
  torch::NoGradGuard no_grad;
  for (int j = 0; j < 2; ++j) {
    const std::string s = dit_test_cat({"_", std::to_string(j)});
    const at::Tensor& x = g.io.at(dit_test_cat({"x", s}));
    ASSERT_TRUE(model->check_size(x.size(2), x.size(3)).is_ok());
    at::Tensor out = model->forward(x, g.io.at(dit_test_cat({"timesteps", s})),
                                    g.io.at(dit_test_cat({"context", s})), g.io.at(dit_test_cat({"y", s})));
    EXPECT_LE(dit_relative_error(dit_test_cat({name, s}), out, g.io.at(dit_test_cat({"out", s}))),
              kDitTolerance);
  }
}

TEST(MMDiTGolden, Sd3MatchesComfyUI) { check_mmdit_golden("mmdit_sd3", false, {}); }
TEST(MMDiTGolden, Sd35MediumMatchesComfyUI) { check_mmdit_golden("mmdit_sd35m", true, {0}); }

void check_flux_golden(const std::string& name, bool guidance, int64_t singles) {
  DitGolden g = load_dit_golden(name);
  ASSERT_FALSE(g.weights.empty());
  ASSERT_FALSE(g.io.empty());
  auto config = detect_flux_config(g.weights, "");
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(config->hidden, 64);
  EXPECT_EQ(config->heads, 2);
  EXPECT_EQ(config->axes_dim, (std::vector<int64_t>{4, 14, 14}));
  EXPECT_EQ(config->depth, 2);
  EXPECT_EQ(config->depth_single, singles);
  EXPECT_EQ(config->guidance_embed, guidance);
  Flux model(config.value());
  ASSERT_TRUE(runtime::load_module_weights(*model, g.weights, "", name).is_ok());
  torch::NoGradGuard no_grad;
  for (int j = 0; j < 2; ++j) {
    const std::string s = dit_test_cat({"_", std::to_string(j)});
    at::Tensor gd = guidance ? g.io.at(dit_test_cat({"guidance", s})) : at::Tensor();
    at::Tensor out =
        model->forward(g.io.at(dit_test_cat({"x", s})), g.io.at(dit_test_cat({"timesteps", s})),
                       g.io.at(dit_test_cat({"context", s})), g.io.at(dit_test_cat({"y", s})), gd);
    EXPECT_LE(dit_relative_error(dit_test_cat({name, s}), out, g.io.at(dit_test_cat({"out", s}))),
              kDitTolerance);
  }
}

TEST(FluxGolden, DevMatchesComfyUI) { check_flux_golden("flux_dev", true, 2); }
TEST(FluxGolden, SchnellMatchesComfyUI) { check_flux_golden("flux_schnell", false, 1); }

// Every name and shape of ComfyUI's module is a parameter or buffer of netdist's and the other way round.
void expect_same_keys(const std::string& what, const runtime::WeightMap& ours,
                      const runtime::WeightMap& golden) {
  ASSERT_FALSE(golden.empty()) << what << ": key list missing (tools/parity/dit_goldens.py)";
  EXPECT_EQ(ours.size(), golden.size()) << what;
  for (const auto& [name, t] : golden) {
    auto it = ours.find(name);
    if (it == ours.end()) {
      ADD_FAILURE() << what << ": netdist has no " << name;
      continue;
    }
    EXPECT_EQ(it->second.sizes(), t.sizes()) << what << ": " << name;
  }
}

TEST(MMDiTKeys, RealConfigsFromComfyUIKeyLists) {
  struct Case {
    const char* file;
    int64_t depth;
    int64_t pos;
    bool rms;
    size_t xsa;
  };
  for (const Case& c :
       {Case{"sd3", 24, 192, false, 0}, Case{"sd35m", 24, 384, true, 13}, Case{"sd35l", 38, 192, true, 0}}) {
    const runtime::WeightMap keys = read_key_list(dit_test_cat({"dit/keys_", c.file, ".txt"}));
    auto config = detect_mmdit_config(keys, "");
    ASSERT_TRUE(config.is_ok()) << c.file << ": " << config.status().to_string();
    EXPECT_EQ(config->depth, c.depth) << c.file;
    EXPECT_EQ(config->num_blocks, c.depth) << c.file;
    EXPECT_EQ(config->pos_embed_max_size, c.pos) << c.file;
    EXPECT_EQ(config->qk_norm_rms, c.rms) << c.file;
    EXPECT_EQ(config->x_block_self_attn_layers.size(), c.xsa) << c.file;
    EXPECT_EQ(config->adm_in_channels, 2048) << c.file;
    EXPECT_EQ(config->context_in, 4096) << c.file;
    EXPECT_EQ(config->mlp_width(), config->hidden() * 4) << c.file;
    MMDiT model(config.value(), at::TensorOptions().device(at::kMeta));
    expect_same_keys(c.file, runtime::module_weights(*model, ""), keys);
  }
}

TEST(FluxKeys, RealConfigsFromComfyUIKeyLists) {
  for (const bool dev : {true, false}) {
    const std::string file = dev ? "flux_dev" : "flux_schnell";
    const runtime::WeightMap keys = read_key_list(dit_test_cat({"dit/keys_", file, ".txt"}));
    auto config = detect_flux_config(keys, "");
    ASSERT_TRUE(config.is_ok()) << file << ": " << config.status().to_string();
    EXPECT_EQ(config->hidden, 3072);
    EXPECT_EQ(config->heads, 24);
    EXPECT_EQ(config->axes_dim, (std::vector<int64_t>{16, 56, 56}));
    EXPECT_EQ(config->depth, 19);
    EXPECT_EQ(config->depth_single, 38);
    EXPECT_EQ(config->vec_in_dim, 768);
    EXPECT_EQ(config->context_in_dim, 4096);
    EXPECT_EQ(config->mlp_hidden, 12288);
    EXPECT_EQ(config->guidance_embed, dev);
    Flux model(config.value(), at::TensorOptions().device(at::kMeta));
    expect_same_keys(file, runtime::module_weights(*model, ""), keys);
  }
}

TEST(DitDetect, PrefixedAndForeignKeys) {
  runtime::WeightMap prefixed;
  for (const auto& [name, t] : read_key_list("dit/keys_sd3.txt"))
    prefixed[dit_test_cat({"model.diffusion_model.", name})] = t;
  auto config = detect_mmdit_config(prefixed, "model.diffusion_model.");
  ASSERT_TRUE(config.is_ok()) << config.status().to_string();
  EXPECT_EQ(config->depth, 24);
  auto not_mmdit = detect_mmdit_config(read_key_list("dit/keys_flux_dev.txt"), "");
  EXPECT_FALSE(not_mmdit.is_ok());
  EXPECT_NE(not_mmdit.status().message().find("joint_blocks.0.context_block.attn.qkv.weight"),
            std::string::npos);
  auto not_flux = detect_flux_config(read_key_list("dit/keys_sd3.txt"), "");
  EXPECT_FALSE(not_flux.is_ok());
  EXPECT_NE(not_flux.status().message().find("key_norm.scale"), std::string::npos);
  runtime::WeightMap broken = read_key_list("dit/keys_sd3.txt");
  broken.erase("pos_embed");
  auto no_pos = detect_mmdit_config(broken, "");
  EXPECT_FALSE(no_pos.is_ok());
  EXPECT_NE(no_pos.status().message().find("pos_embed"), std::string::npos);
}

TEST(DitDetect, MMDiTSizeLimit) {
  auto config = detect_mmdit_config(read_key_list("dit/keys_sd3.txt"), "");
  ASSERT_TRUE(config.is_ok());
  MMDiT model(config.value(), at::TensorOptions().device(at::kMeta));
  EXPECT_TRUE(model->check_size(384, 384).is_ok());
  Status too_big = model->check_size(386, 128);
  EXPECT_FALSE(too_big.is_ok());
  EXPECT_NE(too_big.message().find("384 per side"), std::string::npos) << too_big.message();
}

}  // namespace
}  // namespace netdist::dit
