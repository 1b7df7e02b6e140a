#include "engine/text/t5_encoder.h"

#include <cmath>
#include <limits>
#include <string>

#include <torch/torch.h>

#include "engine/runtime/tensor_io.h"
#include "io/safetensors.h"

namespace netdist::text {
namespace {

torch::nn::Linear t5_linear(int64_t in, int64_t out) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
}

at::Tensor t5_linear_apply(const at::Tensor& x, const torch::nn::Linear& layer) {
  return at::linear(x, layer->weight.to(x.scalar_type()));
}

at::Tensor t5_norm(const at::Tensor& x, const T5LayerNormImpl& norm, double eps) {
  at::Tensor variance = x.pow(2).mean(-1, /*keepdim=*/true);
  return norm.weight.to(x.scalar_type()) * (x * at::rsqrt(variance + eps));
}

const at::Tensor* t5_find(const runtime::WeightMap& weights, const std::string& key) {
  auto it = weights.find(key);
  return it == weights.end() ? nullptr : &it->second;
}

Result<at::IntArrayRef> t5_shape(const runtime::WeightMap& weights, std::string_view prefix,
                                 const std::string& name, size_t dims, std::string_view what) {
  const std::string key = std::string(prefix) + name;
  const at::Tensor* t = t5_find(weights, key);
  if (t == nullptr) return Status::not_found(std::string(what) + ": T5 tensor " + key + " is missing");
  if (static_cast<size_t>(t->dim()) != dims) {
    return Status::invalid_argument(std::string(what) + ": T5 tensor " + key + " has " +
                                    std::to_string(t->dim()) + " dimensions, expected " +
                                    std::to_string(dims));
  }
  return t->sizes();
}

}  // namespace

Result<T5Config> detect_t5_config(const runtime::WeightMap& weights, std::string_view prefix,
                                  std::string_view what) {
  const std::string p(prefix);
  if (t5_find(weights, p + "scaled_fp8") != nullptr) {
    return Status::unsupported(std::string(what) + ": " + p +
                               "scaled_fp8: scaled fp8 T5 weights are not supported yet (issue #19 item 4)");
  }
  const std::string attn0 = "encoder.block.0.layer.0.SelfAttention.";
  const std::string ff0 = "encoder.block.0.layer.1.DenseReluDense.";
  if (t5_find(weights, p + ff0 + "wi.weight") != nullptr) {
    return Status::unsupported(std::string(what) + ": " + p + ff0 +
                               "wi.weight: a non-gated (T5 v1.0) feed-forward is not supported");
  }
  T5Config config;
  ND_ASSIGN_OR_RETURN(at::IntArrayRef shared, t5_shape(weights, prefix, "shared.weight", 2, what));
  ND_ASSIGN_OR_RETURN(at::IntArrayRef q, t5_shape(weights, prefix, attn0 + "q.weight", 2, what));
  ND_ASSIGN_OR_RETURN(at::IntArrayRef bias,
                      t5_shape(weights, prefix, attn0 + "relative_attention_bias.weight", 2, what));
  ND_ASSIGN_OR_RETURN(at::IntArrayRef wi0, t5_shape(weights, prefix, ff0 + "wi_0.weight", 2, what));
  config.vocab_size = static_cast<int>(shared[0]);
  config.d_model = static_cast<int>(shared[1]);
  config.num_buckets = static_cast<int>(bias[0]);
  config.num_heads = static_cast<int>(bias[1]);
  config.d_ff = static_cast<int>(wi0[0]);
  if (config.num_heads <= 0 || q[0] % config.num_heads != 0 || q[1] != config.d_model) {
    return Status::invalid_argument(std::string(what) + ": T5 tensor " + p + attn0 + "q.weight shape [" +
                                    std::to_string(q[0]) + ", " + std::to_string(q[1]) + "] does not fit " +
                                    std::to_string(config.num_heads) + " heads of d_model " +
                                    std::to_string(config.d_model));
  }
  config.d_kv = static_cast<int>(q[0] / config.num_heads);
  config.num_layers = 0;
  while (t5_find(weights, p + "encoder.block." + std::to_string(config.num_layers) +
                              ".layer.0.SelfAttention.q.weight")) {
    ++config.num_layers;
  }
  config.bias_in_every_block =
      config.num_layers > 1 &&
      t5_find(weights, p + "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight") != nullptr;
  return config;
}

at::Tensor t5_relative_position_bucket(const at::Tensor& relative_position, bool bidirectional,
                                       int num_buckets, int max_distance) {
  at::Tensor buckets = at::zeros_like(relative_position);
  at::Tensor position = relative_position;
  if (bidirectional) {
    num_buckets /= 2;
    buckets = buckets + (position > 0).to(at::kLong) * num_buckets;
    position = at::abs(position);
  } else {
    position = -at::min(position, at::zeros_like(position));
  }
  const int max_exact = num_buckets / 2;
  at::Tensor is_small = position < max_exact;
  at::Tensor if_large =
      max_exact + (at::log(position.to(at::kFloat) / max_exact) /
                   std::log(static_cast<double>(max_distance) / max_exact) * (num_buckets - max_exact))
                      .to(at::kLong);
  if_large = at::min(if_large, at::full_like(if_large, num_buckets - 1));
  return buckets + at::where(is_small, position, if_large);
}

at::Tensor t5_attention_mask(const at::Tensor& ids, int64_t end_id) {
  at::Tensor cpu = ids.to(at::kCPU, at::kLong).contiguous();
  at::Tensor mask = at::zeros_like(cpu);
  auto in = cpu.accessor<int64_t, 2>();
  auto out = mask.accessor<int64_t, 2>();
  for (int64_t b = 0; b < cpu.size(0); ++b) {
    for (int64_t i = 0; i < cpu.size(1); ++i) {
      out[b][i] = 1;
      if (in[b][i] == end_id) break;
    }
  }
  return mask.to(ids.device());
}

T5LayerNormImpl::T5LayerNormImpl(int64_t size) { weight = register_parameter("weight", torch::ones({size})); }

T5AttentionImpl::T5AttentionImpl(const T5Config& c, bool has_relative_bias) {
  const int64_t inner = static_cast<int64_t>(c.num_heads) * c.d_kv;
  q = register_module("q", t5_linear(c.d_model, inner));
  k = register_module("k", t5_linear(c.d_model, inner));
  v = register_module("v", t5_linear(c.d_model, inner));
  o = register_module("o", t5_linear(inner, c.d_model));
  if (has_relative_bias) {
    relative_attention_bias =
        register_module("relative_attention_bias", torch::nn::Embedding(c.num_buckets, c.num_heads));
  }
}

T5LayerSelfAttentionImpl::T5LayerSelfAttentionImpl(const T5Config& c, bool has_relative_bias) {
  SelfAttention = register_module("SelfAttention", T5Attention(c, has_relative_bias));
  layer_norm = register_module("layer_norm", T5LayerNorm(c.d_model));
}

T5DenseGatedActDenseImpl::T5DenseGatedActDenseImpl(const T5Config& c) {
  wi_0 = register_module("wi_0", t5_linear(c.d_model, c.d_ff));
  wi_1 = register_module("wi_1", t5_linear(c.d_model, c.d_ff));
  wo = register_module("wo", t5_linear(c.d_ff, c.d_model));
}

T5LayerFFImpl::T5LayerFFImpl(const T5Config& c) {
  DenseReluDense = register_module("DenseReluDense", T5DenseGatedActDense(c));
  layer_norm = register_module("layer_norm", T5LayerNorm(c.d_model));
}

T5BlockImpl::T5BlockImpl(const T5Config& c, bool has_relative_bias) {
  attention = T5LayerSelfAttention(c, has_relative_bias);
  ff = T5LayerFF(c);
  layer = register_module("layer", torch::nn::ModuleList(attention, ff));
}

T5StackImpl::T5StackImpl(const T5Config& c) {
  block = register_module("block", torch::nn::ModuleList());
  for (int i = 0; i < c.num_layers; ++i) block->push_back(T5Block(c, i == 0 || c.bias_in_every_block));
  final_layer_norm = register_module("final_layer_norm", T5LayerNorm(c.d_model));
}

T5EncoderModelImpl::T5EncoderModelImpl(T5Config config) : config_(config) {
  shared = register_module("shared", torch::nn::Embedding(config_.vocab_size, config_.d_model));
  encoder = register_module("encoder", T5Stack(config_));
}

at::Tensor T5EncoderModelImpl::attention(T5AttentionImpl& attn, const at::Tensor& x,
                                         at::Tensor& position_bias, const at::Tensor& mask) {
  const int64_t batch = x.size(0), length = x.size(1), heads = config_.num_heads, d_kv = config_.d_kv;
  auto split = [&](const at::Tensor& t) { return t.view({batch, length, heads, d_kv}).transpose(1, 2); };
  at::Tensor q = split(t5_linear_apply(x, attn.q));
  at::Tensor k = split(t5_linear_apply(x, attn.k));
  at::Tensor v = split(t5_linear_apply(x, attn.v));
  if (attn.relative_attention_bias) {
    at::Tensor context = at::arange(length, x.options().dtype(at::kLong)).unsqueeze(1);
    at::Tensor memory = at::arange(length, x.options().dtype(at::kLong)).unsqueeze(0);
    at::Tensor buckets =
        t5_relative_position_bucket(memory - context, true, config_.num_buckets, config_.max_distance);
    at::Tensor values = at::embedding(attn.relative_attention_bias->weight, buckets).to(x.scalar_type());
    position_bias = values.permute({2, 0, 1}).unsqueeze(0);  // [1, heads, L, L]
  }
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2));  // T5: no 1/sqrt(d_kv)
  if (position_bias.defined()) scores = scores + position_bias;
  if (mask.defined()) scores = scores + mask;
  at::Tensor out =
      at::matmul(at::softmax(scores, -1), v).transpose(1, 2).reshape({batch, length, heads * d_kv});
  return t5_linear_apply(out, attn.o);
}

at::Tensor T5EncoderModelImpl::forward(const at::Tensor& ids, const at::Tensor& attention_mask) {
  at::Tensor x = at::embedding(shared->weight, ids).to(compute_dtype_);
  if (nan_to_num_embeddings_) x = at::nan_to_num(x);
  at::Tensor mask;
  if (attention_mask.defined()) {
    const int64_t batch = attention_mask.size(0), length = attention_mask.size(-1);
    mask =
        1.0 -
        attention_mask.to(x.scalar_type()).reshape({batch, 1, 1, length}).expand({batch, 1, length, length});
    mask = mask.masked_fill(mask.to(at::kBool), -std::numeric_limits<double>::infinity());
  }
  at::Tensor position_bias;
  for (const auto& module : *encoder->block) {
    auto& block = *module->as<T5BlockImpl>();
    T5LayerSelfAttentionImpl& sa = *block.attention;
    x = x + attention(*sa.SelfAttention, t5_norm(x, *sa.layer_norm, config_.eps), position_bias, mask);
    T5LayerFFImpl& ff = *block.ff;
    at::Tensor h = t5_norm(x, *ff.layer_norm, config_.eps);
    at::Tensor gated = at::gelu(t5_linear_apply(h, ff.DenseReluDense->wi_0), "tanh") *
                       t5_linear_apply(h, ff.DenseReluDense->wi_1);
    x = x + t5_linear_apply(gated, ff.DenseReluDense->wo);
  }
  return t5_norm(x, *encoder->final_layer_norm, config_.eps);
}

Status load_t5_encoder_weights(T5EncoderModelImpl& model, const runtime::WeightMap& weights,
                               std::string_view prefix, std::string_view what) {
  runtime::LoadOptions options;
  options.ignore_unexpected = {"decoder.", "lm_head.", "encoder.embed_tokens."};
  return runtime::load_module_weights(model, weights, prefix, what, options);
}

Result<T5EncoderModel> load_t5_encoder(const std::string& path, std::string_view prefix,
                                       const at::Device& device) {
  ND_ASSIGN_OR_RETURN(std::shared_ptr<io::SafetensorsFile> file, io::SafetensorsFile::open(path));
  bool fp8 = false;
  const std::string p(prefix);
  for (const io::TensorInfo& info : file->tensors()) {
    if (info.name.starts_with(p) && (info.dtype == io::Dtype::kF8E4M3 || info.dtype == io::Dtype::kF8E5M2))
      fp8 = true;
  }
  ND_ASSIGN_OR_RETURN(runtime::WeightMap weights, runtime::weights_from_file(file));
  ND_ASSIGN_OR_RETURN(T5Config config, detect_t5_config(weights, prefix, path));
  T5EncoderModel model(config);
  const at::Tensor& stored = weights.at(p + "shared.weight");
  model->to(stored.scalar_type());
  ND_RETURN_IF_ERROR(load_t5_encoder_weights(*model, weights, prefix, path));
  model->to(device);
  model->set_nan_to_num_embeddings(fp8);
  model->eval();
  return model;
}

}  // namespace netdist::text
