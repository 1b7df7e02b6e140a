// Diffusers folders (model_index.json + unet/, vae/, text_encoder/, text_encoder_2/) <-> the canonical
// single-file layout of family.h. Table-driven: block prefixes are generated from the UNet layout
// (ComfyUI's comfy/utils.py unet_to_diffusers, diffusers' convert_diffusers_to_original_*.py), the VAE
// table is fixed (4 levels), text encoders already use HF CLIP names.
//
// Tensor changes: the VAE mid attention q/k/v/proj_out weights are linear [C, C] in diffusers and 1x1
// conv [C, C, 1, 1] in ldm; they are reshaped (views, no copy). Everything else is renamed only.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "engine/models/family.h"

namespace netdist::models {

struct DiffusersWeights {
  WeightMap unet;            // unet/diffusion_pytorch_model*.safetensors names
  WeightMap vae;             // vae/...
  WeightMap text_encoder;    // text_encoder/model*.safetensors (HF CLIPTextModel names); empty for the refiner
  WeightMap text_encoder_2;  // text_encoder_2/ (SDXL bigG, CLIPTextModelWithProjection names)
};

// Reads the UNet signature from diffusers names (conv_in, down_blocks.i.*, add_embedding).
Result<UnetSignature> read_diffusers_unet_signature(const WeightMap& unet);

// Family of a diffusers UNet (prediction as decide_prediction; metadata usually carries the scheduler's
// prediction_type). text_encoders[i].present tells which text encoders `components` hold.
Result<FamilyInfo> detect_diffusers_family(const DiffusersWeights& components,
                                           const std::map<std::string, std::string>& metadata,
                                           std::optional<Prediction> override);

// Diffusers names -> canonical names (UNet under info.unet_prefix, VAE under info.vae_prefix, text encoders
// under their TextEncoderSpec::prefix). Fails naming the first tensor that has no canonical place.
// position_ids buffers are dropped.
Result<WeightMap> diffusers_to_ldm(const WeightMap& unet, const WeightMap& vae, const WeightMap& text_encoder,
                                   const WeightMap& text_encoder_2, const FamilyInfo& info);

// The inverse, for tests and export: VAE attention uses the current diffusers names (to_q, to_out.0).
Result<DiffusersWeights> ldm_to_diffusers(const WeightMap& canonical, const FamilyInfo& info);

// The diffusers name of each UNet weight in `ldm_names` (relative to the UNet prefix) that has one, for a
// UNet of layout `unet` (ComfyUI's comfy/utils.py unet_to_diffusers, inverted). For LoRA key maps.
std::map<std::string, std::string> unet_diffusers_names(const std::vector<std::string>& ldm_names, const UnetLayout& unet,
                                                        int adm_channels);

// Loads one tensor file (netdist::runtime::load_safetensors in production).
using TensorFileLoader = std::function<Result<WeightMap>(const std::string& path)>;

struct DiffusersModel {
  FamilyInfo info;
  WeightMap weights;  // canonical names
};

// Reads a diffusers folder: requires model_index.json, unet/ and vae/; takes every *.safetensors of a
// component (shards merged), preferring files without a ".fp16." variant tag when both exist; reads
// scheduler/scheduler_config.json "prediction_type" as metadata.
Result<DiffusersModel> load_diffusers(const std::string& folder, const TensorFileLoader& loader,
                                      std::optional<Prediction> override);

}  // namespace netdist::models
