#include "engine/unet/unet_blocks.h"

#include <cmath>
#include <string>

#include "core/status.h"
#include "engine/runtime/torch_compat.h"

namespace netdist::unet {

namespace {

constexpr int64_t kUnetGroups = 32;
constexpr double kResNormEps = 1e-5;
constexpr double kTransformerNormEps = 1e-6;
constexpr double kLayerNormEps = 1e-5;

}  // namespace

at::Tensor timestep_embedding(const at::Tensor& timesteps, int64_t dim, double max_period) {
  ND_ASSERT(timesteps.dim() == 1, "timestep_embedding expects timesteps [B]");
  const int64_t half = dim / 2;
  at::Tensor freqs = at::exp(-std::log(max_period) *
                             at::arange(0, half, timesteps.options().dtype(at::kFloat)) / static_cast<double>(half));
  at::Tensor args = timesteps.to(at::kFloat).unsqueeze(1) * freqs.unsqueeze(0);
  at::Tensor embedding = at::cat({at::cos(args), at::sin(args)}, -1);
  if (dim % 2) embedding = at::cat({embedding, at::zeros_like(embedding.narrow(1, 0, 1))}, -1);
  return embedding;
}

ResBlockImpl::ResBlockImpl(int64_t channels, int64_t emb_channels, int64_t out_channels,
                           const at::TensorOptions& options) {
  auto in_layers = layers::add_container(*this, "in_layers");
  in_norm_ = in_layers->register_module("0", layers::GroupNorm(kUnetGroups, channels, kResNormEps, options));
  in_conv_ = in_layers->register_module("2", layers::Conv2d(channels, out_channels, 3, 1, 1, options));
  auto emb_layers = layers::add_container(*this, "emb_layers");
  emb_linear_ = emb_layers->register_module("1", layers::Linear(emb_channels, out_channels, true, options));
  auto out_layers = layers::add_container(*this, "out_layers");
  out_norm_ =
      out_layers->register_module("0", layers::GroupNorm(kUnetGroups, out_channels, kResNormEps, options));
  out_conv_ = out_layers->register_module("3", layers::Conv2d(out_channels, out_channels, 3, 1, 1, options));
  if (out_channels != channels) {
    skip_ = register_module("skip_connection", layers::Conv2d(channels, out_channels, 1, 1, 0, options));
  }
}

at::Tensor ResBlockImpl::forward(const at::Tensor& x, const at::Tensor& emb) {
  at::Tensor h = in_conv_(at::silu(in_norm_(x)));
  at::Tensor emb_out = emb_linear_(at::silu(emb)).to(h.scalar_type());
  h = h + emb_out.unsqueeze(-1).unsqueeze(-1);
  h = out_conv_(at::silu(out_norm_(h)));
  return (skip_ ? skip_(x) : x) + h;
}

CrossAttentionImpl::CrossAttentionImpl(int64_t query_dim, int64_t context_dim, int64_t heads, int64_t head_dim,
                                       const at::TensorOptions& options)
    : heads_(heads), head_dim_(head_dim) {
  const int64_t inner = heads * head_dim;
  to_q_ = register_module("to_q", layers::Linear(query_dim, inner, false, options));
  to_k_ = register_module("to_k", layers::Linear(context_dim, inner, false, options));
  to_v_ = register_module("to_v", layers::Linear(context_dim, inner, false, options));
  auto to_out = layers::add_container(*this, "to_out");
  to_out_ = to_out->register_module("0", layers::Linear(inner, query_dim, true, options));
}

at::Tensor CrossAttentionImpl::forward(const at::Tensor& x, const at::Tensor& context) {
  const at::Tensor& source = context.defined() ? context : x;
  const int64_t b = x.size(0);
  auto split = [&](const at::Tensor& t) { return t.reshape({b, -1, heads_, head_dim_}).transpose(1, 2); };
  at::Tensor q = split(to_q_(x));
  at::Tensor k = split(to_k_(source));
  at::Tensor v = split(to_v_(source));
  at::Tensor out = runtime::attention(q, k, v, /*causal=*/false);
  return to_out_(out.transpose(1, 2).reshape({b, -1, heads_ * head_dim_}));
}

FeedForwardImpl::FeedForwardImpl(int64_t dim, const at::TensorOptions& options) {
  const int64_t inner = dim * 4;
  auto net = layers::add_container(*this, "net");
  auto geglu = layers::add_container(*net, "0");
  proj_ = geglu->register_module("proj", layers::Linear(dim, inner * 2, true, options));
  out_ = net->register_module("2", layers::Linear(inner, dim, true, options));
}

at::Tensor FeedForwardImpl::forward(const at::Tensor& x) {
  std::vector<at::Tensor> parts = proj_(x).chunk(2, -1);
  return out_(parts[0] * at::gelu(parts[1]));
}

BasicTransformerBlockImpl::BasicTransformerBlockImpl(int64_t dim, int64_t heads, int64_t head_dim,
                                                     int64_t context_dim, const at::TensorOptions& options) {
  attn1_ = register_module("attn1", CrossAttention(dim, dim, heads, head_dim, options));
  ff_ = register_module("ff", FeedForward(dim, options));
  attn2_ = register_module("attn2", CrossAttention(dim, context_dim, heads, head_dim, options));
  norm2_ = register_module("norm2", layers::LayerNorm(dim, kLayerNormEps, options));
  norm1_ = register_module("norm1", layers::LayerNorm(dim, kLayerNormEps, options));
  norm3_ = register_module("norm3", layers::LayerNorm(dim, kLayerNormEps, options));
}

at::Tensor BasicTransformerBlockImpl::forward(const at::Tensor& x_in, const at::Tensor& context) {
  at::Tensor x = x_in + attn1_(norm1_(x_in), at::Tensor());
  x = x + attn2_(norm2_(x), context);
  return x + ff_(norm3_(x));
}

SpatialTransformerImpl::SpatialTransformerImpl(int64_t channels, int64_t heads, int64_t head_dim, int64_t depth,
                                               int64_t context_dim, bool use_linear,
                                               const at::TensorOptions& options)
    : use_linear_(use_linear) {
  const int64_t inner = heads * head_dim;
  norm_ = register_module("norm", layers::GroupNorm(kUnetGroups, channels, kTransformerNormEps, options));
  if (use_linear) {
    proj_in_linear_ = register_module("proj_in", layers::Linear(channels, inner, true, options));
  } else {
    proj_in_conv_ = register_module("proj_in", layers::Conv2d(channels, inner, 1, 1, 0, options));
  }
  auto blocks = layers::add_container(*this, "transformer_blocks");
  for (int64_t d = 0; d < depth; ++d) {
    blocks_.push_back(blocks->register_module(
        std::to_string(d), BasicTransformerBlock(inner, heads, head_dim, context_dim, options)));
  }
  if (use_linear) {
    proj_out_linear_ = register_module("proj_out", layers::Linear(inner, channels, true, options));
  } else {
    proj_out_conv_ = register_module("proj_out", layers::Conv2d(inner, channels, 1, 1, 0, options));
  }
}

at::Tensor SpatialTransformerImpl::forward(const at::Tensor& x_in, const at::Tensor& context) {
  const int64_t b = x_in.size(0);
  const int64_t h = x_in.size(2);
  const int64_t w = x_in.size(3);
  at::Tensor x = norm_(x_in);
  if (!use_linear_) x = proj_in_conv_(x);
  x = x.movedim(1, 3).flatten(1, 2).contiguous();
  if (use_linear_) x = proj_in_linear_(x);
  for (auto& block : blocks_) x = block(x, context);
  if (use_linear_) x = proj_out_linear_(x);
  x = x.reshape({b, h, w, x.size(-1)}).movedim(3, 1).contiguous(x_in.suggest_memory_format());
  if (!use_linear_) x = proj_out_conv_(x);
  return x + x_in;
}

DownsampleImpl::DownsampleImpl(int64_t channels, const at::TensorOptions& options) {
  op_ = register_module("op", layers::Conv2d(channels, channels, 3, 2, 1, options));
}

at::Tensor DownsampleImpl::forward(const at::Tensor& x) { return op_(x); }

UpsampleImpl::UpsampleImpl(int64_t channels, const at::TensorOptions& options) {
  conv_ = register_module("conv", layers::Conv2d(channels, channels, 3, 1, 1, options));
}

at::Tensor UpsampleImpl::forward(const at::Tensor& x, std::optional<std::pair<int64_t, int64_t>> size) {
  const auto [h, w] = size.value_or(std::pair<int64_t, int64_t>{x.size(2) * 2, x.size(3) * 2});
  return conv_(at::upsample_nearest2d(x, {h, w}, c10::nullopt, c10::nullopt));
}

}  // namespace netdist::unet
