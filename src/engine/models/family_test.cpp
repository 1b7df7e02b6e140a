#include "engine/models/family.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "engine/models/test_keys.h"

namespace netdist::models {
namespace {

using testing::meta;
using testing::read_key_list;

struct SyntheticUnet {
  int model_channels = 320;
  std::vector<int> channel_mult = {1, 2, 4, 4};
  std::vector<int> depth = {1, 1, 1, 0};
  int middle_depth = 1;
  int context_dim = 768;
  bool linear = false;
  int adm = 0;
  int in_channels = 4;
};

// The UNet names that detection reads (not a full UNet), with ldm numbering.
WeightMap synthetic_unet(const SyntheticUnet& s) {
  const std::string p = "model.diffusion_model.";
  WeightMap w;
  w[p + "input_blocks.0.0.weight"] = meta({s.model_channels, s.in_channels, 3, 3});
  w[p + "time_embed.0.weight"] = meta({s.model_channels * 4, s.model_channels});
  if (s.adm) w[p + "label_emb.0.0.weight"] = meta({s.model_channels * 4, s.adm});
  auto attention = [&](const std::string& block, int depth, int channels) {
    for (int t = 0; t < depth; ++t) {
      const std::string tb = block + "transformer_blocks." + std::to_string(t) + ".";
      w[tb + "attn2.to_k.weight"] = meta({channels, s.context_dim});
    }
    if (depth > 0) {
      w[block + "proj_in.weight"] = s.linear ? meta({channels, channels}) : meta({channels, channels, 1, 1});
    }
  };
  int n = 1;
  const int levels = static_cast<int>(s.channel_mult.size());
  for (int x = 0; x < levels; ++x) {
    const int channels = s.model_channels * s.channel_mult[x];
    for (int i = 0; i < 2; ++i, ++n) {
      const std::string block = p + "input_blocks." + std::to_string(n) + ".";
      w[block + "0.in_layers.0.weight"] = meta({channels});
      w[block + "0.out_layers.3.weight"] = meta({channels, channels, 3, 3});
      attention(block + "1.", s.depth[x], channels);
    }
    if (x < levels - 1) w[p + "input_blocks." + std::to_string(n++) + ".0.op.weight"] = meta({channels, channels, 3, 3});
  }
  const int top = s.model_channels * s.channel_mult.back();
  w[p + "middle_block.0.in_layers.0.weight"] = meta({top});
  attention(p + "middle_block.1.", s.middle_depth, top);
  return w;
}

void add_open_clip(WeightMap& w, const std::string& prefix, int d, int layers) {
  w[prefix + "token_embedding.weight"] = meta({49408, d});
  w[prefix + "positional_embedding"] = meta({77, d});
  w[prefix + "ln_final.weight"] = meta({d});
  w[prefix + "text_projection"] = meta({d, d});
  w[prefix + "logit_scale"] = meta({});
  for (int i = 0; i < layers; ++i) {
    const std::string r = prefix + "transformer.resblocks." + std::to_string(i) + ".";
    w[r + "attn.in_proj_weight"] = meta({3 * d, d});
    w[r + "mlp.c_fc.weight"] = meta({4 * d, d});
  }
}

SyntheticUnet sd2_unet() {
  SyntheticUnet s;
  s.context_dim = 1024;
  s.linear = true;
  return s;
}

TEST(Family, DetectsSd1FromGoldenKeys) {
  WeightMap w = read_key_list("keys/sd15_ldm.txt");
  ASSERT_GT(w.size(), 1000u);
  Result<FamilyInfo> info = detect_family(w, {}, std::nullopt);
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_EQ(info->family, ModelFamily::kSd1);
  EXPECT_EQ(info->prediction, Prediction::kEps);
  EXPECT_EQ(info->unet.channel_mult, (std::vector<int>{1, 2, 4, 4}));
  EXPECT_EQ(info->unet.transformer_depth, (std::vector<int>{1, 1, 1, 0}));
  EXPECT_EQ(info->unet.context_dim, 768);
  EXPECT_FALSE(info->unet.use_linear_in_transformer);
  EXPECT_EQ(info->vae_scale_factor, 0.18215);
  ASSERT_EQ(info->text_encoders.size(), 1u);
  EXPECT_TRUE(info->text_encoders[0].present);
  EXPECT_EQ(info->text_encoders[0].absolute_layer(), 11);

  ASSERT_TRUE(canonicalize(w, *info).is_ok());
  EXPECT_TRUE(w.count("clip_l.transformer.text_model.final_layer_norm.weight"));
  for (const auto& [key, tensor] : w) {
    EXPECT_TRUE(key.rfind("model.diffusion_model.", 0) == 0 || key.rfind("first_stage_model.", 0) == 0 ||
                key.rfind("clip_l.transformer.text_model.", 0) == 0)
        << key;
  }
  Result<text::ClipTextConfig> clip = text::detect_clip_text_config(w, "clip_l.transformer.");
  ASSERT_TRUE(clip.is_ok());
  EXPECT_EQ(*clip, text::ClipTextConfig::clip_l());
}

TEST(Family, DetectsSdxlFromGoldenKeysAndConvertsBigG) {
  WeightMap w = read_key_list("keys/sdxl_ldm.txt");
  ASSERT_GT(w.size(), 2000u);
  Result<FamilyInfo> info = detect_family(w, {}, std::nullopt);
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_EQ(info->family, ModelFamily::kSdxl);
  EXPECT_EQ(info->adm_channels, 2816);
  EXPECT_EQ(info->unet.transformer_depth, (std::vector<int>{0, 2, 10}));
  EXPECT_EQ(info->unet.transformer_depth_middle, 10);
  EXPECT_EQ(info->unet.context_dim, 2048);
  EXPECT_EQ(info->vae_scale_factor, 0.13025);
  ASSERT_EQ(info->text_encoders.size(), 2u);
  EXPECT_TRUE(info->text_encoders[0].present && info->text_encoders[1].present);
  EXPECT_EQ(info->text_encoders[0].absolute_layer(), 10);
  EXPECT_EQ(info->text_encoders[1].absolute_layer(), 30);
  EXPECT_FALSE(info->text_encoders[1].final_ln);

  ASSERT_TRUE(canonicalize(w, *info).is_ok());
  for (const auto& [key, tensor] : w) {
    EXPECT_EQ(key.find("conditioner."), std::string::npos) << key;
    EXPECT_EQ(key.find("position_ids"), std::string::npos) << key;
  }
  EXPECT_EQ(w.at("clip_g.transformer.text_model.encoder.layers.31.self_attn.v_proj.weight").sizes(),
            (at::IntArrayRef{1280, 1280}));
  EXPECT_EQ(w.at("clip_g.transformer.text_model.encoder.layers.0.self_attn.q_proj.bias").sizes(),
            (at::IntArrayRef{1280}));
  EXPECT_TRUE(w.count("clip_g.transformer.text_projection.weight"));
  EXPECT_FALSE(w.count("clip_g.transformer.logit_scale"));
  Result<text::ClipTextConfig> g = text::detect_clip_text_config(w, "clip_g.transformer.");
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  EXPECT_EQ(*g, text::ClipTextConfig::open_clip_bigg());
  Result<text::ClipTextConfig> l = text::detect_clip_text_config(w, "clip_l.transformer.");
  ASSERT_TRUE(l.is_ok());
  EXPECT_EQ(*l, text::ClipTextConfig::clip_l());
}

TEST(Family, Sd2PredictionSources) {
  WeightMap w = synthetic_unet(sd2_unet());
  add_open_clip(w, "cond_stage_model.model.", 1024, 24);
  Result<FamilyInfo> eps = detect_family(w, {}, std::nullopt);
  ASSERT_TRUE(eps.is_ok()) << eps.status().to_string();
  EXPECT_EQ(eps->family, ModelFamily::kSd2);
  EXPECT_EQ(eps->prediction, Prediction::kEps);
  EXPECT_EQ(eps->default_size, 512);
  EXPECT_TRUE(eps->text_encoders[0].present);
  EXPECT_EQ(eps->text_encoders[0].pad_id, 0);

  Result<FamilyInfo> v = detect_family(w, {{"modelspec.prediction_type", "v"}}, std::nullopt);
  ASSERT_TRUE(v.is_ok());
  EXPECT_EQ(v->prediction, Prediction::kV);
  EXPECT_EQ(v->default_size, 768);
  EXPECT_EQ(detect_family(w, {{"prediction_type", "v_prediction"}}, std::nullopt)->prediction, Prediction::kV);
  EXPECT_EQ(detect_family(w, {{"prediction_type", "v"}}, Prediction::kEps)->prediction, Prediction::kEps);
  Status bad = detect_family(w, {{"prediction_type", "flow"}}, std::nullopt).status();
  EXPECT_NE(bad.message().find("'flow'"), std::string::npos) << bad.message();

  const std::string norm_bias = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias";
  w[norm_bias] = meta({320});
  EXPECT_EQ(detect_family(w, {}, std::nullopt)->prediction, Prediction::kEps);
  torch::manual_seed(0);
  w[norm_bias] = torch::randn({320}) * 0.2;
  EXPECT_EQ(detect_family(w, {}, std::nullopt)->prediction, Prediction::kV);
  w[norm_bias] = torch::randn({320}) * 0.01;
  EXPECT_EQ(detect_family(w, {}, std::nullopt)->prediction, Prediction::kEps);
  w["v_pred"] = meta({});
  EXPECT_EQ(detect_family(w, {}, std::nullopt)->prediction, Prediction::kV);
}

TEST(Family, DetectsRefiner) {
  SyntheticUnet s;
  s.model_channels = 384;
  s.depth = {0, 4, 4, 0};
  s.middle_depth = 4;
  s.context_dim = 1280;
  s.linear = true;
  s.adm = 2560;
  WeightMap w = synthetic_unet(s);
  add_open_clip(w, "conditioner.embedders.0.model.", 1280, 32);
  Result<FamilyInfo> info = detect_family(w, {}, std::nullopt);
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_EQ(info->family, ModelFamily::kSdxlRefiner);
  EXPECT_EQ(info->unet.transformer_depth, (std::vector<int>{0, 4, 4, 0}));
  ASSERT_EQ(info->text_encoders.size(), 1u);
  EXPECT_EQ(info->text_encoders[0].name, "clip_g");
  EXPECT_TRUE(info->text_encoders[0].present);
  ASSERT_TRUE(canonicalize(w, *info).is_ok());
  EXPECT_TRUE(w.count("clip_g.transformer.text_model.encoder.layers.31.mlp.fc1.weight"));
}

TEST(Family, UnknownModelsAreNamed) {
  SyntheticUnet unclip = sd2_unet();
  unclip.adm = 1536;
  Status s = detect_family(synthetic_unet(unclip), {}, std::nullopt).status();
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("context_dim 1024, adm_in_channels 1536, model_channels 320"), std::string::npos)
      << s.message();
  WeightMap no_unet;
  no_unet["first_stage_model.encoder.conv_in.weight"] = meta({128, 3, 3, 3});
  s = detect_family(no_unet, {}, std::nullopt).status();
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("model.diffusion_model.input_blocks.0.0.weight"), std::string::npos) << s.message();
}

TEST(Family, CanonicalizeDropsUnusedAndKeepsOldSd1Layout) {
  WeightMap w = synthetic_unet(SyntheticUnet{});
  w["model_ema.decay"] = meta({});
  w["alphas_cumprod"] = meta({1000});
  w["posterior_mean_coef1"] = meta({1000});
  w["sqrt_alphas_cumprod"] = meta({1000});
  w["cond_stage_model.transformer.embeddings.position_ids"] = meta({1, 77});
  w["cond_stage_model.transformer.embeddings.token_embedding.weight"] = meta({49408, 768});
  Result<FamilyInfo> info = detect_family(w, {}, std::nullopt);
  ASSERT_TRUE(info.is_ok());
  ASSERT_TRUE(canonicalize(w, *info).is_ok());
  EXPECT_FALSE(w.count("model_ema.decay") || w.count("alphas_cumprod") || w.count("posterior_mean_coef1") ||
               w.count("sqrt_alphas_cumprod"));
  EXPECT_TRUE(w.count("clip_l.transformer.text_model.embeddings.token_embedding.weight"));
  EXPECT_EQ(w.size(), synthetic_unet(SyntheticUnet{}).size() + 1);
}

// OpenCLIP names built from a tiny HF-named model: fused q/k/v and [D, P] projection.
WeightMap to_open_clip(const text::ClipTextModelImpl& model, const std::string& prefix) {
  WeightMap hf = runtime::module_weights(model, "");
  WeightMap out;
  out[prefix + "token_embedding.weight"] = hf.at("text_model.embeddings.token_embedding.weight");
  out[prefix + "positional_embedding"] = hf.at("text_model.embeddings.position_embedding.weight");
  out[prefix + "ln_final.weight"] = hf.at("text_model.final_layer_norm.weight");
  out[prefix + "ln_final.bias"] = hf.at("text_model.final_layer_norm.bias");
  out[prefix + "text_projection"] = hf.at("text_projection.weight").t().contiguous();
  out[prefix + "logit_scale"] = torch::tensor(4.6);
  const char* renames[][2] = {{"ln_1", "layer_norm1"}, {"ln_2", "layer_norm2"}, {"mlp.c_fc", "mlp.fc1"},
                              {"mlp.c_proj", "mlp.fc2"}, {"attn.out_proj", "self_attn.out_proj"}};
  for (int i = 0; i < model.config().num_layers; ++i) {
    const std::string h = "text_model.encoder.layers." + std::to_string(i) + ".";
    const std::string o = prefix + "transformer.resblocks." + std::to_string(i) + ".";
    for (const char* leaf : {"weight", "bias"}) {
      const std::string l(leaf);
      out[o + "attn.in_proj_" + l] = torch::cat({hf.at(h + "self_attn.q_proj." + l), hf.at(h + "self_attn.k_proj." + l),
                                                 hf.at(h + "self_attn.v_proj." + l)});
      for (auto& r : renames) out[o + r[0] + "." + l] = hf.at(h + r[1] + "." + l);
    }
  }
  return out;
}

TEST(Family, OpenClipConversionIsNumericallyExact) {
  torch::manual_seed(11);
  text::ClipTextConfig config = text::ClipTextConfig::tiny();
  config.projection_dim = 16;
  text::ClipTextModel reference(config);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : reference->parameters()) p.normal_(0.0, 0.3);
  }
  WeightMap w = to_open_clip(*reference, "cond_stage_model.model.");
  ASSERT_TRUE(canonicalize_sd2_text(w).is_ok());
  const std::string q = "clip_h.transformer.text_model.encoder.layers.1.self_attn.q_proj.weight";
  const std::string v = "clip_h.transformer.text_model.encoder.layers.1.self_attn.v_proj.bias";
  EXPECT_TRUE(torch::equal(w.at(q), reference->named_parameters()["text_model.encoder.layers.1.self_attn.q_proj.weight"]));
  EXPECT_TRUE(torch::equal(w.at(v), reference->named_parameters()["text_model.encoder.layers.1.self_attn.v_proj.bias"]));
  EXPECT_TRUE(torch::equal(w.at("clip_h.transformer.text_projection.weight"),
                           reference->named_parameters()["text_projection.weight"]));

  text::ClipTextModel loaded(config);
  Status s = text::load_clip_text_weights(*loaded, w, "clip_h.transformer.", "sd2.safetensors");
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  at::Tensor ids = torch::randint(0, 63, {2, 77}, at::kLong);
  ids.index_put_({torch::indexing::Slice(), torch::indexing::Slice(10, torch::indexing::None)}, 63);
  EXPECT_TRUE(torch::equal(loaded->forward(ids, -2, true).hidden, reference->forward(ids, -2, true).hidden));
  EXPECT_TRUE(torch::equal(loaded->forward(ids, -1, true).pooled, reference->forward(ids, -1, true).pooled));

  WeightMap bad;
  bad["x.transformer.resblocks.0.attn.in_proj_weight"] = meta({10, 4});
  s = convert_open_clip(bad, "x.", "clip_g.transformer.");
  EXPECT_NE(s.message().find("'x.transformer.resblocks.0.attn.in_proj_weight' has 10 rows"), std::string::npos)
      << s.message();
  bad.clear();
  bad["x.transformer.resblocks.0.attn.rope"] = meta({4});
  s = convert_open_clip(bad, "x.", "clip_g.transformer.");
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_NE(s.message().find("'x.transformer.resblocks.0.attn.rope'"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace netdist::models
