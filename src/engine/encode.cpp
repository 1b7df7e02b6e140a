// encode_prompt and encode_prompt_sdxl of include/netdist/engine.h, following ComfyUI's CLIPTextEncode and
// comfy_extras/nodes_clip_sdxl.py CLIPTextEncodeSDXL (SDXLClipModel: clip_l and clip_g windows, cut to the shorter).
#include <torch/torch.h>

#include "engine/model.h"
#include "engine/text/embeddings.h"
#include "engine/text/text_encoder.h"
#include "engine/text/tokenize_prompt.h"

namespace netdist {

namespace {

Result<std::vector<text::WeightedTokens>> encode_tokenize(const Model& model, const models::TextEncoderSpec& spec,
                                                   const std::string& prompt) {
  text::TokenizeOptions options = text::TokenizeOptions::clip_l();
  // Families pad either with the end token (CLIP-L: 49407 in CLIP's vocab) or with 0 (OpenCLIP).
  if (spec.pad_id == 0) options.pad_id = 0;
  // ComfyUI's embedding_directory (engine/text/embeddings.h), with this encoder's key in the file.
  if (!model.options_.embeddings_dir.empty()) {
    options.embedding_lookup = [dir = model.options_.embeddings_dir,
                                key = text::embedding_key_for(spec.name)](const std::string& name) {
      return text::load_embedding(dir, name, key);
    };
  }
  ND_ASSIGN_OR_RETURN(auto windows, text::tokenize_with_weights(*model.tokenizer_, prompt, options));
  std::vector<text::WeightedTokens> out;
  for (auto& w : windows) out.push_back({std::move(w.ids), std::move(w.weights), std::move(w.embeddings)});
  return out;
}

// CLIPSetLastLayer (ComfyUI SDClipModel.set_clip_options): a set layer replaces the family's default layer
// for every encoder; one beyond the encoder's depth means its last layer with the final layer norm.
text::EncodeOptions encode_clip_options(const Model& model, const TextEncoder& enc,
                                   std::optional<int> clip_layer) {
  text::EncodeOptions o;
  o.layer_idx = enc.spec.absolute_layer();
  o.final_ln = enc.spec.final_ln;
  if (clip_layer) {
    const int layers = enc.spec.config.num_layers;
    if (std::abs(*clip_layer) > layers) {
      o.layer_idx = layers - 1;
      o.final_ln = true;
    } else {
      o.layer_idx = *clip_layer < 0 ? layers + *clip_layer : *clip_layer;
    }
  }
  o.start_id = model.tokenizer_->bos_id();
  o.end_id = model.tokenizer_->eos_id();
  o.pad_id = enc.spec.pad_id == 0 ? 0 : model.tokenizer_->eos_id();
  o.project_pooled = enc.spec.project_pooled;
  return o;
}

// The windows of every encoder (one list per encoder, in model.encoders_ order) → one conditioning entry.
Result<CondEntry> encode_windows(Model& model, const std::vector<std::vector<text::WeightedTokens>>& windows,
                                 std::optional<int> clip_layer) {
  CondEntry entry;
  Status s = guard_torch("encoding the prompt", [&] {
    c10::InferenceMode inference;
    Result<text::Conditioning> cond = Status::internal("no text encoder");
    if (model.encoders_.size() == 2) {
      TextEncoder& l = model.encoders_[0];
      TextEncoder& g = model.encoders_[1];
      OnDevice on_l(model, *l.model), on_g(model, *g.model);
      lora::PatchScope patch_l(*l.model, l.spec.prefix, model.clip_patches_);
      lora::PatchScope patch_g(*g.model, g.spec.prefix, model.clip_patches_);
      cond = text::encode_sdxl(*l.model, windows[0], encode_clip_options(model, l, clip_layer), *g.model,
                               windows[1], encode_clip_options(model, g, clip_layer));
    } else if (model.encoders_.size() == 1) {
      TextEncoder& e = model.encoders_[0];
      OnDevice on(model, *e.model);
      lora::PatchScope patch(*e.model, e.spec.prefix, model.clip_patches_);
      cond = text::encode_weighted(*e.model, windows[0], encode_clip_options(model, e, clip_layer));
    }
    if (!cond.is_ok()) return cond.status();
    entry.context = cond->hidden.to(at::kCPU, at::kFloat);
    if (cond->pooled.defined()) entry.pooled = cond->pooled.to(at::kCPU, at::kFloat);
    return Status::ok();
  });
  ND_RETURN_IF_ERROR(s);
  return entry;
}

// CLIPTextEncodeSDXL on the SDXL refiner's CLIP (SDXLTokenizer + SDXLRefinerClipModel): only clip_g encodes,
// text_g; text_l is tokenized only to count its windows, since the node pads the g side with windows of the
// empty prompt while the l side has more.
Result<Conditioning> encode_refiner_sdxl(Model& model, const std::string& text_g, const std::string& text_l,
                                         const AdmSize& size, std::optional<int> clip_layer) {
  std::lock_guard<std::mutex> lock(*model.mutex_);
  const models::TextEncoderSpec& g_spec = model.encoders_[0].spec;
  ND_ASSIGN_OR_RETURN(auto g, encode_tokenize(model, g_spec, text_g));
  models::TextEncoderSpec l_spec = g_spec;
  l_spec.pad_id = model.tokenizer_->eos_id();  // the SDXL tokenizer's clip_l pads with its end token
  l_spec.name = "clip_l";
  ND_ASSIGN_OR_RETURN(auto l, encode_tokenize(model, l_spec, text_l));
  if (g.size() < l.size()) {
    ND_ASSIGN_OR_RETURN(auto empty_g, encode_tokenize(model, g_spec, ""));
    while (g.size() < l.size()) g.insert(g.end(), empty_g.begin(), empty_g.end());
  }
  ND_ASSIGN_OR_RETURN(CondEntry entry, encode_windows(model, {g}, clip_layer));
  entry.adm_size = size;
  return Conditioning{entry};
}

}  // namespace

Result<Conditioning> encode_prompt(Model& model, const std::string& text, std::optional<int> clip_layer) {
  std::lock_guard<std::mutex> lock(*model.mutex_);
  std::vector<std::vector<text::WeightedTokens>> windows;
  for (const TextEncoder& enc : model.encoders_) {
    ND_ASSIGN_OR_RETURN(auto w, encode_tokenize(model, enc.spec, text));
    windows.push_back(std::move(w));
  }
  ND_ASSIGN_OR_RETURN(CondEntry entry, encode_windows(model, windows, clip_layer));
  return Conditioning{entry};
}

Result<Conditioning> encode_prompt_sdxl(Model& model, const std::string& text_g, const std::string& text_l,
                                        const AdmSize& size, std::optional<int> clip_layer) {
  if (model.encoders_.size() == 1 && model.info_.family == models::ModelFamily::kSdxlRefiner) {
    return encode_refiner_sdxl(model, text_g, text_l, size, clip_layer);
  }
  if (model.encoders_.size() != 2) {
    return Status::invalid_argument("CLIPTextEncodeSDXL needs an SDXL CLIP (clip_l and clip_g); '" + model.path_ +
                                    "' has " + std::to_string(model.encoders_.size()) + " text encoder(s)");
  }
  std::lock_guard<std::mutex> lock(*model.mutex_);
  ND_ASSIGN_OR_RETURN(auto l, encode_tokenize(model, model.encoders_[0].spec, text_l));
  ND_ASSIGN_OR_RETURN(auto g, encode_tokenize(model, model.encoders_[1].spec, text_g));
  // As the node: the side with fewer 77-token windows gains windows of the empty prompt.
  if (l.size() != g.size()) {
    ND_ASSIGN_OR_RETURN(auto empty_l, encode_tokenize(model, model.encoders_[0].spec, ""));
    ND_ASSIGN_OR_RETURN(auto empty_g, encode_tokenize(model, model.encoders_[1].spec, ""));
    while (l.size() < g.size()) l.insert(l.end(), empty_l.begin(), empty_l.end());
    while (g.size() < l.size()) g.insert(g.end(), empty_g.begin(), empty_g.end());
  }
  ND_ASSIGN_OR_RETURN(CondEntry entry, encode_windows(model, {l, g}, clip_layer));
  entry.adm_size = size;
  return Conditioning{entry};
}

}  // namespace netdist
