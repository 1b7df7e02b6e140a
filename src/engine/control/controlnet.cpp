#include "engine/control/controlnet.h"

#include <cmath>

#include "core/status.h"

namespace netdist::control {

namespace {

// input_hint_block: 8 convs (ComfyUI indices 0, 2, ..., 14; SiLU between), hint → model_channels at 1/8 size.
struct ControlnetHintConv {
  int64_t in, out, stride;
};

std::vector<ControlnetHintConv> controlnet_hint_layout(int64_t hint_channels, int64_t model_channels) {
  return {
      {hint_channels, 16, 1},  {16, 16, 1}, {16, 32, 2}, {32, 32, 1}, {32, 96, 2}, {96, 96, 1}, {96, 256, 2},
      {256, model_channels, 1}};
}

}  // namespace

ControlNetModelImpl::ControlNetModelImpl(const unet::UNetConfig& config, int64_t hint_channels,
                                         const at::TensorOptions& options)
    : config_(config), hint_channels_(hint_channels) {
  const unet::UNetConfig& c = config_;
  const int64_t mc = c.model_channels, time_dim = mc * 4;
  auto time_embed = layers::add_container(*this, "time_embed");
  time_embed_0_ = time_embed->register_module("0", layers::Linear(mc, time_dim, true, options));
  time_embed_2_ = time_embed->register_module("2", layers::Linear(time_dim, time_dim, true, options));
  if (c.adm_in_channels > 0) {
    auto label_emb = layers::add_container(*layers::add_container(*this, "label_emb"), "0");
    label_emb_0_ =
        label_emb->register_module("0", layers::Linear(c.adm_in_channels, time_dim, true, options));
    label_emb_2_ = label_emb->register_module("2", layers::Linear(time_dim, time_dim, true, options));
  }
  auto hint = layers::add_container(*this, "input_hint_block");
  const auto hint_layout = controlnet_hint_layout(hint_channels, mc);
  for (size_t i = 0; i < hint_layout.size(); ++i) {
    const ControlnetHintConv& h = hint_layout[i];
    hint_convs_.push_back(
        hint->register_module(std::to_string(2 * i), layers::Conv2d(h.in, h.out, 3, h.stride, 1, options)));
  }
  auto transformer = [&](int64_t ch, int64_t depth) {
    return unet::SpatialTransformer(ch, c.heads_for(ch), c.head_dim_for(ch), depth, c.context_dim,
                                    c.use_linear_in_transformer, options);
  };
  auto input_list = layers::add_container(*this, "input_blocks");
  auto zero_list = layers::add_container(*this, "zero_convs");
  auto add_input = [&](unet::EmbedSequential block, int64_t ch) {
    input_blocks_.push_back(input_list->register_module(std::to_string(input_blocks_.size()), block));
    auto zc = layers::add_container(*zero_list, std::to_string(zero_convs_.size()));
    zero_convs_.push_back(zc->register_module("0", layers::Conv2d(ch, ch, 1, 1, 0, options)));
    skip_channels_.push_back(ch);
  };
  unet::EmbedSequential first;
  first->add(layers::Conv2d(c.in_channels, mc, 3, 1, 1, options));
  add_input(first, mc);
  int64_t ch = mc;
  size_t depth_index = 0;
  for (size_t level = 0; level < c.channel_mult.size(); ++level) {
    for (int64_t r = 0; r < c.num_res_blocks[level]; ++r) {
      unet::EmbedSequential block;
      const int64_t out_ch = c.channel_mult[level] * mc;
      block->add(unet::ResBlock(ch, time_dim, out_ch, options));
      ch = out_ch;
      const int64_t depth = c.transformer_depth[depth_index++];
      if (depth > 0) block->add(transformer(ch, depth));
      add_input(block, ch);
    }
    if (level + 1 != c.channel_mult.size()) {
      unet::EmbedSequential block;
      block->add(unet::Downsample(ch, options));
      add_input(block, ch);
    }
  }
  middle_block_ = register_module("middle_block", unet::EmbedSequential());
  middle_block_->add(unet::ResBlock(ch, time_dim, ch, options));
  if (c.transformer_depth_middle >= 0) {
    middle_block_->add(transformer(ch, c.transformer_depth_middle));
    middle_block_->add(unet::ResBlock(ch, time_dim, ch, options));
  }
  auto mid_out = layers::add_container(*this, "middle_block_out");
  middle_out_ = mid_out->register_module("0", layers::Conv2d(ch, ch, 1, 1, 0, options));
}

unet::UNetControl ControlNetModelImpl::forward(const at::Tensor& x, const at::Tensor& hint,
                                               const at::Tensor& timesteps, const at::Tensor& context,
                                               const at::Tensor& y) {
  at::Tensor t_emb = unet::timestep_embedding(timesteps, config_.model_channels).to(x.scalar_type());
  at::Tensor emb = time_embed_2_(at::silu(time_embed_0_(t_emb)));
  at::Tensor guided = hint;
  for (size_t i = 0; i < hint_convs_.size(); ++i) {
    guided = hint_convs_[i](guided);
    if (i + 1 < hint_convs_.size()) guided = at::silu(guided);
  }
  if (y.defined() && label_emb_0_) emb = emb + label_emb_2_(at::silu(label_emb_0_(y)));
  unet::UNetControl out;
  at::Tensor h = x;
  for (size_t i = 0; i < input_blocks_.size(); ++i) {
    h = input_blocks_[i](h, emb, context, std::nullopt);
    if (i == 0) h = h + guided;
    out.output.push_back(zero_convs_[i](h));
  }
  h = middle_block_(h, emb, context, std::nullopt);
  out.middle.push_back(middle_out_(h));
  return out;
}

}  // namespace netdist::control
