#include "engine/unet/unet.h"

#include <string>

#include "core/status.h"

namespace netdist::unet {

void EmbedSequentialImpl::add(layers::Conv2d conv) {
  Layer l;
  l.conv = register_module(next_name(), std::move(conv));
  layers_.push_back(std::move(l));
}

void EmbedSequentialImpl::add(ResBlock block) {
  Layer l;
  l.res = register_module(next_name(), std::move(block));
  layers_.push_back(std::move(l));
}

void EmbedSequentialImpl::add(SpatialTransformer block) {
  Layer l;
  l.transformer = register_module(next_name(), std::move(block));
  layers_.push_back(std::move(l));
}

void EmbedSequentialImpl::add(Downsample block) {
  Layer l;
  l.down = register_module(next_name(), std::move(block));
  layers_.push_back(std::move(l));
}

void EmbedSequentialImpl::add(Upsample block) {
  Layer l;
  l.up = register_module(next_name(), std::move(block));
  layers_.push_back(std::move(l));
}

at::Tensor EmbedSequentialImpl::forward(const at::Tensor& x_in, const at::Tensor& emb, const at::Tensor& context,
                                        std::optional<std::pair<int64_t, int64_t>> upsample_size) {
  at::Tensor x = x_in;
  for (Layer& l : layers_) {
    if (l.conv) {
      x = l.conv(x);
    } else if (l.res) {
      x = l.res(x, emb);
    } else if (l.transformer) {
      x = l.transformer(x, context);
    } else if (l.down) {
      x = l.down(x);
    } else {
      x = l.up(x, upsample_size);
    }
  }
  return x;
}

void UNetModelImpl::build_embeddings(int64_t time_dim, const at::TensorOptions& options) {
  const int64_t mc = config_.model_channels;
  auto time_embed = layers::add_container(*this, "time_embed");
  time_embed_0_ = time_embed->register_module("0", layers::Linear(mc, time_dim, true, options));
  time_embed_2_ = time_embed->register_module("2", layers::Linear(time_dim, time_dim, true, options));
  if (config_.adm_in_channels > 0) {
    auto label_emb = layers::add_container(*layers::add_container(*this, "label_emb"), "0");
    label_emb_0_ =
        label_emb->register_module("0", layers::Linear(config_.adm_in_channels, time_dim, true, options));
    label_emb_2_ = label_emb->register_module("2", layers::Linear(time_dim, time_dim, true, options));
  }
}

UNetModelImpl::UNetModelImpl(const UNetConfig& config, const at::TensorOptions& options) : config_(config) {
  const Status valid = config.validate();
  ND_ASSERT(valid.is_ok(), valid.to_string());
  const UNetConfig& c = config_;
  const int64_t mc = c.model_channels;
  const int64_t time_dim = mc * 4;

  build_embeddings(time_dim, options);

  auto transformer = [&](int64_t ch, int64_t depth) {
    return SpatialTransformer(ch, c.heads_for(ch), c.head_dim_for(ch), depth, c.context_dim,
                              c.use_linear_in_transformer, options);
  };

  auto input_list = layers::add_container(*this, "input_blocks");
  auto add_input = [&](EmbedSequential block) {
    input_blocks_.push_back(input_list->register_module(std::to_string(input_blocks_.size()), block));
  };
  EmbedSequential first;
  first->add(layers::Conv2d(c.in_channels, mc, 3, 1, 1, options));
  add_input(first);
  std::vector<int64_t> skip_channels = {mc};
  int64_t ch = mc;
  size_t depth_index = 0;
  const size_t levels = c.channel_mult.size();
  for (size_t level = 0; level < levels; ++level) {
    for (int64_t r = 0; r < c.num_res_blocks[level]; ++r) {
      EmbedSequential block;
      const int64_t out_ch = c.channel_mult[level] * mc;
      block->add(ResBlock(ch, time_dim, out_ch, options));
      ch = out_ch;
      const int64_t depth = c.transformer_depth[depth_index++];
      if (depth > 0) block->add(transformer(ch, depth));
      add_input(block);
      skip_channels.push_back(ch);
    }
    if (level + 1 != levels) {
      EmbedSequential block;
      block->add(Downsample(ch, options));
      add_input(block);
      skip_channels.push_back(ch);
    }
  }

  if (c.transformer_depth_middle >= -1) {
    middle_block_ = register_module("middle_block", EmbedSequential());
    middle_block_->add(ResBlock(ch, time_dim, ch, options));
    if (c.transformer_depth_middle >= 0) {
      middle_block_->add(transformer(ch, c.transformer_depth_middle));
      middle_block_->add(ResBlock(ch, time_dim, ch, options));
    }
  }

  auto output_list = layers::add_container(*this, "output_blocks");
  std::vector<int64_t> depth_output = c.transformer_depth_output;
  for (size_t level = levels; level-- > 0;) {
    for (int64_t i = 0; i <= c.num_res_blocks[level]; ++i) {
      EmbedSequential block;
      const int64_t skip_ch = skip_channels.back();
      skip_channels.pop_back();
      const int64_t out_ch = c.channel_mult[level] * mc;
      block->add(ResBlock(ch + skip_ch, time_dim, out_ch, options));
      ch = out_ch;
      const int64_t depth = depth_output.back();
      depth_output.pop_back();
      if (depth > 0) block->add(transformer(ch, depth));
      if (level > 0 && i == c.num_res_blocks[level]) block->add(Upsample(ch, options));
      output_blocks_.push_back(output_list->register_module(std::to_string(output_blocks_.size()), block));
    }
  }

  auto out = layers::add_container(*this, "out");
  out_norm_ = out->register_module("0", layers::GroupNorm(32, ch, 1e-5, options));
  out_conv_ = out->register_module("2", layers::Conv2d(mc, c.out_channels, 3, 1, 1, options));
}

namespace {

// openaimodel apply_control: the next residual of `list` (from its back), added to h.
at::Tensor unet_apply_control(at::Tensor h, const UNetControl* control, const std::vector<at::Tensor> UNetControl::*list,
                              size_t& used) {
  if (control == nullptr) return h;
  const std::vector<at::Tensor>& v = control->*list;
  if (used >= v.size()) return h;
  const at::Tensor& ctrl = v[v.size() - 1 - used++];
  if (ctrl.defined()) h = h + ctrl;
  return h;
}

}  // namespace

at::Tensor UNetModelImpl::forward(const at::Tensor& x, const at::Tensor& timesteps, const at::Tensor& context,
                                  const at::Tensor& y, const UNetControl* control) {
  ND_ASSERT(x.dim() == 4 && x.size(1) == config_.in_channels, "UNet input must be [B, in_channels, h, w]");
  ND_ASSERT(timesteps.dim() == 1 && timesteps.size(0) == x.size(0), "UNet timesteps must be [B]");
  ND_ASSERT(y.defined() == (config_.adm_in_channels > 0), "UNet y must be given iff the model has adm input");
  at::Tensor t_emb = timestep_embedding(timesteps, config_.model_channels).to(x.scalar_type());
  at::Tensor emb = time_embed_2_(at::silu(time_embed_0_(t_emb)));
  if (y.defined()) {
    ND_ASSERT(y.dim() == 2 && y.size(0) == x.size(0) && y.size(1) == config_.adm_in_channels,
              "UNet y must be [B, adm_in_channels]");
    emb = emb + label_emb_2_(at::silu(label_emb_0_(y)));
  }

  size_t used_input = 0, used_middle = 0, used_output = 0;
  std::vector<at::Tensor> skips;
  skips.reserve(input_blocks_.size());
  at::Tensor h = x;
  for (auto& block : input_blocks_) {
    h = block(h, emb, context, std::nullopt);
    h = unet_apply_control(h, control, &UNetControl::input, used_input);
    skips.push_back(h);
  }
  if (middle_block_) h = middle_block_(h, emb, context, std::nullopt);
  h = unet_apply_control(h, control, &UNetControl::middle, used_middle);
  for (auto& block : output_blocks_) {
    at::Tensor hsp = unet_apply_control(skips.back(), control, &UNetControl::output, used_output);
    skips.pop_back();
    if (output_block_patch) output_block_patch(h, hsp);
    h = at::cat({h, hsp}, 1);
    std::optional<std::pair<int64_t, int64_t>> size;
    if (!skips.empty()) size = std::pair<int64_t, int64_t>{skips.back().size(2), skips.back().size(3)};
    h = block(h, emb, context, size);
  }
  h = h.to(x.scalar_type());
  return out_conv_(at::silu(out_norm_(h)));
}

}  // namespace netdist::unet
