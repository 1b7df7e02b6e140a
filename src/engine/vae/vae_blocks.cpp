#include "engine/vae/vae_blocks.h"

#include <string>

#include "engine/runtime/torch_compat.h"
#include "engine/vae/vae.h"

namespace netdist::vae {

namespace {

constexpr int64_t kVaeGroups = 32;
constexpr double kNormEps = 1e-6;

layers::GroupNorm group_norm(int64_t channels, const at::TensorOptions& options) {
  return layers::GroupNorm(kVaeGroups, channels, kNormEps, options);
}

// comfy nonlinearity(): x·sigmoid(x), written out as ComfyUI does at the encoder/decoder ends.
at::Tensor swish(const at::Tensor& x) { return x * at::sigmoid(x); }

}  // namespace

ResnetBlockImpl::ResnetBlockImpl(int64_t in_channels, int64_t out_channels, const at::TensorOptions& options) {
  norm1_ = register_module("norm1", group_norm(in_channels, options));
  conv1_ = register_module("conv1", layers::Conv2d(in_channels, out_channels, 3, 1, 1, options));
  norm2_ = register_module("norm2", group_norm(out_channels, options));
  conv2_ = register_module("conv2", layers::Conv2d(out_channels, out_channels, 3, 1, 1, options));
  if (in_channels != out_channels) {
    nin_shortcut_ = register_module("nin_shortcut", layers::Conv2d(in_channels, out_channels, 1, 1, 0, options));
  }
}

at::Tensor ResnetBlockImpl::forward(const at::Tensor& x) {
  at::Tensor h = conv1_(at::silu(norm1_(x)));
  h = conv2_(at::silu(norm2_(h)));
  return (nin_shortcut_ ? nin_shortcut_(x) : x) + h;
}

AttnBlockImpl::AttnBlockImpl(int64_t channels, const at::TensorOptions& options) {
  norm_ = register_module("norm", group_norm(channels, options));
  q_ = register_module("q", layers::Conv2d(channels, channels, 1, 1, 0, options));
  k_ = register_module("k", layers::Conv2d(channels, channels, 1, 1, 0, options));
  v_ = register_module("v", layers::Conv2d(channels, channels, 1, 1, 0, options));
  proj_out_ = register_module("proj_out", layers::Conv2d(channels, channels, 1, 1, 0, options));
}

at::Tensor AttnBlockImpl::forward(const at::Tensor& x) {
  const int64_t b = x.size(0);
  const int64_t c = x.size(1);
  at::Tensor h = norm_(x);
  auto tokens = [](const at::Tensor& t) { return t.flatten(2).transpose(1, 2).unsqueeze(1); };  // [B,1,HW,C]
  at::Tensor out = runtime::attention(tokens(q_(h)), tokens(k_(h)), tokens(v_(h)), /*causal=*/false);
  out = out.squeeze(1).transpose(1, 2).reshape({b, c, x.size(2), x.size(3)});
  return x + proj_out_(out);
}

EncoderImpl::EncoderImpl(const VaeConfig& c, const at::TensorOptions& options) {
  conv_in_ = register_module("conv_in", layers::Conv2d(c.in_channels, c.ch, 3, 1, 1, options));
  auto down = layers::add_container(*this, "down");
  int64_t block_in = c.ch;
  const size_t levels = c.ch_mult.size();
  for (size_t level = 0; level < levels; ++level) {
    auto down_level = layers::add_container(*down, std::to_string(level));
    auto block = layers::add_container(*down_level, "block");
    const int64_t block_out = c.ch * c.ch_mult[level];
    blocks_.emplace_back();
    for (int64_t i = 0; i < c.num_res_blocks; ++i) {
      blocks_.back().push_back(
          block->register_module(std::to_string(i), ResnetBlock(block_in, block_out, options)));
      block_in = block_out;
    }
    if (level + 1 != levels) {
      auto downsample = layers::add_container(*down_level, "downsample");
      downsample_.push_back(
          downsample->register_module("conv", layers::Conv2d(block_in, block_in, 3, 2, 0, options)));
    }
  }
  auto mid = layers::add_container(*this, "mid");
  mid_block_1_ = mid->register_module("block_1", ResnetBlock(block_in, block_in, options));
  mid_attn_1_ = mid->register_module("attn_1", AttnBlock(block_in, options));
  mid_block_2_ = mid->register_module("block_2", ResnetBlock(block_in, block_in, options));
  norm_out_ = register_module("norm_out", group_norm(block_in, options));
  const int64_t out_channels = c.double_z ? 2 * c.z_channels : c.z_channels;
  conv_out_ = register_module("conv_out", layers::Conv2d(block_in, out_channels, 3, 1, 1, options));
}

at::Tensor EncoderImpl::forward(const at::Tensor& x) {
  at::Tensor h = conv_in_(x);
  for (size_t level = 0; level < blocks_.size(); ++level) {
    for (auto& block : blocks_[level]) h = block(h);
    if (level < downsample_.size()) h = downsample_[level](at::constant_pad_nd(h, {0, 1, 0, 1}, 0));
  }
  h = mid_block_2_(mid_attn_1_(mid_block_1_(h)));
  return conv_out_(swish(norm_out_(h)));
}

DecoderImpl::DecoderImpl(const VaeConfig& c, const at::TensorOptions& options) {
  const size_t levels = c.ch_mult.size();
  const int64_t bottom = c.ch * c.ch_mult.back();
  conv_in_ = register_module("conv_in", layers::Conv2d(c.z_channels, bottom, 3, 1, 1, options));
  auto mid = layers::add_container(*this, "mid");
  mid_block_1_ = mid->register_module("block_1", ResnetBlock(bottom, bottom, options));
  mid_attn_1_ = mid->register_module("attn_1", AttnBlock(bottom, options));
  mid_block_2_ = mid->register_module("block_2", ResnetBlock(bottom, bottom, options));
  auto up = layers::add_container(*this, "up");
  blocks_.resize(levels);
  upsample_.resize(levels, layers::Conv2d(nullptr));
  for (size_t level = 0; level < levels; ++level) {
    auto up_level = layers::add_container(*up, std::to_string(level));
    auto block = layers::add_container(*up_level, "block");
    const int64_t block_out = c.ch * c.ch_mult[level];
    int64_t block_in = level + 1 < levels ? c.ch * c.ch_mult[level + 1] : bottom;
    for (int64_t i = 0; i <= c.num_res_blocks; ++i) {
      blocks_[level].push_back(
          block->register_module(std::to_string(i), ResnetBlock(block_in, block_out, options)));
      block_in = block_out;
    }
    if (level != 0) {
      auto upsample = layers::add_container(*up_level, "upsample");
      upsample_[level] = upsample->register_module("conv", layers::Conv2d(block_out, block_out, 3, 1, 1, options));
    }
  }
  const int64_t top = c.ch * c.ch_mult.front();
  norm_out_ = register_module("norm_out", group_norm(top, options));
  conv_out_ = register_module("conv_out", layers::Conv2d(top, c.out_channels, 3, 1, 1, options));
}

at::Tensor DecoderImpl::forward(const at::Tensor& z) {
  at::Tensor h = conv_in_(z);
  h = mid_block_2_(mid_attn_1_(mid_block_1_(h)));
  for (size_t level = blocks_.size(); level-- > 0;) {
    for (auto& block : blocks_[level]) h = block(h);
    if (level != 0) {
      h = upsample_[level](at::upsample_nearest2d(h, {h.size(2) * 2, h.size(3) * 2}, c10::nullopt, c10::nullopt));
    }
  }
  return conv_out_(swish(norm_out_(h)));
}

}  // namespace netdist::vae
