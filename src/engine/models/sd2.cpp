#include <torch/torch.h>

#include "engine/models/family.h"

namespace netdist::models {

FamilyInfo sd2_info() {
  FamilyInfo info;
  info.family = ModelFamily::kSd2;
  info.vae_scale_factor = 0.18215;
  info.default_size = 512;
  info.unet.channel_mult = {1, 2, 4, 4};
  info.unet.transformer_depth = {1, 1, 1, 0};
  info.unet.transformer_depth_middle = 1;
  info.unet.context_dim = 1024;
  info.unet.use_linear_in_transformer = true;
  info.unet.num_head_channels = 64;
  TextEncoderSpec clip_h;
  clip_h.name = "clip_h";
  clip_h.prefix = "clip_h.transformer.";
  clip_h.source_prefix = "cond_stage_model.model.";
  clip_h.config = text::ClipTextConfig::open_clip_h();
  clip_h.layer_idx = -2;
  clip_h.final_ln = true;
  clip_h.pad_id = 0;
  clip_h.project_pooled = true;
  info.text_encoders = {clip_h};
  return info;
}

Status canonicalize_sd2_text(WeightMap& weights) {
  ND_RETURN_IF_ERROR(convert_open_clip(weights, "conditioner.embedders.0.model.", "clip_h.transformer."));
  return convert_open_clip(weights, "cond_stage_model.model.", "clip_h.transformer.");
}

std::optional<Prediction> sd2_prediction_from_values(const WeightMap& weights, const FamilyInfo& info) {
  if (info.unet.in_channels != 4) return Prediction::kEps;
  auto it = weights.find(info.unet_prefix + "output_blocks.11.1.transformer_blocks.0.norm1.bias");
  if (it == weights.end()) return std::nullopt;
  const at::Tensor& t = it->second;
  if (!t.defined() || t.is_meta() || t.numel() == 0) return std::nullopt;
  const at::Tensor x = t.to(at::kFloat);
  const double std_dev = (x - x.mean()).pow(2).mean().sqrt().item<double>();
  return std_dev > 0.09 ? Prediction::kV : Prediction::kEps;
}

}  // namespace netdist::models
