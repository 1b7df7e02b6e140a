// The embedded model's architecture: SD1-family modules at a small size, chosen so that the engine's
// ordinary shape-based detection recovers exactly this config (heads = width / 64; GELU for a text width
// other than CLIP-L's 768; conv proj_in as SD1).
#pragma once

#include <map>
#include <string>

#include "engine/text/clip_text_model.h"
#include "engine/unet/unet_config.h"
#include "engine/vae/vae.h"

namespace netdist::tiny {

inline constexpr const char* kUnetPrefix = "model.diffusion_model.";
inline constexpr const char* kVaePrefix = "first_stage_model.";
inline constexpr const char* kTextPrefix = "cond_stage_model.transformer.";

struct TinyConfig {
  unet::UNetConfig unet;
  vae::VaeConfig vae;
  text::ClipTextConfig text;
};

TinyConfig tiny_config(int vocab_size);

// __metadata__ of the checkpoint: family, the latent scale factor, and the configs as JSON.
std::map<std::string, std::string> metadata(const TinyConfig& config, double vae_scale_factor);

}  // namespace netdist::tiny
