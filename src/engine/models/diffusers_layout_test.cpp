#include "engine/models/diffusers_layout.h"

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/models/test_keys.h"

namespace netdist::models {
namespace {

using testing::meta;
using testing::read_key_list;
using testing::test_data_path;

std::vector<std::pair<std::string, std::string>> read_pairs(const std::string& relative) {
  std::vector<std::pair<std::string, std::string>> out;
  std::ifstream in(test_data_path(relative));
  std::string a, b;
  while (in >> a >> b) out.emplace_back(a, b);
  return out;
}

FamilyInfo canonical_from_golden(const std::string& file, WeightMap& w) {
  w = read_key_list(file);
  Result<FamilyInfo> info = detect_family(w, {}, std::nullopt);
  EXPECT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_TRUE(canonicalize(w, *info).is_ok());
  return *info;
}

void expect_same_names_and_shapes(const WeightMap& a, const WeightMap& b) {
  EXPECT_EQ(a.size(), b.size());
  for (const auto& [key, tensor] : a) {
    auto it = b.find(key);
    ASSERT_NE(it, b.end()) << key;
    EXPECT_EQ(tensor.sizes(), it->second.sizes()) << key;
  }
}

// ldm -> diffusers -> ldm over a full golden key list, and the UNet names against ComfyUI's own
// unet_to_diffusers map (tests/data/keys/<family>_unet_diffusers.txt, from tools/parity/dump_keys_family.py).
void round_trip(const std::string& family) {
  WeightMap canonical;
  FamilyInfo info = canonical_from_golden("keys/" + family + "_ldm.txt", canonical);
  Result<DiffusersWeights> d = ldm_to_diffusers(canonical, info);
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  auto golden = read_pairs("keys/" + family + "_unet_diffusers.txt");
  ASSERT_GT(golden.size(), 600u);
  size_t checked = 0;
  for (const auto& [diffusers_name, ldm_name] : golden) {
    if (diffusers_name.rfind("class_embedding.", 0) == 0) continue;  // ComfyUI's alias of add_embedding
    ASSERT_TRUE(d->unet.count(diffusers_name)) << diffusers_name << " (ldm " << ldm_name << ")";
    ++checked;
  }
  EXPECT_EQ(checked, d->unet.size());

  Result<WeightMap> back = diffusers_to_ldm(d->unet, d->vae, d->text_encoder, d->text_encoder_2, info);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  expect_same_names_and_shapes(*back, canonical);
  for (const auto& [diffusers_name, ldm_name] : golden) {
    if (diffusers_name.rfind("class_embedding.", 0) == 0) continue;
    WeightMap one = {{diffusers_name, d->unet.at(diffusers_name)}};
    Result<WeightMap> mapped = diffusers_to_ldm(one, {}, {}, {}, info);
    ASSERT_TRUE(mapped.is_ok());
    EXPECT_TRUE(mapped->count(info.unet_prefix + ldm_name)) << diffusers_name << " -> " << ldm_name;
  }

  Result<FamilyInfo> detected = detect_diffusers_family(*d, {}, std::nullopt);
  ASSERT_TRUE(detected.is_ok()) << detected.status().to_string();
  EXPECT_EQ(detected->family, info.family);
  EXPECT_EQ(detected->unet.transformer_depth, info.unet.transformer_depth);
  EXPECT_EQ(detected->unet.transformer_depth_middle, info.unet.transformer_depth_middle);
  EXPECT_EQ(detected->unet.channel_mult, info.unet.channel_mult);
  for (const TextEncoderSpec& te : detected->text_encoders) EXPECT_TRUE(te.present) << te.name;
}

TEST(Diffusers, Sd15RoundTripMatchesComfyMap) { round_trip("sd15"); }
TEST(Diffusers, SdxlRoundTripMatchesComfyMap) { round_trip("sdxl"); }

TEST(Diffusers, VaeNamesAndAttentionReshape) {
  WeightMap canonical;
  FamilyInfo info = canonical_from_golden("keys/sd15_ldm.txt", canonical);
  Result<DiffusersWeights> d = ldm_to_diffusers(canonical, info);
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->vae.at("decoder.up_blocks.2.resnets.0.conv_shortcut.weight").sizes(), (at::IntArrayRef{256, 512, 1, 1}));
  EXPECT_EQ(d->vae.at("encoder.mid_block.attentions.0.to_q.weight").sizes(), (at::IntArrayRef{512, 512}));
  EXPECT_EQ(d->vae.at("decoder.mid_block.attentions.0.to_out.0.weight").sizes(), (at::IntArrayRef{512, 512}));
  EXPECT_TRUE(d->vae.count("decoder.mid_block.attentions.0.group_norm.bias"));
  EXPECT_TRUE(d->vae.count("encoder.conv_norm_out.weight"));
  EXPECT_TRUE(d->vae.count("decoder.up_blocks.0.upsamplers.0.conv.weight"));
  EXPECT_TRUE(d->text_encoder.count("text_model.encoder.layers.11.mlp.fc2.weight"));

  WeightMap old_names = {{"encoder.mid_block.attentions.0.query.weight", meta({512, 512})},
                         {"encoder.mid_block.attentions.0.proj_attn.bias", meta({512})}};
  Result<WeightMap> ldm = diffusers_to_ldm({}, old_names, {}, {}, info);
  ASSERT_TRUE(ldm.is_ok()) << ldm.status().to_string();
  EXPECT_EQ(ldm->at("first_stage_model.encoder.mid.attn_1.q.weight").sizes(), (at::IntArrayRef{512, 512, 1, 1}));
  EXPECT_TRUE(ldm->count("first_stage_model.encoder.mid.attn_1.proj_out.bias"));

  at::Tensor values = torch::arange(16, at::kFloat).reshape({4, 4});
  Result<WeightMap> real = diffusers_to_ldm({}, {{"decoder.mid_block.attentions.0.to_v.weight", values}}, {}, {}, info);
  ASSERT_TRUE(real.is_ok());
  EXPECT_TRUE(torch::equal(real->at("first_stage_model.decoder.mid.attn_1.v.weight").flatten(), values.flatten()));
}

TEST(Diffusers, UnknownNamesAreNamed) {
  WeightMap canonical;
  FamilyInfo info = canonical_from_golden("keys/sd15_ldm.txt", canonical);
  Status s = diffusers_to_ldm({{"down_blocks.0.resnets.0.mystery.weight", meta({1})}}, {}, {}, {}, info).status();
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("'down_blocks.0.resnets.0.mystery.weight'"), std::string::npos) << s.message();
  s = diffusers_to_ldm({}, {}, {}, {{"text_model.embeddings.token_embedding.weight", meta({49408, 1280})}}, info).status();
  EXPECT_NE(s.message().find("text_encoder_2"), std::string::npos) << s.message();
  canonical["clip_q.transformer.x"] = meta({1});
  s = ldm_to_diffusers(canonical, info).status();
  EXPECT_NE(s.message().find("'clip_q.transformer.x'"), std::string::npos) << s.message();
}

TEST(Diffusers, LoadsFolderThroughLoader) {
  WeightMap canonical;
  FamilyInfo info = canonical_from_golden("keys/sd15_ldm.txt", canonical);
  Result<DiffusersWeights> d = ldm_to_diffusers(canonical, info);
  ASSERT_TRUE(d.is_ok());
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("netdist_diffusers_test_" + std::to_string(::getpid()));
  fs::remove_all(root);
  for (const char* dir : {"unet", "vae", "text_encoder", "scheduler"}) fs::create_directories(root / dir);
  auto touch = [](const fs::path& p, const std::string& text = "") { std::ofstream(p) << text; };
  touch(root / "model_index.json", "{}");
  touch(root / "unet" / "diffusion_pytorch_model.safetensors");
  touch(root / "unet" / "diffusion_pytorch_model.fp16.safetensors");
  touch(root / "vae" / "diffusion_pytorch_model.fp16.safetensors");
  touch(root / "text_encoder" / "model.safetensors");
  touch(root / "scheduler" / "scheduler_config.json", R"({"prediction_type": "v_prediction"})");
  std::vector<std::string> loaded;
  TensorFileLoader loader = [&](const std::string& path) -> Result<WeightMap> {
    loaded.push_back(fs::path(path).lexically_relative(root).string());
    if (path.find("/unet/") != std::string::npos) return d->unet;
    if (path.find("/vae/") != std::string::npos) return d->vae;
    return d->text_encoder;
  };
  Result<DiffusersModel> model = load_diffusers(root.string(), loader, std::nullopt);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  EXPECT_EQ(model->info.family, ModelFamily::kSd1);
  EXPECT_EQ(model->info.prediction, Prediction::kV);
  EXPECT_EQ(loaded, (std::vector<std::string>{"unet/diffusion_pytorch_model.safetensors",
                                              "vae/diffusion_pytorch_model.fp16.safetensors",
                                              "text_encoder/model.safetensors"}));
  expect_same_names_and_shapes(model->weights, canonical);

  fs::remove(root / "model_index.json");
  Status s = load_diffusers(root.string(), loader, std::nullopt).status();
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("model_index.json"), std::string::npos) << s.message();
  fs::remove_all(root);
}

}  // namespace
}  // namespace netdist::models
