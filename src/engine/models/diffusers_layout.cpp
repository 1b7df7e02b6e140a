#include "engine/models/diffusers_layout.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace netdist::models {

namespace {

namespace fs = std::filesystem;

bool layout_starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool layout_ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

// How the part of a name after a matched block prefix is renamed.
enum class Inner { kSame, kUnetResnet, kVaeResnet, kVaeAttention };

struct BlockPair {
  std::string ldm;
  std::string diffusers;
  Inner inner;
};

struct ModulePair {
  const char* ldm;
  const char* diffusers;
};

// The first entry for a given ldm module is the one ldm -> diffusers writes; later ones are aliases read
// only in the diffusers -> ldm direction.
const std::vector<ModulePair>& inner_table(Inner inner) {
  static const std::vector<ModulePair> kNone;
  static const std::vector<ModulePair> kUnetResnet = {
      {"in_layers.0", "norm1"},          {"in_layers.2", "conv1"}, {"out_layers.0", "norm2"},
      {"out_layers.3", "conv2"},         {"emb_layers.1", "time_emb_proj"},
      {"skip_connection", "conv_shortcut"},
  };
  static const std::vector<ModulePair> kVaeResnet = {
      {"norm1", "norm1"}, {"conv1", "conv1"}, {"norm2", "norm2"}, {"conv2", "conv2"}, {"nin_shortcut", "conv_shortcut"},
  };
  static const std::vector<ModulePair> kVaeAttention = {
      {"norm", "group_norm"}, {"q", "to_q"},    {"k", "to_k"},   {"v", "to_v"},
      {"proj_out", "to_out.0"}, {"q", "query"}, {"k", "key"},    {"v", "value"},
      {"proj_out", "proj_attn"},
  };
  switch (inner) {
    case Inner::kUnetResnet: return kUnetResnet;
    case Inner::kVaeResnet: return kVaeResnet;
    case Inner::kVaeAttention: return kVaeAttention;
    case Inner::kSame: break;
  }
  return kNone;
}

std::string s(int i) { return std::to_string(i); }

std::vector<BlockPair> unet_pairs(const UnetLayout& u, int adm_channels) {
  std::vector<BlockPair> pairs = {
      {"time_embed.0.", "time_embedding.linear_1.", Inner::kSame},
      {"time_embed.2.", "time_embedding.linear_2.", Inner::kSame},
      {"input_blocks.0.0.", "conv_in.", Inner::kSame},
      {"out.0.", "conv_norm_out.", Inner::kSame},
      {"out.2.", "conv_out.", Inner::kSame},
      {"middle_block.0.", "mid_block.resnets.0.", Inner::kUnetResnet},
      {"middle_block.1.", "mid_block.attentions.0.", Inner::kSame},
      {"middle_block.2.", "mid_block.resnets.1.", Inner::kUnetResnet},
  };
  if (adm_channels > 0) {
    pairs.push_back({"label_emb.0.0.", "add_embedding.linear_1.", Inner::kSame});
    pairs.push_back({"label_emb.0.2.", "add_embedding.linear_2.", Inner::kSame});
  }
  const int levels = static_cast<int>(u.channel_mult.size());
  const int res = u.num_res_blocks;
  for (int x = 0; x < levels; ++x) {
    const bool attention = u.transformer_depth[x] > 0;
    for (int i = 0; i < res; ++i) {
      const int n = 1 + (res + 1) * x + i;
      const std::string down = "down_blocks." + s(x) + ".";
      pairs.push_back({"input_blocks." + s(n) + ".0.", down + "resnets." + s(i) + ".", Inner::kUnetResnet});
      if (attention) pairs.push_back({"input_blocks." + s(n) + ".1.", down + "attentions." + s(i) + ".", Inner::kSame});
    }
    if (x < levels - 1) {
      pairs.push_back({"input_blocks." + s((res + 1) * (x + 1)) + ".0.op.",
                       "down_blocks." + s(x) + ".downsamplers.0.conv.", Inner::kSame});
    }
  }
  for (int x = 0; x < levels; ++x) {
    const bool attention = u.transformer_depth[levels - 1 - x] > 0;
    const std::string up = "up_blocks." + s(x) + ".";
    for (int i = 0; i <= res; ++i) {
      const int n = (res + 1) * x + i;
      pairs.push_back({"output_blocks." + s(n) + ".0.", up + "resnets." + s(i) + ".", Inner::kUnetResnet});
      if (attention) pairs.push_back({"output_blocks." + s(n) + ".1.", up + "attentions." + s(i) + ".", Inner::kSame});
      if (i == res && x < levels - 1) {
        pairs.push_back({"output_blocks." + s(n) + "." + s(attention ? 2 : 1) + ".conv.",
                         up + "upsamplers.0.conv.", Inner::kSame});
      }
    }
  }
  return pairs;
}

std::vector<BlockPair> vae_pairs() {
  std::vector<BlockPair> pairs = {
      {"quant_conv.", "quant_conv.", Inner::kSame},
      {"post_quant_conv.", "post_quant_conv.", Inner::kSame},
  };
  for (const std::string side : {"encoder.", "decoder."}) {
    pairs.push_back({side + "conv_in.", side + "conv_in.", Inner::kSame});
    pairs.push_back({side + "conv_out.", side + "conv_out.", Inner::kSame});
    pairs.push_back({side + "norm_out.", side + "conv_norm_out.", Inner::kSame});
    pairs.push_back({side + "mid.block_1.", side + "mid_block.resnets.0.", Inner::kVaeResnet});
    pairs.push_back({side + "mid.block_2.", side + "mid_block.resnets.1.", Inner::kVaeResnet});
    pairs.push_back({side + "mid.attn_1.", side + "mid_block.attentions.0.", Inner::kVaeAttention});
  }
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 2; ++j) {
      pairs.push_back({"encoder.down." + s(i) + ".block." + s(j) + ".",
                       "encoder.down_blocks." + s(i) + ".resnets." + s(j) + ".", Inner::kVaeResnet});
    }
    for (int j = 0; j < 3; ++j) {
      pairs.push_back({"decoder.up." + s(3 - i) + ".block." + s(j) + ".",
                       "decoder.up_blocks." + s(i) + ".resnets." + s(j) + ".", Inner::kVaeResnet});
    }
    if (i < 3) {
      pairs.push_back({"encoder.down." + s(i) + ".downsample.conv.",
                       "encoder.down_blocks." + s(i) + ".downsamplers.0.conv.", Inner::kSame});
      pairs.push_back({"decoder.up." + s(3 - i) + ".upsample.conv.",
                       "decoder.up_blocks." + s(i) + ".upsamplers.0.conv.", Inner::kSame});
    }
  }
  return pairs;
}

// Renames `name` from one side of `pairs` to the other; nullopt when no prefix matches or the inner
// module is unknown.
std::optional<std::string> rename(const std::vector<BlockPair>& pairs, const std::string& name, bool to_ldm) {
  const BlockPair* best = nullptr;
  size_t best_length = 0;
  for (const BlockPair& p : pairs) {
    const std::string& from = to_ldm ? p.diffusers : p.ldm;
    if (from.size() > best_length && layout_starts_with(name, from)) {
      best = &p;
      best_length = from.size();
    }
  }
  if (best == nullptr) return std::nullopt;
  const std::string& to = to_ldm ? best->ldm : best->diffusers;
  const std::string rest = name.substr(best_length);
  if (best->inner == Inner::kSame) return to + rest;
  const size_t dot = rest.rfind('.');
  if (dot == std::string::npos) return std::nullopt;
  const std::string module = rest.substr(0, dot);
  for (const ModulePair& m : inner_table(best->inner)) {
    if (module == (to_ldm ? m.diffusers : m.ldm)) return to + (to_ldm ? m.ldm : m.diffusers) + rest.substr(dot);
  }
  return std::nullopt;
}

bool is_vae_attention_weight(const std::string& ldm_name) {
  if (ldm_name.find("mid.attn_1.") == std::string::npos) return false;
  for (const char* leaf : {"q.weight", "k.weight", "v.weight", "proj_out.weight"}) {
    if (layout_ends_with(ldm_name, std::string("mid.attn_1.") + leaf)) return true;
  }
  return false;
}

Status convert_part(const WeightMap& from, const std::vector<BlockPair>& pairs, bool to_ldm,
                    const std::string& from_prefix, const std::string& to_prefix, std::string_view what,
                    WeightMap& out) {
  for (const auto& [key, tensor] : from) {
    if (!layout_starts_with(key, from_prefix)) continue;
    std::optional<std::string> name = rename(pairs, key.substr(from_prefix.size()), to_ldm);
    if (!name) return Status::unsupported(std::string(what) + ": no " + (to_ldm ? "ldm" : "diffusers") +
                                          " name for tensor '" + key + "'");
    at::Tensor t = tensor;
    const std::string& ldm_name = to_ldm ? *name : key;
    if (is_vae_attention_weight(ldm_name)) {
      if (to_ldm && t.dim() == 2) t = t.reshape({t.size(0), t.size(1), 1, 1});
      if (!to_ldm && t.dim() == 4) t = t.reshape({t.size(0), t.size(1)});
    }
    out[to_prefix + *name] = t;
  }
  return Status::ok();
}

const TextEncoderSpec* find_encoder(const FamilyInfo& info, std::string_view name) {
  for (const TextEncoderSpec& te : info.text_encoders) {
    if (te.name == name) return &te;
  }
  return nullptr;
}

// Which canonical text encoder a diffusers folder keeps in text_encoder/ and text_encoder_2/.
std::pair<const TextEncoderSpec*, const TextEncoderSpec*> diffusers_encoders(const FamilyInfo& info) {
  switch (info.family) {
    case ModelFamily::kSd1: return {find_encoder(info, "clip_l"), nullptr};
    case ModelFamily::kSd2: return {find_encoder(info, "clip_h"), nullptr};
    case ModelFamily::kSdxl: return {find_encoder(info, "clip_l"), find_encoder(info, "clip_g")};
    case ModelFamily::kSdxlRefiner: return {nullptr, find_encoder(info, "clip_g")};
  }
  return {nullptr, nullptr};
}

Status copy_text_encoder(const WeightMap& from, const TextEncoderSpec* spec, std::string_view folder, WeightMap& out) {
  if (from.empty()) return Status::ok();
  if (spec == nullptr) {
    return Status::invalid_argument(std::string(folder) + ": this model family has no text encoder there");
  }
  for (const auto& [key, tensor] : from) {
    if (layout_ends_with(key, "position_ids")) continue;
    if (!layout_starts_with(key, "text_model.") && key != "text_projection.weight") {
      return Status::unsupported(std::string(folder) + ": tensor '" + key + "' is not a CLIPTextModel name");
    }
    out[spec->prefix + key] = tensor;
  }
  return Status::ok();
}

Result<WeightMap> load_component(const fs::path& dir, const TensorFileLoader& loader, bool required) {
  std::error_code ec;
  std::vector<std::string> plain, variant;
  if (fs::is_directory(dir, ec)) {
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (!layout_ends_with(name, ".safetensors")) continue;
      (name.find(".fp16.") != std::string::npos ? variant : plain).push_back(entry.path().string());
    }
  }
  std::vector<std::string>& files = plain.empty() ? variant : plain;
  if (files.empty()) {
    if (!required) return WeightMap{};
    return Status::not_found(dir.string() + ": no .safetensors file");
  }
  std::sort(files.begin(), files.end());
  WeightMap merged;
  for (const std::string& file : files) {
    ND_ASSIGN_OR_RETURN(WeightMap part, loader(file));
    for (auto& [key, tensor] : part) merged[key] = std::move(tensor);
  }
  return merged;
}

}  // namespace

Result<UnetSignature> read_diffusers_unet_signature(const WeightMap& unet) {
  auto find = [&](const std::string& key) -> const at::Tensor* {
    auto it = unet.find(key);
    return it == unet.end() ? nullptr : &it->second;
  };
  const at::Tensor* conv_in = find("conv_in.weight");
  if (conv_in == nullptr || conv_in->dim() != 4) {
    return Status::not_found("diffusers UNet: tensor 'conv_in.weight' is missing");
  }
  UnetSignature sig;
  UnetLayout& u = sig.layout;
  u.in_channels = static_cast<int>(conv_in->size(1));
  u.model_channels = static_cast<int>(conv_in->size(0));
  if (const at::Tensor* add = find("add_embedding.linear_1.weight")) sig.adm_channels = static_cast<int>(add->size(1));
  u.channel_mult.clear();
  u.transformer_depth.clear();
  u.context_dim = 0;
  const int levels = count_numbered(unet, "down_blocks.");
  for (int x = 0; x < levels; ++x) {
    const std::string block = "down_blocks." + s(x) + ".";
    const int resnets = count_numbered(unet, block + "resnets.");
    if (resnets != u.num_res_blocks) {
      return Status::unsupported("diffusers UNet: '" + block + "' has " + s(resnets) + " resnets (supported: 2)");
    }
    const at::Tensor* conv2 = find(block + "resnets.0.conv2.weight");
    if (conv2 == nullptr) return Status::not_found("diffusers UNet: tensor '" + block + "resnets.0.conv2.weight' is missing");
    u.channel_mult.push_back(static_cast<int>(conv2->size(0)) / u.model_channels);
    const std::string attention = block + "attentions.0.";
    u.transformer_depth.push_back(count_numbered(unet, attention + "transformer_blocks."));
    if (u.context_dim == 0 && u.transformer_depth.back() > 0) {
      const at::Tensor* to_k = find(attention + "transformer_blocks.0.attn2.to_k.weight");
      const at::Tensor* proj_in = find(attention + "proj_in.weight");
      if (to_k == nullptr || proj_in == nullptr) {
        return Status::unsupported("diffusers UNet attention '" + attention + "' lacks attn2.to_k or proj_in");
      }
      u.context_dim = static_cast<int>(to_k->size(1));
      u.use_linear_in_transformer = proj_in->dim() == 2;
    }
  }
  u.transformer_depth_middle = count_numbered(unet, "mid_block.attentions.0.transformer_blocks.");
  if (u.context_dim == 0) return Status::unsupported("diffusers UNet without cross-attention (no attn2.to_k)");
  return sig;
}

Result<FamilyInfo> detect_diffusers_family(const DiffusersWeights& components,
                                           const std::map<std::string, std::string>& metadata,
                                           std::optional<Prediction> override) {
  ND_ASSIGN_OR_RETURN(UnetSignature sig, read_diffusers_unet_signature(components.unet));
  ND_ASSIGN_OR_RETURN(FamilyInfo info, family_from_signature(sig));
  ND_ASSIGN_OR_RETURN(info.prediction, decide_prediction(components.unet, metadata, override, info));
  if (info.family == ModelFamily::kSd2 && info.prediction == Prediction::kV) info.default_size = 768;
  auto [first, second] = diffusers_encoders(info);
  for (TextEncoderSpec& te : info.text_encoders) {
    te.present = (first && te.name == first->name && !components.text_encoder.empty()) ||
                 (second && te.name == second->name && !components.text_encoder_2.empty());
  }
  return info;
}

Result<WeightMap> diffusers_to_ldm(const WeightMap& unet, const WeightMap& vae, const WeightMap& text_encoder,
                                   const WeightMap& text_encoder_2, const FamilyInfo& info) {
  WeightMap out;
  ND_RETURN_IF_ERROR(convert_part(unet, unet_pairs(info.unet, info.adm_channels), true, "", info.unet_prefix,
                                  "diffusers unet", out));
  ND_RETURN_IF_ERROR(convert_part(vae, vae_pairs(), true, "", info.vae_prefix, "diffusers vae", out));
  auto [first, second] = diffusers_encoders(info);
  ND_RETURN_IF_ERROR(copy_text_encoder(text_encoder, first, "text_encoder", out));
  ND_RETURN_IF_ERROR(copy_text_encoder(text_encoder_2, second, "text_encoder_2", out));
  return out;
}

std::map<std::string, std::string> unet_diffusers_names(const std::vector<std::string>& ldm_names, const UnetLayout& unet,
                                                        int adm_channels) {
  const std::vector<BlockPair> pairs = unet_pairs(unet, adm_channels);
  std::map<std::string, std::string> out;
  for (const std::string& name : ldm_names) {
    std::optional<std::string> d = rename(pairs, name, false);
    if (d) out[name] = *d;
  }
  return out;
}

Result<DiffusersWeights> ldm_to_diffusers(const WeightMap& canonical, const FamilyInfo& info) {
  DiffusersWeights out;
  ND_RETURN_IF_ERROR(convert_part(canonical, unet_pairs(info.unet, info.adm_channels), false, info.unet_prefix, "",
                                  "canonical unet", out.unet));
  ND_RETURN_IF_ERROR(convert_part(canonical, vae_pairs(), false, info.vae_prefix, "", "canonical vae", out.vae));
  auto [first, second] = diffusers_encoders(info);
  for (const auto& [key, tensor] : canonical) {
    if (layout_starts_with(key, info.unet_prefix) || layout_starts_with(key, info.vae_prefix)) continue;
    if (first && layout_starts_with(key, first->prefix)) {
      out.text_encoder[key.substr(first->prefix.size())] = tensor;
    } else if (second && layout_starts_with(key, second->prefix)) {
      out.text_encoder_2[key.substr(second->prefix.size())] = tensor;
    } else {
      return Status::unsupported("canonical tensor '" + key + "' has no place in a diffusers folder");
    }
  }
  return out;
}

Result<DiffusersModel> load_diffusers(const std::string& folder, const TensorFileLoader& loader,
                                      std::optional<Prediction> override) {
  const fs::path root(folder);
  std::error_code ec;
  if (!fs::is_regular_file(root / "model_index.json", ec)) {
    return Status::not_found(folder + ": not a diffusers folder (no model_index.json)");
  }
  DiffusersWeights parts;
  ND_ASSIGN_OR_RETURN(parts.unet, load_component(root / "unet", loader, true));
  ND_ASSIGN_OR_RETURN(parts.vae, load_component(root / "vae", loader, true));
  ND_ASSIGN_OR_RETURN(parts.text_encoder, load_component(root / "text_encoder", loader, false));
  ND_ASSIGN_OR_RETURN(parts.text_encoder_2, load_component(root / "text_encoder_2", loader, false));
  std::map<std::string, std::string> metadata;
  const fs::path scheduler = root / "scheduler" / "scheduler_config.json";
  if (fs::is_regular_file(scheduler, ec)) {
    std::ifstream in(scheduler);
    nlohmann::json config = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded()) return Status::corruption(scheduler.string() + ": not valid JSON");
    if (config.contains("prediction_type") && config["prediction_type"].is_string()) {
      metadata["prediction_type"] = config["prediction_type"].get<std::string>();
    }
  }
  DiffusersModel model;
  ND_ASSIGN_OR_RETURN(model.info, detect_diffusers_family(parts, metadata, override));
  ND_ASSIGN_OR_RETURN(model.weights, diffusers_to_ldm(parts.unet, parts.vae, parts.text_encoder, parts.text_encoder_2,
                                                      model.info));
  return model;
}

}  // namespace netdist::models
