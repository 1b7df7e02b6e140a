#include "engine/lora.h"

#include "core/log.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <set>

#include <torch/torch.h>

namespace netdist::lora {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

std::string underscores(const std::string& s) { return replace_all(s, ".", "_"); }

std::string strip_weight(const std::string& s) {
  return s.substr(0, s.size() - std::string(".weight").size());
}

// ComfyUI's LORA_CLIP_MAP, in its order.
const std::pair<const char*, const char*> kClipMap[] = {
    {"mlp.fc1", "mlp_fc1"},
    {"mlp.fc2", "mlp_fc2"},
    {"self_attn.k_proj", "self_attn_k_proj"},
    {"self_attn.q_proj", "self_attn_q_proj"},
    {"self_attn.v_proj", "self_attn_v_proj"},
    {"self_attn.out_proj", "self_attn_out_proj"},
};

// The (up, down, mid) tensor names of each supported LoRA format for key x, in load_lora's order.
struct Format {
  std::string up, down, mid;
};

std::vector<Format> formats(const std::string& x) {
  return {
      {x + ".lora_up.weight", x + ".lora_down.weight", x + ".lora_mid.weight"},
      {x + "_lora.up.weight", x + "_lora.down.weight", ""},
      {x + ".lora_B.weight", x + ".lora_A.weight", ""},
      {x + ".lora.up.weight", x + ".lora.down.weight", ""},
      {x + ".lora_B", x + ".lora_A", ""},
      {x + ".lora_linear_layer.up.weight", x + ".lora_linear_layer.down.weight", ""},
  };
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace

void KeyMap::set(const std::string& lora_key, const std::string& weight) {
  auto it = index_.find(lora_key);
  if (it != index_.end()) {
    entries_[it->second].second = weight;
    return;
  }
  index_[lora_key] = entries_.size();
  entries_.emplace_back(lora_key, weight);
}

// As in ComfyUI, diffusers UNet attention keys are matched only in the attention-processor form
// (unet.….attn1.processor.to_q); PEFT files naming them unet.….attn1.to_q.lora_A.weight leave those keys
// not loaded (logged).
void add_unet_keys(KeyMap& map, const std::vector<std::string>& unet_names, const std::string& unet_prefix,
                   const std::map<std::string, std::string>& ldm_to_diffusers) {
  for (const std::string& k : unet_names) {
    if (!starts_with(k, unet_prefix) || !ends_with(k, ".weight")) continue;
    const std::string base = strip_weight(k.substr(unet_prefix.size()));
    map.set("lora_unet_" + underscores(base), k);
    map.set("lora_prior_unet_" + underscores(base), k);
    map.set("diffusion_model." + base, k);
  }
  for (const auto& [ldm, diffusers] : ldm_to_diffusers) {
    if (!ends_with(diffusers, ".weight")) continue;
    const std::string target = unet_prefix + ldm;
    const std::string base = strip_weight(diffusers);
    map.set("lora_unet_" + underscores(base), target);
    map.set("lycoris_" + underscores(base), target);
    for (const std::string p : {"", "unet."}) {
      std::string key = p + replace_all(base, ".to_", ".processor.to_");
      if (ends_with(key, ".to_out.0")) key = key.substr(0, key.size() - 2);
      map.set(key, target);
    }
  }
}

void add_clip_keys(KeyMap& map, const std::vector<std::string>& clip_names) {
  const std::set<std::string> sdk(clip_names.begin(), clip_names.end());
  for (const std::string& k : clip_names) {
    if (ends_with(k, ".weight")) map.set("text_encoders." + strip_weight(k), k);
  }
  bool clip_l_present = false;
  for (int b = 0; b < 32; ++b) {
    const std::string layer = "text_model.encoder.layers." + std::to_string(b) + ".";
    const std::string lora_layer = "text_model_encoder_layers_" + std::to_string(b) + "_";
    for (const auto& [c, lora_c] : kClipMap) {
      std::string k = "clip_h.transformer." + layer + c + ".weight";
      if (sdk.count(k)) {
        map.set("lora_te_" + lora_layer + lora_c, k);
        map.set("lora_te1_" + lora_layer + lora_c, k);
        map.set("text_encoder." + layer + c, k);
      }
      k = "clip_l.transformer." + layer + c + ".weight";
      if (sdk.count(k)) {
        map.set("lora_te_" + lora_layer + lora_c, k);
        map.set("lora_te1_" + lora_layer + lora_c, k);
        clip_l_present = true;
        map.set("text_encoder." + layer + c, k);
      }
      k = "clip_g.transformer." + layer + c + ".weight";
      if (sdk.count(k)) {
        if (clip_l_present) {
          map.set("lora_te2_" + lora_layer + lora_c, k);
          map.set("text_encoder_2." + layer + c, k);
        } else {
          map.set("lora_te_" + lora_layer + lora_c, k);
          map.set("text_encoder." + layer + c, k);
          map.set("lora_prior_te_" + lora_layer + lora_c, k);
        }
      }
    }
  }
  if (sdk.count("clip_g.transformer.text_projection.weight")) {
    map.set("lora_prior_te_text_projection", "clip_g.transformer.text_projection.weight");
    map.set("lora_te2_text_projection", "clip_g.transformer.text_projection.weight");
  }
  if (sdk.count("clip_l.transformer.text_projection.weight")) {
    map.set("lora_te1_text_projection", "clip_l.transformer.text_projection.weight");
  }
}

Result<Loaded> load_lora(const runtime::WeightMap& lora, const KeyMap& map,
                         const std::map<std::string, std::vector<int64_t>>& shapes, const std::string& what) {
  Loaded out;
  std::set<std::string> loaded_keys;
  auto find = [&](const std::string& name) -> const at::Tensor* {
    auto it = lora.find(name);
    return it == lora.end() ? nullptr : &it->second;
  };
  for (const auto& [x, target] : map.entries()) {
    std::optional<double> alpha;
    if (const at::Tensor* a = find(x + ".alpha")) {
      if (a->numel() != 1)
        return Status::invalid_argument(what + ": tensor '" + x + ".alpha' is not a scalar");
      alpha = a->to(at::kDouble).item<double>();
      loaded_keys.insert(x + ".alpha");
    }
    for (const Format& f : formats(x)) {
      const at::Tensor* up = find(f.up);
      if (!up) continue;
      const at::Tensor* down = find(f.down);
      if (!down) return Status::invalid_argument(what + ": '" + f.up + "' has no matching '" + f.down + "'");
      if (find(x + ".dora_scale") || (!f.mid.empty() && find(f.mid))) {
        log::warn("lora {}: DoRA and LoCon mid weights are not supported; not applied to {}", x, target);
        break;
      }
      if (up->dim() < 2 || down->dim() < 2 || up->flatten(1).size(1) != down->size(0)) {
        return Status::invalid_argument(what + ": '" + f.up + "' and '" + f.down +
                                        "' do not form a low-rank pair");
      }
      loaded_keys.insert(f.up);
      loaded_keys.insert(f.down);
      auto shape = shapes.find(target);
      const int64_t product = up->size(0) * down->flatten(1).size(1);
      if (shape == shapes.end() || numel(shape->second) != product) {
        const std::string weight =
            shape == shapes.end() ? "is missing" : "has " + std::to_string(numel(shape->second));
        log::error("lora {}: product of {} has {} elements, the weight {}", target, f.up, product, weight);
        break;
      }
      LowRank p;
      p.up = up->to(at::kCPU, at::kFloat).contiguous();
      p.down = down->to(at::kCPU, at::kFloat).contiguous();
      p.scale = alpha ? *alpha / static_cast<double>(down->size(0)) : 1.0;
      out.patches[target] = std::move(p);
      break;
    }
  }
  for (const auto& [name, tensor] : lora) {
    if (!loaded_keys.count(name)) out.not_loaded.push_back(name);
  }
  std::sort(out.not_loaded.begin(), out.not_loaded.end());
  return out;
}

at::Tensor patched_weight(const at::Tensor& weight, const std::vector<LowRank>& patches) {
  at::Tensor w = weight.to(at::kFloat, /*non_blocking=*/false, /*copy=*/true);
  for (const LowRank& p : patches) {
    at::Tensor diff =
        at::mm(p.up.flatten(1).to(w.device()), p.down.flatten(1).to(w.device())).reshape(w.sizes());
    w += diff * p.scale;
  }
  return w.to(weight.scalar_type());
}

PatchScope::PatchScope(torch::nn::Module& module, const std::string& prefix, const WeightPatches& patches) {
  if (patches.empty()) return;
  torch::NoGradGuard no_grad;
  try {
    for (auto& item : module.named_parameters(/*recurse=*/true)) {
      auto it = patches.find(prefix + item.key());
      if (it == patches.end()) continue;
      at::Tensor& param = item.value();
      saved_.emplace_back(param, param.clone());
      param.copy_(patched_weight(param, it->second));
    }
  } catch (...) {
    // Out of memory half way: the weights patched so far are restored before the error leaves (no destructor
    // runs for a constructor that throws), so the shared model is never left patched.
    for (auto& [param, original] : saved_) param.copy_(original);
    throw;
  }
}

PatchScope::~PatchScope() {
  torch::NoGradGuard no_grad;
  for (auto& [param, original] : saved_) param.copy_(original);
}

}  // namespace netdist::lora
