// UNet configuration (ldm/sgm openaimodel.UNetModel as ComfyUI builds it) and its detection from weights.
//
// Depths are per block and in ComfyUI's order, so configs compare equal to ComfyUI's unet_config dicts:
// `transformer_depth` has one entry per input ResBlock, in input order; `transformer_depth_output` has one
// entry per output block, consumed from the back (entry j belongs to output_blocks.(N-1-j)). A depth of 0
// means "no SpatialTransformer in this block".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "engine/runtime/weights.h"

namespace netdist::unet {

struct UNetConfig {
  int64_t in_channels = 4;
  int64_t out_channels = 4;
  int64_t model_channels = 320;
  std::vector<int64_t> channel_mult;
  std::vector<int64_t> num_res_blocks;            // per level, same length as channel_mult
  std::vector<int64_t> transformer_depth;         // per input ResBlock
  std::vector<int64_t> transformer_depth_output;  // per output block
  // >= 0: middle block is [ResBlock, SpatialTransformer(depth), ResBlock]; -1: [ResBlock]; -2: no middle block.
  int64_t transformer_depth_middle = 1;
  // Exactly one of the two is > 0: a fixed head count (SD1) or a fixed head width (SD2, SDXL).
  int64_t num_heads = -1;
  int64_t num_head_channels = -1;
  int64_t context_dim = 768;
  bool use_linear_in_transformer = false;  // proj_in/proj_out are Linear (true) or 1×1 Conv2d (false)
  int64_t adm_in_channels = 0;             // > 0: label_emb ("sequential") takes y [B, adm_in_channels]

  static UNetConfig sd15();
  static UNetConfig sd2();
  static UNetConfig sdxl();
  // model_channels 32, channel_mult [1,2], 1 res block, attention at both levels, context 32, 2 heads.
  static UNetConfig tiny();

  // Heads and head width of a SpatialTransformer with `channels` channels.
  int64_t heads_for(int64_t channels) const;
  int64_t head_dim_for(int64_t channels) const;

  // validate_structure(): list lengths, positive sizes, GroupNorm-compatible widths. validate(): that plus
  // heads dividing every level width. Messages name the first inconsistent field.
  Status validate_structure() const;
  Status validate() const;

  bool operator==(const UNetConfig&) const = default;
  std::string to_string() const;
};

// Reads the config from tensor names and shapes under `prefix` (e.g. "model.diffusion_model."), as ComfyUI's
// comfy/model_detection.py detect_unet_config does. Heads are not stored in checkpoints; they are chosen as
// ComfyUI's supported_models do: num_heads 8 for the SD1.x shape (context 768, conv proj_in, no adm),
// num_head_channels 64 otherwise. Only tensor shapes are read, so meta tensors work. The result passes
// validate_structure(); a toy model narrower than 64 channels per level needs its heads set before validate().
Result<UNetConfig> detect_unet_config(const runtime::WeightMap& weights, std::string_view prefix);

}  // namespace netdist::unet
