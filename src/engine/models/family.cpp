#include "engine/models/family.h"

#include <algorithm>
#include <functional>
#include <set>

#include <torch/torch.h>

namespace netdist::models {

namespace {

bool family_starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool family_ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

bool has_key_under(const WeightMap& weights, const std::string& prefix) {
  return std::any_of(weights.begin(), weights.end(),
                     [&](const auto& kv) { return family_starts_with(kv.first, prefix); });
}

}  // namespace

int count_numbered(const WeightMap& weights, std::string_view prefix) {
  std::set<int> seen;
  for (const auto& [key, tensor] : weights) {
    if (!family_starts_with(key, prefix)) continue;
    std::string_view rest = std::string_view(key).substr(prefix.size());
    size_t dot = rest.find('.');
    if (dot == 0 || dot == std::string_view::npos) continue;
    int index = 0;
    bool digits = true;
    for (char ch : rest.substr(0, dot)) {
      digits = digits && ch >= '0' && ch <= '9';
      index = index * 10 + (ch - '0');
    }
    if (digits) seen.insert(index);
  }
  int count = 0;
  while (seen.count(count)) ++count;
  return count;
}

namespace {

const at::Tensor* family_find(const WeightMap& weights, const std::string& key) {
  auto it = weights.find(key);
  return it == weights.end() ? nullptr : &it->second;
}

bool is_unused(std::string_view key) {
  static const char* const kExact[] = {"betas", "alphas_cumprod", "alphas_cumprod_prev", "logvar", "lvlb_weights",
                                       "v_pred", "ztsnr", "log_one_minus_alphas_cumprod"};
  if (family_starts_with(key, "model_ema.") || family_starts_with(key, "posterior_") ||
      family_starts_with(key, "sqrt_"))
    return true;
  if (family_ends_with(key, "position_ids")) return true;
  return std::any_of(std::begin(kExact), std::end(kExact), [&](const char* k) { return key == k; });
}

}  // namespace

std::string_view family_name(ModelFamily family) {
  switch (family) {
    case ModelFamily::kSd1: return "SD1";
    case ModelFamily::kSd2: return "SD2";
    case ModelFamily::kSdxl: return "SDXL";
    case ModelFamily::kSdxlRefiner: return "SDXL refiner";
  }
  return "?";
}

std::string_view prediction_name(Prediction prediction) { return prediction == Prediction::kV ? "v" : "eps"; }

Result<UnetSignature> read_ldm_unet_signature(const WeightMap& weights, std::string_view prefix_view) {
  const std::string prefix(prefix_view);
  const std::string conv_in_key = prefix + "input_blocks.0.0.weight";
  const at::Tensor* conv_in = family_find(weights, conv_in_key);
  if (conv_in == nullptr || conv_in->dim() != 4) {
    return Status::not_found("no SD UNet in the checkpoint: tensor '" + conv_in_key + "' is missing");
  }
  UnetSignature sig;
  UnetLayout& u = sig.layout;
  u.in_channels = static_cast<int>(conv_in->size(1));
  u.model_channels = static_cast<int>(conv_in->size(0));
  if (const at::Tensor* label = family_find(weights, prefix + "label_emb.0.0.weight")) {
    sig.adm_channels = static_cast<int>(label->size(1));
  }
  u.channel_mult.clear();
  u.transformer_depth.clear();
  u.context_dim = 0;
  const int blocks = count_numbered(weights, prefix + "input_blocks.");
  int res_in_level = 0;
  for (int n = 1; n < blocks; ++n) {
    const std::string block = prefix + "input_blocks." + std::to_string(n) + ".";
    if (family_find(weights, block + "0.op.weight")) {
      if (res_in_level != u.num_res_blocks) break;
      res_in_level = 0;
      continue;
    }
    const at::Tensor* out_conv = family_find(weights, block + "0.out_layers.3.weight");
    if (out_conv == nullptr) return Status::unsupported("UNet block '" + block + "' is neither a resnet nor a downsampler");
    if (res_in_level++ > 0) continue;
    u.channel_mult.push_back(static_cast<int>(out_conv->size(0)) / u.model_channels);
    const std::string attention = block + "1.";
    u.transformer_depth.push_back(count_numbered(weights, attention + "transformer_blocks."));
    if (u.context_dim == 0 && u.transformer_depth.back() > 0) {
      const at::Tensor* to_k = family_find(weights, attention + "transformer_blocks.0.attn2.to_k.weight");
      const at::Tensor* proj_in = family_find(weights, attention + "proj_in.weight");
      if (to_k == nullptr || proj_in == nullptr) {
        return Status::unsupported("UNet attention '" + attention + "' lacks attn2.to_k or proj_in");
      }
      u.context_dim = static_cast<int>(to_k->size(1));
      u.use_linear_in_transformer = proj_in->dim() == 2;
    }
  }
  if (res_in_level != u.num_res_blocks) {
    return Status::unsupported("UNet levels with " + std::to_string(res_in_level) +
                               " resnet blocks (every supported family has 2)");
  }
  u.transformer_depth_middle = count_numbered(weights, prefix + "middle_block.1.transformer_blocks.");
  if (u.context_dim == 0) return Status::unsupported("UNet without cross-attention (no attn2.to_k)");
  return sig;
}

Result<FamilyInfo> family_from_signature(const UnetSignature& sig) {
  struct Candidate {
    int context_dim, adm_channels, model_channels;
    std::function<FamilyInfo()> make;
  };
  static const Candidate kCandidates[] = {
      {768, 0, 320, sd1_info},
      {1024, 0, 320, sd2_info},
      {2048, 2816, 320, sdxl_info},
      {1280, 2560, 384, sdxl_refiner_info},
  };
  const UnetLayout& u = sig.layout;
  for (const Candidate& c : kCandidates) {
    if (c.context_dim != u.context_dim || c.adm_channels != sig.adm_channels || c.model_channels != u.model_channels) {
      continue;
    }
    FamilyInfo info = c.make();
    const UnetLayout expected = info.unet;
    info.unet = u;
    info.unet.num_heads = expected.num_heads;
    info.unet.num_head_channels = expected.num_head_channels;
    info.adm_channels = sig.adm_channels;
    return info;
  }
  return Status::unsupported(
      "unsupported model: UNet context_dim " + std::to_string(u.context_dim) + ", adm_in_channels " +
      std::to_string(sig.adm_channels) + ", model_channels " + std::to_string(u.model_channels) + ", in_channels " +
      std::to_string(u.in_channels) +
      " (known: SD1 768/0/320, SD2 1024/0/320, SDXL 2048/2816/320, SDXL refiner 1280/2560/384)");
}

Status check_supported_unet(int64_t in_channels, int64_t out_channels, int64_t adm_channels,
                            std::optional<int64_t> family_adm) {
  auto refuse = [](const std::string& what) { return Status::unsupported("is " + what + "; not supported yet"); };
  switch (in_channels) {
    case 4:
    case 9:  // inpainting: latent + mask + masked-image latent (engine/inpaint.h concat_cond)
      break;
    case 5: return refuse("a depth UNet (5 input channels: latent + depth map)");
    case 7: return refuse("an x4 upscaler UNet (7 input channels)");
    case 8: return refuse("an instruct-pix2pix / edit UNet (8 input channels: latent + image latent)");
    default:
      return refuse("an unknown UNet with " + std::to_string(in_channels) +
                    " input channels (the engine runs 4-channel text-to-image UNets)");
  }
  if (out_channels != 4) {
    return refuse("an unknown UNet with " + std::to_string(out_channels) +
                  " output channels (the engine runs 4-channel text-to-image UNets)");
  }
  if (family_adm && adm_channels != *family_adm) {
    return refuse("a UNet with " + (adm_channels > 0 ? "a " + std::to_string(adm_channels) + "-wide ADM input" : std::string("no ADM input")) +
                  " where its family builds " +
                  (*family_adm > 0 ? "a " + std::to_string(*family_adm) + "-wide ADM vector" : std::string("none")));
  }
  return Status::ok();
}

Result<Prediction> decide_prediction(const WeightMap& weights, const std::map<std::string, std::string>& metadata,
                                     std::optional<Prediction> override, const FamilyInfo& info) {
  if (override) return *override;
  for (const char* key : {"modelspec.prediction_type", "prediction_type"}) {
    auto it = metadata.find(key);
    if (it == metadata.end()) continue;
    const std::string& v = it->second;
    if (v == "v" || v == "v_prediction" || v == "v-prediction") return Prediction::kV;
    if (v == "epsilon" || v == "eps") return Prediction::kEps;
    return Status::unsupported(std::string("metadata ") + key + " = '" + v + "' (known: epsilon, v, v_prediction)");
  }
  if (weights.count("v_pred")) return Prediction::kV;
  if (info.family == ModelFamily::kSd2) {
    if (auto guess = sd2_prediction_from_values(weights, info)) return *guess;
  }
  return Prediction::kEps;
}

Result<FamilyInfo> detect_family(const WeightMap& names_and_shapes, const std::map<std::string, std::string>& metadata,
                                 std::optional<Prediction> override) {
  ND_ASSIGN_OR_RETURN(UnetSignature sig, read_ldm_unet_signature(names_and_shapes, "model.diffusion_model."));
  ND_ASSIGN_OR_RETURN(FamilyInfo info, family_from_signature(sig));
  ND_ASSIGN_OR_RETURN(info.prediction, decide_prediction(names_and_shapes, metadata, override, info));
  if (info.family == ModelFamily::kSd2 && info.prediction == Prediction::kV) info.default_size = 768;
  for (TextEncoderSpec& te : info.text_encoders) {
    te.present = has_key_under(names_and_shapes, te.source_prefix);
  }
  return info;
}

Status convert_open_clip(WeightMap& weights, std::string_view from_view, std::string_view to_view) {
  const std::string from(from_view), to(to_view);
  const std::string hf = to + "text_model.";
  static const std::pair<const char*, const char*> kResblock[] = {
      {"ln_1", "layer_norm1"},       {"ln_2", "layer_norm2"},   {"mlp.c_fc", "mlp.fc1"},
      {"mlp.c_proj", "mlp.fc2"},     {"attn.out_proj", "self_attn.out_proj"},
  };
  std::vector<std::string> keys;
  for (const auto& [key, tensor] : weights) {
    if (family_starts_with(key, from)) keys.push_back(key);
  }
  WeightMap converted;
  for (const std::string& key : keys) {
    at::Tensor t = weights.at(key);
    weights.erase(key);
    const std::string rest = key.substr(from.size());
    if (rest == "positional_embedding") {
      converted[hf + "embeddings.position_embedding.weight"] = t;
    } else if (rest == "token_embedding.weight") {
      converted[hf + "embeddings.token_embedding.weight"] = t;
    } else if (rest == "ln_final.weight" || rest == "ln_final.bias") {
      converted[hf + "final_layer_norm." + rest.substr(9)] = t;
    } else if (rest == "text_projection") {
      converted[to + "text_projection.weight"] = t.transpose(0, 1).contiguous();
    } else if (rest == "text_projection.weight") {
      converted[to + "text_projection.weight"] = t;
    } else if (rest == "logit_scale" || rest == "attn_mask" || family_starts_with(rest, "visual.")) {
      continue;
    } else if (family_starts_with(rest, "transformer.resblocks.")) {
      std::string_view tail = std::string_view(rest).substr(22);
      const size_t dot = tail.find('.');
      const std::string layer(tail.substr(0, dot));
      const std::string part(dot == std::string_view::npos ? std::string_view() : tail.substr(dot + 1));
      const std::string out = hf + "encoder.layers." + layer + ".";
      if (part == "attn.in_proj_weight" || part == "attn.in_proj_bias") {
        const std::string leaf = part == "attn.in_proj_weight" ? "weight" : "bias";
        if (t.size(0) % 3 != 0) {
          return Status::invalid_argument("OpenCLIP tensor '" + key + "' has " + std::to_string(t.size(0)) +
                                          " rows, not a multiple of 3");
        }
        const int64_t d = t.size(0) / 3;
        converted[out + "self_attn.q_proj." + leaf] = t.slice(0, 0, d);
        converted[out + "self_attn.k_proj." + leaf] = t.slice(0, d, 2 * d);
        converted[out + "self_attn.v_proj." + leaf] = t.slice(0, 2 * d, 3 * d);
        continue;
      }
      bool done = false;
      for (const auto& [open_clip, hf_name] : kResblock) {
        for (const char* leaf : {".weight", ".bias"}) {
          if (part == std::string(open_clip) + leaf) {
            converted[out + hf_name + leaf] = t;
            done = true;
          }
        }
      }
      if (!done) return Status::unsupported("unknown OpenCLIP text tensor '" + key + "'");
    } else {
      return Status::unsupported("unknown OpenCLIP text tensor '" + key + "'");
    }
  }
  for (auto& [key, tensor] : converted) weights[key] = std::move(tensor);
  return Status::ok();
}

void replace_prefix(WeightMap& weights, std::string_view from, std::string_view to) {
  std::vector<std::string> keys;
  for (const auto& [key, tensor] : weights) {
    if (family_starts_with(key, from)) keys.push_back(key);
  }
  for (const std::string& key : keys) {
    auto node = weights.extract(key);
    node.key() = std::string(to) + key.substr(from.size());
    weights.insert(std::move(node));
  }
}

Status canonicalize(WeightMap& weights, const FamilyInfo& info) {
  for (auto it = weights.begin(); it != weights.end();) {
    it = is_unused(it->first) ? weights.erase(it) : std::next(it);
  }
  switch (info.family) {
    case ModelFamily::kSd1: return canonicalize_sd1_text(weights);
    case ModelFamily::kSd2: return canonicalize_sd2_text(weights);
    case ModelFamily::kSdxl: return canonicalize_sdxl_text(weights);
    case ModelFamily::kSdxlRefiner: return canonicalize_sdxl_refiner_text(weights);
  }
  return Status::internal("canonicalize: unknown family");
}

}  // namespace netdist::models
