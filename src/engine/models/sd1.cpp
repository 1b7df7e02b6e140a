#include <string>
#include <vector>

#include "engine/models/family.h"

namespace netdist::models {

FamilyInfo sd1_info() {
  FamilyInfo info;
  info.family = ModelFamily::kSd1;
  info.vae_scale_factor = 0.18215;
  info.default_size = 512;
  info.unet.channel_mult = {1, 2, 4, 4};
  info.unet.transformer_depth = {1, 1, 1, 0};
  info.unet.transformer_depth_middle = 1;
  info.unet.context_dim = 768;
  info.unet.use_linear_in_transformer = false;
  info.unet.num_heads = 8;
  TextEncoderSpec clip_l;
  clip_l.name = "clip_l";
  clip_l.prefix = "clip_l.transformer.";
  clip_l.source_prefix = "cond_stage_model.transformer.";
  clip_l.config = text::ClipTextConfig::clip_l();
  clip_l.layer_idx = -1;
  clip_l.final_ln = true;
  clip_l.pad_id = 49407;
  clip_l.project_pooled = false;
  info.text_encoders = {clip_l};
  return info;
}

Status canonicalize_sd1_text(WeightMap& weights) {
  const std::string from = "cond_stage_model.transformer.";
  std::vector<std::string> old_layout;
  for (const auto& [key, tensor] : weights) {
    if (key.compare(0, from.size(), from) == 0 && key.compare(from.size(), 11, "text_model.") != 0) {
      old_layout.push_back(key);
    }
  }
  for (const std::string& key : old_layout) {
    auto node = weights.extract(key);
    node.key() = from + "text_model." + key.substr(from.size());
    weights.insert(std::move(node));
  }
  replace_prefix(weights, from, "clip_l.transformer.");
  return Status::ok();
}

}  // namespace netdist::models
