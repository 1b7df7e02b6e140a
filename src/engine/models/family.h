// Model families: detection from tensor names and shapes, and conversion of a checkpoint's names to the
// canonical layout that the engine's modules load (see docs/adding-a-model-family.md).
//
// Canonical layout (ComfyUI's internal names after its process_clip_state_dict):
//   UNet            model.diffusion_model.*   (ldm names: input_blocks.N.M..., middle_block, output_blocks)
//   VAE             first_stage_model.*       (ldm names; mid.attn_1.{q,k,v,proj_out}.weight are [C,C,1,1])
//   CLIP-L          clip_l.transformer.*      (HF CLIPTextModel names: text_model.embeddings..., no projection)
//   OpenCLIP ViT-H  clip_h.transformer.*      (HF names; fused in_proj split into q/k/v;
//   OpenCLIP bigG   clip_g.transformer.*       text_projection.weight = OpenCLIP text_projection transposed)
// Files that differ: SD1 cond_stage_model.transformer.*, SD2 cond_stage_model.model.* (or sgm
// conditioner.embedders.0.model.*), SDXL conditioner.embedders.0.transformer.* + conditioner.embedders.1.model.*,
// SDXL refiner conditioner.embedders.0.model.*; diffusers folders: see diffusers_layout.h.
//
// Family code lives in one file per family (sd1.cpp, sd2.cpp, sdxl.cpp); family.cpp reads the UNet's
// signature, dispatches, and holds the OpenCLIP converter that SD2 and SDXL share.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "engine/runtime/weights.h"
#include "engine/text/clip_text_model.h"

namespace netdist::models {

using runtime::WeightMap;

enum class ModelFamily { kSd1, kSd2, kSdxl, kSdxlRefiner };
enum class Prediction { kEps, kV };

std::string_view family_name(ModelFamily family);          // "SD1", "SD2", "SDXL", "SDXL refiner"
std::string_view prediction_name(Prediction prediction);   // "eps", "v"

struct TextEncoderSpec {
  std::string name;           // ComfyUI's name: "clip_l", "clip_h", "clip_g"
  std::string prefix;         // canonical: name + ".transformer."
  std::string source_prefix;  // where a single-file checkpoint of this family keeps it
  text::ClipTextConfig config;
  int layer_idx = -1;         // ComfyUI's, counted from the end of config.num_layers (see absolute_layer)
  bool final_ln = true;       // final layer norm on the selected layer
  int pad_id = 49407;
  bool project_pooled = true;
  bool present = false;       // detect_family: the checkpoint has this encoder's token embedding

  // The absolute index of the selected layer (config.num_layers + layer_idx). Pass this to
  // ClipTextModelImpl::forward: it selects the same layer when a file drops trailing layers
  // (diffusers SD2 text encoders ship 23 of OpenCLIP-H's 24).
  int absolute_layer() const { return layer_idx < 0 ? config.num_layers + layer_idx : layer_idx; }
};

// The UNet's shape as ComfyUI's detect_unet_config reads it (num_res_blocks is 2 for every family here).
struct UnetLayout {
  int in_channels = 4;                   // 9 for inpainting models
  int model_channels = 320;
  std::vector<int> channel_mult;         // per level: {1,2,4,4} SD1/SD2/refiner, {1,2,4} SDXL
  int num_res_blocks = 2;
  std::vector<int> transformer_depth;    // transformer blocks per attention, per level: SDXL {0,2,10}
  int transformer_depth_middle = 1;
  int context_dim = 768;
  bool use_linear_in_transformer = false;
  int num_heads = -1;                    // SD1: 8 heads; the others: num_head_channels 64
  int num_head_channels = -1;
};

struct FamilyInfo {
  ModelFamily family = ModelFamily::kSd1;
  Prediction prediction = Prediction::kEps;
  std::string unet_prefix = "model.diffusion_model.";
  std::string vae_prefix = "first_stage_model.";
  double vae_scale_factor = 0.18215;     // latent = vae_scale_factor * encoder output; SDXL 0.13025
  int latent_channels = 4;
  int default_size = 512;                // SD1 512, SD2 512 (eps) / 768 (v), SDXL and refiner 1024
  int adm_channels = 0;                  // SDXL 2816, refiner 2560
  UnetLayout unet;
  std::vector<TextEncoderSpec> text_encoders;
};

// What detection reads from a UNet, in either naming.
struct UnetSignature {
  UnetLayout layout;
  int adm_channels = 0;
};

// Reads the signature of an ldm UNet below `prefix` from shapes alone.
Result<UnetSignature> read_ldm_unet_signature(const WeightMap& weights, std::string_view prefix);

// Picks the family that matches a signature (context_dim, adm_channels, model_channels), with its
// text encoders and constants; prediction is eps. Unsupported combinations fail listing what was seen.
Result<FamilyInfo> family_from_signature(const UnetSignature& signature);

// Decides eps or v. Order: `override`; metadata "modelspec.prediction_type" or "prediction_type"
// ("v", "v_prediction", "v-prediction" / "epsilon", "eps"); a top-level "v_pred" tensor (ComfyUI's SDXL
// tell, applied to every family); for SD2 with 4 input channels, ComfyUI's value test (population std of
// <unet>output_blocks.11.1.transformer_blocks.0.norm1.bias > 0.09 means v) when that tensor holds data
// (skipped for meta/empty tensors); otherwise eps.
Result<Prediction> decide_prediction(const WeightMap& weights, const std::map<std::string, std::string>& metadata,
                                     std::optional<Prediction> override, const FamilyInfo& info);

// Detects the family of a single-file checkpoint (ldm/sgm names) from names and shapes, then the
// prediction as decide_prediction. Fails with kUnsupported naming context_dim / adm / model_channels
// when no family matches, kNotFound when there is no UNet under model.diffusion_model.
Result<FamilyInfo> detect_family(const WeightMap& names_and_shapes, const std::map<std::string, std::string>& metadata,
                                 std::optional<Prediction> override);

// Refuses the UNets the engine does not run yet, naming what they are from their shapes (ComfyUI's
// model_detection tells them apart the same way): depth (5 input channels), x4 upscaler (7), instruct-pix2pix /
// edit (8), any other input width than 4 or 9 (inpainting) or output width than 4 latent channels, and, when
// `family_adm` is given (the ADM width the detected family builds, 0 for none), an ADM input of another width.
// SDXL refiners (ADM 2560) and inpainting UNets pass. kUnsupported with a message that reads after the file's
// name: "is a depth UNet (5 input channels: latent + depth map); not supported yet".
Status check_supported_unet(int64_t in_channels, int64_t out_channels, int64_t adm_channels,
                            std::optional<int64_t> family_adm);

// Renames a single-file checkpoint in place to the canonical layout above: text encoders moved and
// converted, and known unused tensors dropped (model_ema.*, betas, alphas_cumprod*, sqrt_*alphas*,
// log_one_minus_alphas_cumprod, posterior_*, logvar, lvlb_weights, v_pred, ztsnr, *position_ids,
// OpenCLIP logit_scale / attn_mask / visual.*). UNet and VAE names are already canonical.
Status canonicalize(WeightMap& weights, const FamilyInfo& info);

// Moves an OpenCLIP text tower under `from` (token_embedding.weight, positional_embedding,
// transformer.resblocks.N.{ln_1,ln_2,attn.in_proj_*,attn.out_proj,mlp.c_fc,mlp.c_proj}, ln_final,
// text_projection) to HF names under `to` (e.g. "clip_g.transformer."): in_proj_weight [3D, D] is split
// by rows into q, k, v; text_projection [D, P] becomes text_projection.weight [P, D]. Fails naming a
// tensor it does not know.
Status convert_open_clip(WeightMap& weights, std::string_view from, std::string_view to);

// Number of consecutive indices t = 0, 1, ... such that some key starts with prefix + t + ".".
int count_numbered(const WeightMap& weights, std::string_view prefix);

// Renames every key starting with `from` to start with `to` instead.
void replace_prefix(WeightMap& weights, std::string_view from, std::string_view to);

// Per-family pieces (sd1.cpp, sd2.cpp, sdxl.cpp).
FamilyInfo sd1_info();
FamilyInfo sd2_info();
FamilyInfo sdxl_info();
FamilyInfo sdxl_refiner_info();
Status canonicalize_sd1_text(WeightMap& weights);
Status canonicalize_sd2_text(WeightMap& weights);
Status canonicalize_sdxl_text(WeightMap& weights);
Status canonicalize_sdxl_refiner_text(WeightMap& weights);
std::optional<Prediction> sd2_prediction_from_values(const WeightMap& weights, const FamilyInfo& info);

}  // namespace netdist::models
