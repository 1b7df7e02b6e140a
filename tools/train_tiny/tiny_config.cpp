#include "tools/train_tiny/tiny_config.h"

#include <cstdio>

#include <nlohmann/json.hpp>

namespace netdist::tiny {

TinyConfig tiny_config(int vocab_size) {
  TinyConfig c;
  c.unet.in_channels = 4;
  c.unet.out_channels = 4;
  c.unet.model_channels = 64;
  c.unet.channel_mult = {1, 2, 3};
  c.unet.num_res_blocks = {1, 1, 1};
  c.unet.transformer_depth = {1, 1, 1};
  c.unet.transformer_depth_output = {1, 1, 1, 1, 1, 1};
  c.unet.transformer_depth_middle = 1;
  c.unet.num_heads = -1;
  c.unet.num_head_channels = 64;
  c.unet.context_dim = 256;
  c.unet.use_linear_in_transformer = false;
  c.unet.adm_in_channels = 0;

  c.vae.ch = 32;
  c.vae.ch_mult = {1, 2, 2, 4};
  c.vae.num_res_blocks = 1;
  c.vae.z_channels = 4;
  c.vae.embed_dim = 4;
  c.vae.double_z = true;

  c.text.vocab_size = vocab_size;
  c.text.hidden_size = 256;
  c.text.num_layers = 4;
  c.text.num_heads = 4;
  c.text.intermediate_size = 1024;
  c.text.max_positions = 77;
  c.text.activation = text::ClipActivation::kGelu;
  c.text.projection_dim = 0;
  c.text.eos_token_id = vocab_size - 1;
  return c;
}

std::map<std::string, std::string> metadata(const TinyConfig& config, double vae_scale_factor) {
  char scale[32];
  std::snprintf(scale, sizeof scale, "%.6f", vae_scale_factor);
  nlohmann::json unet = {{"model_channels", config.unet.model_channels},
                         {"channel_mult", config.unet.channel_mult},
                         {"num_res_blocks", config.unet.num_res_blocks},
                         {"num_head_channels", config.unet.num_head_channels},
                         {"context_dim", config.unet.context_dim}};
  nlohmann::json vae = {{"ch", config.vae.ch}, {"ch_mult", config.vae.ch_mult},
                        {"num_res_blocks", config.vae.num_res_blocks}, {"z_channels", config.vae.z_channels}};
  nlohmann::json text = {{"vocab_size", config.text.vocab_size}, {"hidden_size", config.text.hidden_size},
                         {"num_layers", config.text.num_layers}, {"num_heads", config.text.num_heads},
                         {"intermediate_size", config.text.intermediate_size}, {"activation", "gelu"}};
  return {{"modelspec.architecture", "stable-diffusion-v1"},
          {"modelspec.title", "netdist tiny emoji"},
          {"modelspec.prediction_type", "epsilon"},
          {"netdist.family", "sd1"},
          {"netdist.vae_scale_factor", scale},
          {"netdist.default_size", "64"},
          {"netdist.config", nlohmann::json{{"unet", unet}, {"vae", vae}, {"text", text}}.dump()}};
}

}  // namespace netdist::tiny
