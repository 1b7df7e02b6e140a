// CLIP text transformer (OpenAI CLIP-L, OpenCLIP ViT-H and ViT-bigG), as ComfyUI runs it
// (comfy/clip_model.py CLIPTextModel under comfy/sd1_clip.py SDClipModel).
//
// Parameter names are the HF CLIPTextModel names that ComfyUI uses internally:
//   text_model.embeddings.token_embedding.weight        [vocab, D]
//   text_model.embeddings.position_embedding.weight     [max_positions, D]
//   text_model.encoder.layers.N.{layer_norm1,layer_norm2}.{weight,bias}
//   text_model.encoder.layers.N.self_attn.{q_proj,k_proj,v_proj,out_proj}.{weight,bias}
//   text_model.encoder.layers.N.mlp.{fc1,fc2}.{weight,bias}
//   text_model.final_layer_norm.{weight,bias}
//   text_projection.weight                              [projection_dim, D]  (only if projection_dim > 0)
// OpenCLIP checkpoints are converted to these names by src/engine/models/ before loading.
//
// Precision: parameters may be stored in any float dtype (ComfyUI stores text encoders in fp16 by
// default); every operation runs in fp32 on the stored values cast to fp32, as ComfyUI's manual_cast
// ops do when SDClipModel passes dtype=float32. Outputs are fp32.
// Thread-safety: forward() on one instance is safe from several threads only under torch's usual rules
// (no concurrent weight loading).
#pragma once

#include <string_view>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "core/status.h"
#include "engine/runtime/weights.h"

namespace netdist::text {

enum class ClipActivation { kQuickGelu, kGelu };

struct ClipTextConfig {
  int vocab_size = 49408;
  int hidden_size = 768;
  int num_layers = 12;
  int num_heads = 12;
  int intermediate_size = 3072;
  int max_positions = 77;
  ClipActivation activation = ClipActivation::kQuickGelu;
  int projection_dim = 0;  // 0: no text_projection (SD1 and SDXL CLIP-L checkpoints carry none)
  int eos_token_id = 49407;
  double layer_norm_eps = 1e-5;

  static ClipTextConfig clip_l();          // 768 / 12 layers / 12 heads / 3072, quick_gelu, no projection
  static ClipTextConfig open_clip_h();     // 1024 / 24 / 16 / 4096, gelu, projection 1024
  static ClipTextConfig open_clip_bigg();  // 1280 / 32 / 20 / 5120, gelu, projection 1280
  static ClipTextConfig tiny();            // vocab 64, 16 / 3 / 2 / 32, quick_gelu, projection 8, eos 63: tests

  bool operator==(const ClipTextConfig&) const = default;
};

// Reads the config from tensor shapes under `prefix` (e.g. "clip_l.transformer."): vocab and hidden from
// the token embedding, positions from the position embedding, layers by counting encoder.layers.N,
// intermediate from fc1, projection from text_projection.weight. Heads = hidden / 64 (true for all three
// encoders). Activation as ComfyUI's configs: quick_gelu for hidden 768 (CLIP-L), gelu otherwise.
// Only shapes are read; the tensors may be meta or empty.
Result<ClipTextConfig> detect_clip_text_config(const runtime::WeightMap& weights, std::string_view prefix);

struct ClipTextOutput {
  at::Tensor hidden;  // [B, L, D] fp32: the selected layer's output (final LN applied if asked)
  at::Tensor pooled;  // [B, projection_dim] fp32 (or [B, D] when unprojected): see forward()
};

struct ClipAttentionImpl : torch::nn::Module {
  explicit ClipAttentionImpl(const ClipTextConfig& config);
  at::Tensor forward(const at::Tensor& x);  // [B, L, D] -> [B, L, D], causal
  int num_heads_;
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(ClipAttention);

struct ClipMlpImpl : torch::nn::Module {
  explicit ClipMlpImpl(const ClipTextConfig& config);
  at::Tensor forward(const at::Tensor& x);
  ClipActivation activation_;
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(ClipMlp);

struct ClipLayerImpl : torch::nn::Module {
  explicit ClipLayerImpl(const ClipTextConfig& config);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  ClipAttention self_attn{nullptr};
  ClipMlp mlp{nullptr};
};
TORCH_MODULE(ClipLayer);

class ClipTextModelImpl : public torch::nn::Module {
 public:
  explicit ClipTextModelImpl(ClipTextConfig config);

  const ClipTextConfig& config() const { return config_; }

  // ids: [B, L] int64 token ids in [0, vocab_size), L <= max_positions (77 in practice).
  // layer_idx: ComfyUI's intermediate_output: >= 0 is an absolute layer index, < 0 counts from the end
  //   (-1 = last layer, -2 = penultimate); must satisfy -num_layers <= layer_idx < num_layers.
  // final_layer_norm_on_hidden: apply final_layer_norm to that layer's output (ComfyUI's
  //   layer_norm_hidden_state; true for SD1/SD2, false for both SDXL encoders).
  // project_pooled: multiply pooled by text_projection (ignored when the model has none).
  // pooled = final_layer_norm(last layer output) at the first position whose id == eos_token_id
  //   (position 0 if there is none), exactly as comfy/clip_model.py.
  // embed_mask [B, L] bool / embed_values [B, L, D] float32 (both or neither): positions whose token
  // embedding is replaced by the value, rounded to the token embedding's dtype first (ComfyUI copies textual-
  // inversion vectors into a new Embedding of that dtype).
  ClipTextOutput forward(const at::Tensor& ids, int layer_idx, bool final_layer_norm_on_hidden,
                         bool project_pooled = true, const at::Tensor& embed_mask = {},
                         const at::Tensor& embed_values = {});

 private:
  ClipTextConfig config_;
  torch::nn::Embedding token_embedding_{nullptr}, position_embedding_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  torch::nn::LayerNorm final_layer_norm_{nullptr};
  torch::nn::Linear text_projection_{nullptr};
};
TORCH_MODULE(ClipTextModel);

// Loads `weights[prefix + name]` into `model` (names as above). Ignores position_ids buffers and
// logit_scale that exporters add; a text_projection in the file is ignored when the model has none.
Status load_clip_text_weights(ClipTextModelImpl& model, const runtime::WeightMap& weights, std::string_view prefix,
                              std::string_view what);

}  // namespace netdist::text
