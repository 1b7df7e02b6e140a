// T5 v1.1 text encoder (the encoder stack of T5-XXL that SD3, SD3.5 and Flux condition on), as ComfyUI runs
// it (comfy/text_encoders/t5.py T5 under comfy/sd1_clip.py SDClipModel, sd3_clip.py T5XXLModel):
//   x = shared[ids]; per block: x += SelfAttention(T5LayerNorm(x)); x += DenseReluDense(T5LayerNorm(x));
//   out = final_layer_norm(x).
//   * T5LayerNorm is RMSNorm without mean or bias: weight * x * rsqrt(mean(x^2) + 1e-6);
//   * attention has no biases and no 1/sqrt(d_kv) scaling; the first block's relative_attention_bias
//     (32 buckets, max distance 128, bidirectional, as Mesh TensorFlow) is added to the scores of every block
//     (UMT5-style files with a bias in every block use their own);
//   * the feed-forward is gated GELU (tanh approximation): wo(gelu(wi_0 x) * wi_1 x);
//   * the attention mask, when given, is additive: -inf at masked keys (ComfyUI passes none for SD3 and Flux
//     unless t5_attention_mask is set; see t5_attention_mask()).
//
// Parameter names are ComfyUI's (those of t5xxl_fp16.safetensors; a checkpoint adds a prefix such as
// "text_encoders.t5xxl.transformer."):
//   shared.weight                                                  [vocab, d_model]
//   encoder.block.N.layer.0.SelfAttention.{q,k,v}.weight           [heads * d_kv, d_model]
//   encoder.block.N.layer.0.SelfAttention.o.weight                 [d_model, heads * d_kv]
//   encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight   [32, heads]
//   encoder.block.N.layer.0.layer_norm.weight, encoder.block.N.layer.1.layer_norm.weight   [d_model]
//   encoder.block.N.layer.1.DenseReluDense.{wi_0,wi_1}.weight      [d_ff, d_model]
//   encoder.block.N.layer.1.DenseReluDense.wo.weight               [d_model, d_ff]
//   encoder.final_layer_norm.weight                                [d_model]
// Every size comes from those shapes, so tiny random test weights work like the real 4.7 B-parameter model.
//
// Precision: parameters stay in their stored dtype (fp16, bf16, fp32; fp8 files load as exact fp16 upcasts);
// every operation runs in compute_dtype, fp32 by default, on weights cast per operation, as ComfyUI's
// manual_cast ops do when SDClipModel passes dtype=float32. Files with ComfyUI's "scaled_fp8" marker
// (per-tensor scales) are refused as unsupported for now (issue #19 item 4).
// Thread-safety: forward() under torch's usual rules (no concurrent weight loading).
#pragma once

#include <string>
#include <string_view>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "core/status.h"
#include "engine/runtime/weights.h"

namespace netdist::text {

struct T5Config {
  int vocab_size = 32128;
  int d_model = 4096;
  int num_layers = 24;
  int num_heads = 64;
  int d_kv = 64;
  int d_ff = 10240;
  int num_buckets = 32;
  int max_distance = 128;
  bool bias_in_every_block = false;  // UMT5: each block has its own relative_attention_bias
  double eps = 1e-6;

  static T5Config xxl() { return {}; }  // comfy/text_encoders/t5_config_xxl.json
  bool operator==(const T5Config&) const = default;
};

// Reads the config from tensor shapes under prefix. Errors (naming `what` and the key): a missing or
// misshapen tensor among those listed above, a non-gated feed-forward (DenseReluDense.wi: T5 v1.0,
// unsupported), a "scaled_fp8" marker (unsupported).
Result<T5Config> detect_t5_config(const runtime::WeightMap& weights, std::string_view prefix,
                                  std::string_view what);

// Mesh TensorFlow's relative position buckets, computed with torch ops exactly as comfy/text_encoders/t5.py
// (float32 log on relative_position's device), for int64 relative positions (memory - query).
at::Tensor t5_relative_position_bucket(const at::Tensor& relative_position, bool bidirectional,
                                       int num_buckets, int max_distance);

// ComfyUI's attention mask for T5 ids [B, L]: 1 up to and including the first end_id of each row, 0 after.
at::Tensor t5_attention_mask(const at::Tensor& ids, int64_t end_id);

struct T5LayerNormImpl : torch::nn::Module {
  explicit T5LayerNormImpl(int64_t size);
  at::Tensor weight;
};
TORCH_MODULE(T5LayerNorm);

struct T5AttentionImpl : torch::nn::Module {
  T5AttentionImpl(const T5Config& config, bool has_relative_bias);
  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
  torch::nn::Embedding relative_attention_bias{nullptr};
};
TORCH_MODULE(T5Attention);

struct T5LayerSelfAttentionImpl : torch::nn::Module {
  T5LayerSelfAttentionImpl(const T5Config& config, bool has_relative_bias);
  T5Attention SelfAttention{nullptr};  // NOLINT: ComfyUI's parameter name
  T5LayerNorm layer_norm{nullptr};
};
TORCH_MODULE(T5LayerSelfAttention);

struct T5DenseGatedActDenseImpl : torch::nn::Module {
  explicit T5DenseGatedActDenseImpl(const T5Config& config);
  torch::nn::Linear wi_0{nullptr}, wi_1{nullptr}, wo{nullptr};
};
TORCH_MODULE(T5DenseGatedActDense);

struct T5LayerFFImpl : torch::nn::Module {
  explicit T5LayerFFImpl(const T5Config& config);
  T5DenseGatedActDense DenseReluDense{nullptr};  // NOLINT: ComfyUI's parameter name
  T5LayerNorm layer_norm{nullptr};
};
TORCH_MODULE(T5LayerFF);

struct T5BlockImpl : torch::nn::Module {
  T5BlockImpl(const T5Config& config, bool has_relative_bias);
  T5LayerSelfAttention attention{nullptr};  // registered as layer.0
  T5LayerFF ff{nullptr};                    // registered as layer.1
  torch::nn::ModuleList layer{nullptr};
};
TORCH_MODULE(T5Block);

struct T5StackImpl : torch::nn::Module {
  explicit T5StackImpl(const T5Config& config);
  torch::nn::ModuleList block{nullptr};
  T5LayerNorm final_layer_norm{nullptr};
};
TORCH_MODULE(T5Stack);

class T5EncoderModelImpl : public torch::nn::Module {
 public:
  explicit T5EncoderModelImpl(T5Config config);

  const T5Config& config() const { return config_; }

  // ids: [B, L] int64 in [0, vocab_size). attention_mask: undefined, or [B, L] with 1 = attend, 0 = masked
  // key. Returns final_layer_norm(last block output), [B, L, d_model] in compute_dtype.
  at::Tensor forward(const at::Tensor& ids, const at::Tensor& attention_mask = {});

  // fp32 by default (ComfyUI). A half dtype saves memory and time but no longer matches ComfyUI.
  void set_compute_dtype(at::ScalarType dtype) { compute_dtype_ = dtype; }
  // ComfyUI replaces NaN embeddings by 0 when the weights are fp8 ("Fix for fp8 T5 base").
  void set_nan_to_num_embeddings(bool on) { nan_to_num_embeddings_ = on; }

 private:
  at::Tensor attention(T5AttentionImpl& attn, const at::Tensor& x, at::Tensor& position_bias,
                       const at::Tensor& mask);

  T5Config config_;
  at::ScalarType compute_dtype_ = at::kFloat;
  bool nan_to_num_embeddings_ = false;
  torch::nn::Embedding shared{nullptr};
  T5Stack encoder{nullptr};
};
TORCH_MODULE(T5EncoderModel);

// Loads weights[prefix + name] into model (names as above); the decoder, lm_head and the HF duplicate
// encoder.embed_tokens.weight that full T5 files carry are ignored. Errors name `what` and the key.
Status load_t5_encoder_weights(T5EncoderModelImpl& model, const runtime::WeightMap& weights,
                               std::string_view prefix, std::string_view what);

// A T5 encoder from a safetensors file (a t5xxl_*.safetensors or a checkpoint with prefix): config from the
// shapes, parameters in the stored dtype (fp8 -> fp16) on device, NaN-to-zero embeddings for fp8 files.
Result<T5EncoderModel> load_t5_encoder(const std::string& path, std::string_view prefix = "",
                                       const at::Device& device = at::kCPU);

}  // namespace netdist::text
