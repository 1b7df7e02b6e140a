// apply_lora of include/netdist/engine.h: ComfyUI's comfy.sd.load_lora_for_models on a Model handle.
#include <cstdio>

#include "core/log.h"
#include "engine/lora.h"
#include "engine/model.h"
#include "engine/models/diffusers_layout.h"
#include "engine/runtime/tensor_io.h"
#include "io/safetensors.h"

namespace netdist {

namespace {

// The UNet layout the diffusers names follow, read from the built UNet (the family defaults do not
// describe checkpoints of other widths, such as the tiny model).
models::UnetLayout layout_of(const unet::UNetConfig& c) {
  models::UnetLayout u;
  u.model_channels = static_cast<int>(c.model_channels);
  u.num_res_blocks = c.num_res_blocks.empty() ? 2 : static_cast<int>(c.num_res_blocks[0]);
  for (size_t level = 0; level < c.channel_mult.size(); ++level) {
    u.channel_mult.push_back(static_cast<int>(c.channel_mult[level]));
    const size_t first = level * static_cast<size_t>(u.num_res_blocks);
    u.transformer_depth.push_back(
        first < c.transformer_depth.size() ? static_cast<int>(c.transformer_depth[first]) : 0);
  }
  return u;
}

void add_names(const torch::nn::Module& module, const std::string& prefix, std::vector<std::string>& names,
               std::map<std::string, std::vector<int64_t>>& shapes) {
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    names.push_back(prefix + item.key());
    shapes[prefix + item.key()] = item.value().sizes().vec();
  }
}

}  // namespace

Result<std::shared_ptr<Model>> apply_lora(const std::shared_ptr<Model>& model, const std::string& lora_path,
                                          double strength_unet, double strength_clip) {
  if (!model) return Status::invalid_argument("apply_lora: no model");
  if (model->unet_.is_empty())
    return Status::invalid_argument("apply_lora: " + model->path_ + " has no diffusion model");
  ND_ASSIGN_OR_RETURN(auto file, io::SafetensorsFile::open(lora_path));
  ND_ASSIGN_OR_RETURN(runtime::WeightMap lora, runtime::weights_from_file(file));

  std::vector<std::string> unet_names, clip_names;
  std::map<std::string, std::vector<int64_t>> shapes;
  const std::string& unet_prefix = model->info_.unet_prefix;
  add_names(*model->unet_, unet_prefix, unet_names, shapes);
  for (const TextEncoder& enc : model->encoders_) add_names(*enc.model, enc.spec.prefix, clip_names, shapes);
  std::vector<std::string> relative;
  for (const std::string& n : unet_names) relative.push_back(n.substr(unet_prefix.size()));
  const unet::UNetConfig& config = model->unet_->config();
  lora::KeyMap keys;
  lora::add_unet_keys(
      keys, unet_names, unet_prefix,
      models::unet_diffusers_names(relative, layout_of(config), static_cast<int>(config.adm_in_channels)));
  lora::add_clip_keys(keys, clip_names);

  ND_ASSIGN_OR_RETURN(lora::Loaded loaded, lora::load_lora(lora, keys, shapes, lora_path));
  for (const std::string& key : loaded.not_loaded) log::warn("lora key not loaded: {}", key);
  if (loaded.patches.empty()) {
    return Status::invalid_argument("LoRA " + lora_path + ": none of its " + std::to_string(lora.size()) +
                                    " tensors match a weight of " + model->path_);
  }
  auto out = std::make_shared<Model>(*model);
  for (auto& [name, patch] : loaded.patches) {
    const bool is_unet = name.rfind(unet_prefix, 0) == 0;
    const double strength = is_unet ? strength_unet : strength_clip;
    if (strength == 0.0) continue;
    lora::LowRank p = patch;
    p.scale = strength * patch.scale;
    (is_unet ? out->unet_patches_ : out->clip_patches_)[name].push_back(std::move(p));
  }
  return out;
}

}  // namespace netdist
