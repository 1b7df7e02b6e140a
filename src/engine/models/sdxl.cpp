#include "engine/models/family.h"

namespace netdist::models {

namespace {

TextEncoderSpec sdxl_clip_g(const char* source_prefix) {
  TextEncoderSpec g;
  g.name = "clip_g";
  g.prefix = "clip_g.transformer.";
  g.source_prefix = source_prefix;
  g.config = text::ClipTextConfig::open_clip_bigg();
  g.layer_idx = -2;
  g.final_ln = false;
  g.pad_id = 0;
  g.project_pooled = true;
  return g;
}

}  // namespace

FamilyInfo sdxl_info() {
  FamilyInfo info;
  info.family = ModelFamily::kSdxl;
  info.vae_scale_factor = 0.13025;
  info.default_size = 1024;
  info.adm_channels = 2816;
  info.unet.channel_mult = {1, 2, 4};
  info.unet.transformer_depth = {0, 2, 10};
  info.unet.transformer_depth_middle = 10;
  info.unet.context_dim = 2048;
  info.unet.use_linear_in_transformer = true;
  info.unet.num_head_channels = 64;
  TextEncoderSpec clip_l;
  clip_l.name = "clip_l";
  clip_l.prefix = "clip_l.transformer.";
  clip_l.source_prefix = "conditioner.embedders.0.transformer.";
  clip_l.config = text::ClipTextConfig::clip_l();
  clip_l.layer_idx = -2;
  clip_l.final_ln = false;
  clip_l.pad_id = 49407;
  clip_l.project_pooled = true;
  info.text_encoders = {clip_l, sdxl_clip_g("conditioner.embedders.1.model.")};
  return info;
}

FamilyInfo sdxl_refiner_info() {
  FamilyInfo info;
  info.family = ModelFamily::kSdxlRefiner;
  info.vae_scale_factor = 0.13025;
  info.default_size = 1024;
  info.adm_channels = 2560;
  info.unet.model_channels = 384;
  info.unet.channel_mult = {1, 2, 4, 4};
  info.unet.transformer_depth = {0, 4, 4, 0};
  info.unet.transformer_depth_middle = 4;
  info.unet.context_dim = 1280;
  info.unet.use_linear_in_transformer = true;
  info.unet.num_head_channels = 64;
  info.text_encoders = {sdxl_clip_g("conditioner.embedders.0.model.")};
  return info;
}

Status canonicalize_sdxl_text(WeightMap& weights) {
  replace_prefix(weights, "conditioner.embedders.0.transformer.text_model.", "clip_l.transformer.text_model.");
  return convert_open_clip(weights, "conditioner.embedders.1.model.", "clip_g.transformer.");
}

Status canonicalize_sdxl_refiner_text(WeightMap& weights) {
  return convert_open_clip(weights, "conditioner.embedders.0.model.", "clip_g.transformer.");
}

}  // namespace netdist::models
