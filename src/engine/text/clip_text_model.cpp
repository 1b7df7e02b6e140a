#include "engine/text/clip_text_model.h"

#include <algorithm>
#include <string>

#include <torch/torch.h>

#include "engine/runtime/torch_compat.h"

namespace netdist::text {

namespace {

at::Tensor as_f32(const at::Tensor& t) { return t.to(at::kFloat); }

at::Tensor linear_f32(const at::Tensor& x, torch::nn::Linear& layer) {
  at::Tensor bias = layer->bias.defined() ? as_f32(layer->bias) : at::Tensor();
  return at::linear(x, as_f32(layer->weight), bias);
}

at::Tensor layer_norm_f32(const at::Tensor& x, torch::nn::LayerNorm& norm) {
  return at::layer_norm(x, {x.size(-1)}, as_f32(norm->weight), as_f32(norm->bias), norm->options.eps());
}

torch::nn::LayerNorm make_layer_norm(const ClipTextConfig& config) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.hidden_size}).eps(config.layer_norm_eps));
}

bool clip_starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

const at::Tensor* find(const runtime::WeightMap& weights, const std::string& key) {
  auto it = weights.find(key);
  return it == weights.end() ? nullptr : &it->second;
}

}  // namespace

ClipTextConfig ClipTextConfig::clip_l() { return ClipTextConfig{}; }

ClipTextConfig ClipTextConfig::open_clip_h() {
  ClipTextConfig c;
  c.hidden_size = 1024;
  c.num_layers = 24;
  c.num_heads = 16;
  c.intermediate_size = 4096;
  c.activation = ClipActivation::kGelu;
  c.projection_dim = 1024;
  return c;
}

ClipTextConfig ClipTextConfig::open_clip_bigg() {
  ClipTextConfig c;
  c.hidden_size = 1280;
  c.num_layers = 32;
  c.num_heads = 20;
  c.intermediate_size = 5120;
  c.activation = ClipActivation::kGelu;
  c.projection_dim = 1280;
  return c;
}

ClipTextConfig ClipTextConfig::tiny() {
  ClipTextConfig c;
  c.vocab_size = 64;
  c.hidden_size = 16;
  c.num_layers = 3;
  c.num_heads = 2;
  c.intermediate_size = 32;
  c.projection_dim = 8;
  c.eos_token_id = 63;
  return c;
}

Result<ClipTextConfig> detect_clip_text_config(const runtime::WeightMap& weights, std::string_view prefix) {
  const std::string p(prefix);
  const std::string token_key = p + "text_model.embeddings.token_embedding.weight";
  const std::string position_key = p + "text_model.embeddings.position_embedding.weight";
  const at::Tensor* token = find(weights, token_key);
  const at::Tensor* position = find(weights, position_key);
  if (token == nullptr) return Status::not_found("CLIP text encoder: no tensor '" + token_key + "'");
  if (position == nullptr) return Status::not_found("CLIP text encoder: no tensor '" + position_key + "'");
  if (token->dim() != 2 || position->dim() != 2 || position->size(1) != token->size(1)) {
    return Status::invalid_argument("CLIP text encoder under '" + p + "': embeddings have inconsistent shapes");
  }
  ClipTextConfig c;
  c.vocab_size = static_cast<int>(token->size(0));
  c.hidden_size = static_cast<int>(token->size(1));
  c.max_positions = static_cast<int>(position->size(0));
  if (c.hidden_size % 64 != 0) {
    return Status::unsupported("CLIP text encoder under '" + p + "': hidden size " + std::to_string(c.hidden_size) +
                               " is not a multiple of the head size 64");
  }
  c.num_heads = c.hidden_size / 64;
  const std::string layers_prefix = p + "text_model.encoder.layers.";
  int layers = 0;
  for (const auto& [key, tensor] : weights) {
    if (!clip_starts_with(key, layers_prefix)) continue;
    std::string_view rest = std::string_view(key).substr(layers_prefix.size());
    size_t dot = rest.find('.');
    if (dot == std::string_view::npos || dot == 0) continue;
    int index = 0;
    for (char ch : rest.substr(0, dot)) {
      if (ch < '0' || ch > '9') return Status::invalid_argument("CLIP text encoder: bad layer index in '" + key + "'");
      index = index * 10 + (ch - '0');
    }
    layers = std::max(layers, index + 1);
  }
  if (layers == 0) return Status::not_found("CLIP text encoder under '" + p + "': no encoder layers");
  c.num_layers = layers;
  const std::string fc1_key = layers_prefix + "0.mlp.fc1.weight";
  const at::Tensor* fc1 = find(weights, fc1_key);
  if (fc1 == nullptr) return Status::not_found("CLIP text encoder: no tensor '" + fc1_key + "'");
  c.intermediate_size = static_cast<int>(fc1->size(0));
  c.activation = c.hidden_size == 768 ? ClipActivation::kQuickGelu : ClipActivation::kGelu;
  const at::Tensor* projection = find(weights, p + "text_projection.weight");
  c.projection_dim = projection ? static_cast<int>(projection->size(0)) : 0;
  return c;
}

ClipAttentionImpl::ClipAttentionImpl(const ClipTextConfig& config) : num_heads_(config.num_heads) {
  const int d = config.hidden_size;
  q_proj = register_module("q_proj", torch::nn::Linear(d, d));
  k_proj = register_module("k_proj", torch::nn::Linear(d, d));
  v_proj = register_module("v_proj", torch::nn::Linear(d, d));
  out_proj = register_module("out_proj", torch::nn::Linear(d, d));
}

at::Tensor ClipAttentionImpl::forward(const at::Tensor& x) {
  const int64_t b = x.size(0), l = x.size(1), d = x.size(2);
  const int64_t dh = d / num_heads_;
  auto heads = [&](const at::Tensor& t) { return t.view({b, l, num_heads_, dh}).transpose(1, 2); };
  at::Tensor q = heads(linear_f32(x, q_proj));
  at::Tensor k = heads(linear_f32(x, k_proj));
  at::Tensor v = heads(linear_f32(x, v_proj));
  at::Tensor out = runtime::attention(q, k, v, /*causal=*/true);
  return linear_f32(out.transpose(1, 2).reshape({b, l, d}), out_proj);
}

ClipMlpImpl::ClipMlpImpl(const ClipTextConfig& config) : activation_(config.activation) {
  fc1 = register_module("fc1", torch::nn::Linear(config.hidden_size, config.intermediate_size));
  fc2 = register_module("fc2", torch::nn::Linear(config.intermediate_size, config.hidden_size));
}

at::Tensor ClipMlpImpl::forward(const at::Tensor& x) {
  at::Tensor h = linear_f32(x, fc1);
  h = activation_ == ClipActivation::kQuickGelu ? h * at::sigmoid(h * 1.702) : at::gelu(h);
  return linear_f32(h, fc2);
}

ClipLayerImpl::ClipLayerImpl(const ClipTextConfig& config) {
  layer_norm1 = register_module("layer_norm1", make_layer_norm(config));
  self_attn = register_module("self_attn", ClipAttention(config));
  layer_norm2 = register_module("layer_norm2", make_layer_norm(config));
  mlp = register_module("mlp", ClipMlp(config));
}

at::Tensor ClipLayerImpl::forward(const at::Tensor& x) {
  at::Tensor h = x + self_attn->forward(layer_norm_f32(x, layer_norm1));
  return h + mlp->forward(layer_norm_f32(h, layer_norm2));
}

ClipTextModelImpl::ClipTextModelImpl(ClipTextConfig config) : config_(config) {
  auto text_model = register_module("text_model", std::make_shared<torch::nn::Module>());
  auto embeddings = text_model->register_module("embeddings", std::make_shared<torch::nn::Module>());
  token_embedding_ = embeddings->register_module(
      "token_embedding", torch::nn::Embedding(config.vocab_size, config.hidden_size));
  position_embedding_ = embeddings->register_module(
      "position_embedding", torch::nn::Embedding(config.max_positions, config.hidden_size));
  auto encoder = text_model->register_module("encoder", std::make_shared<torch::nn::Module>());
  layers_ = encoder->register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < config.num_layers; ++i) layers_->push_back(ClipLayer(config));
  final_layer_norm_ = text_model->register_module("final_layer_norm", make_layer_norm(config));
  if (config.projection_dim > 0) {
    text_projection_ = register_module(
        "text_projection",
        torch::nn::Linear(torch::nn::LinearOptions(config.hidden_size, config.projection_dim).bias(false)));
  }
}

ClipTextOutput ClipTextModelImpl::forward(const at::Tensor& ids, int layer_idx, bool final_layer_norm_on_hidden,
                                          bool project_pooled, const at::Tensor& embed_mask,
                                          const at::Tensor& embed_values) {
  ND_ASSERT(ids.dim() == 2 && ids.scalar_type() == at::kLong, "CLIP ids must be [B, L] int64");
  ND_ASSERT(ids.size(1) <= config_.max_positions, "CLIP sequence longer than max_positions");
  ND_ASSERT(layer_idx >= -config_.num_layers && layer_idx < config_.num_layers, "CLIP layer_idx out of range");
  torch::NoGradGuard no_grad;
  const int64_t length = ids.size(1);
  const int target = layer_idx < 0 ? config_.num_layers + layer_idx : layer_idx;

  at::Tensor tokens = at::embedding(as_f32(token_embedding_->weight), ids);
  if (embed_mask.defined()) {
    const at::Tensor values = embed_values.to(token_embedding_->weight.scalar_type()).to(at::kFloat);
    tokens = at::where(embed_mask.unsqueeze(-1), values, tokens);
  }
  at::Tensor x = tokens + as_f32(position_embedding_->weight).slice(0, 0, length);
  at::Tensor intermediate;
  for (int i = 0; i < config_.num_layers; ++i) {
    x = layers_[i]->as<ClipLayerImpl>()->forward(x);
    if (i == target) intermediate = x;
  }
  at::Tensor last = layer_norm_f32(x, final_layer_norm_);
  ClipTextOutput out;
  out.hidden = final_layer_norm_on_hidden ? layer_norm_f32(intermediate, final_layer_norm_) : intermediate;
  at::Tensor eos_index = ids.eq(config_.eos_token_id).to(at::kLong).argmax(-1);
  at::Tensor rows = at::arange(ids.size(0), ids.options());
  out.pooled = last.index({rows, eos_index});
  if (project_pooled && text_projection_) out.pooled = linear_f32(out.pooled, text_projection_);
  return out;
}

Status load_clip_text_weights(ClipTextModelImpl& model, const runtime::WeightMap& weights, std::string_view prefix,
                              std::string_view what) {
  runtime::LoadOptions options;
  options.ignore_unexpected = {"text_model.embeddings.position_ids", "logit_scale"};
  if (model.config().projection_dim == 0) options.ignore_unexpected.push_back("text_projection");
  return runtime::load_module_weights(model, weights, prefix, what, options);
}

}  // namespace netdist::text
