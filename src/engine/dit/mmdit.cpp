#include "engine/dit/mmdit.h"

#include <algorithm>
#include <cmath>

#include <c10/util/Exception.h>

namespace netdist::dit {

namespace {

// mmdit.py modulate(): x · (1 + scale) + shift with [B, C] modulations over [B, L, C].
at::Tensor mmdit_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale) {
  return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);
}

const at::Tensor* mmdit_find(const runtime::WeightMap& weights, std::string_view prefix,
                             const std::string& name) {
  auto it = weights.find(std::string(prefix) + name);
  return it == weights.end() ? nullptr : &it->second;
}

}  // namespace

std::string MMDiTConfig::describe() const {
  std::string s = "MMDiT depth " + std::to_string(depth) + (qk_norm_rms ? ", rms qk-norm" : "");
  if (!x_block_self_attn_layers.empty()) {
    s += ", x_block_self_attn in " + std::to_string(x_block_self_attn_layers.size()) + " blocks";
  }
  return s;
}

Result<MMDiTConfig> detect_mmdit_config(const runtime::WeightMap& weights, std::string_view prefix) {
  const std::string p(prefix);
  if (!mmdit_find(weights, prefix, "joint_blocks.0.context_block.attn.qkv.weight")) {
    return Status::not_found("not an MMDiT: no " + p + "joint_blocks.0.context_block.attn.qkv.weight");
  }
  const at::Tensor* embed = mmdit_find(weights, prefix, "x_embedder.proj.weight");
  const at::Tensor* final_linear = mmdit_find(weights, prefix, "final_layer.linear.weight");
  const at::Tensor* pos = mmdit_find(weights, prefix, "pos_embed");
  const at::Tensor* fc1 = mmdit_find(weights, prefix, "joint_blocks.0.x_block.mlp.fc1.weight");
  if (!embed || embed->dim() != 4 || embed->size(0) % 64 != 0) {
    return Status::unsupported("MMDiT: " + p +
                               "x_embedder.proj.weight is missing or not [64·depth, C, p, p]");
  }
  if (!final_linear || !fc1)
    return Status::unsupported("MMDiT: no " + p + "final_layer.linear.weight or mlp.fc1");
  if (!pos || pos->dim() != 3)
    return Status::unsupported("MMDiT without " + p + "pos_embed is not supported");
  if (mmdit_find(weights, prefix, "context_processor.layers.0.attn.qkv.weight")) {
    return Status::unsupported("MMDiT with a context_processor (" + p +
                               "context_processor.*) is not supported");
  }
  MMDiTConfig c;
  c.in_channels = embed->size(1);
  c.patch_size = embed->size(2);
  c.depth = embed->size(0) / 64;
  c.out_channels = final_linear->size(0) / (c.patch_size * c.patch_size);
  c.mlp_hidden = fc1->size(0);
  if (const at::Tensor* y = mmdit_find(weights, prefix, "y_embedder.mlp.0.weight"))
    c.adm_in_channels = y->size(1);
  if (const at::Tensor* ctx = mmdit_find(weights, prefix, "context_embedder.weight"))
    c.context_in = ctx->size(1);
  const int64_t num_patches = pos->size(1);
  c.pos_embed_max_size = std::llround(std::sqrt(static_cast<double>(num_patches)));
  if (c.pos_embed_max_size * c.pos_embed_max_size != num_patches || pos->size(2) != c.hidden()) {
    return Status::unsupported("MMDiT: " + p + "pos_embed is not [1, n², hidden]");
  }
  c.qk_norm_rms = mmdit_find(weights, prefix, "joint_blocks.0.context_block.attn.ln_q.weight") != nullptr;
  const std::string blocks = p + "joint_blocks.";
  const std::string attn2 = ".x_block.attn2.qkv.weight";
  for (const auto& item : weights) {
    const std::string& k = item.first;
    if (k.size() > blocks.size() + attn2.size() && k.compare(0, blocks.size(), blocks) == 0 &&
        k.compare(k.size() - attn2.size(), attn2.size(), attn2) == 0) {
      const std::string n = k.substr(blocks.size(), k.size() - blocks.size() - attn2.size());
      if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos) continue;
      c.x_block_self_attn_layers.push_back(std::stoll(n));
    }
  }
  std::sort(c.x_block_self_attn_layers.begin(), c.x_block_self_attn_layers.end());
  c.num_blocks = count_blocks(weights, blocks);
  return c;
}

MMDiTAttentionImpl::MMDiTAttentionImpl(int64_t dim, int64_t heads, bool pre_only, bool qk_norm_rms,
                                       const at::TensorOptions& options)
    : heads_(heads) {
  qkv_ = register_module("qkv", layers::Linear(dim, dim * 3, true, options));
  if (!pre_only) proj_ = register_module("proj", layers::Linear(dim, dim, true, options));
  if (qk_norm_rms) {
    ln_q_ = layers::add_container(*this, "ln_q")
                ->register_parameter("weight", at::empty({dim / heads}, options), false);
    ln_k_ = layers::add_container(*this, "ln_k")
                ->register_parameter("weight", at::empty({dim / heads}, options), false);
  }
}

std::vector<at::Tensor> MMDiTAttentionImpl::pre_attention(const at::Tensor& x) {
  const int64_t b = x.size(0);
  const int64_t l = x.size(1);
  at::Tensor qkv = qkv_->forward(x).reshape({b, l, 3, heads_, -1}).movedim(2, 0);  // [3, B, L, H, d]
  at::Tensor q = qkv[0];
  at::Tensor k = qkv[1];
  if (ln_q_.defined()) {
    q = rms_norm(q, ln_q_, 1e-6);
    k = rms_norm(k, ln_k_, 1e-6);
  }
  return {q.transpose(1, 2), k.transpose(1, 2), qkv[2].transpose(1, 2)};
}

DismantledBlockImpl::DismantledBlockImpl(const MMDiTConfig& config, bool pre_only, bool x_self_attn,
                                         const at::TensorOptions& options)
    : pre_only_(pre_only), x_self_attn_(x_self_attn) {
  const int64_t hidden = config.hidden();
  attn_ =
      register_module("attn", MMDiTAttention(hidden, config.heads(), pre_only, config.qk_norm_rms, options));
  if (x_self_attn) {
    attn2_ =
        register_module("attn2", MMDiTAttention(hidden, config.heads(), false, config.qk_norm_rms, options));
  }
  if (!pre_only) {
    auto mlp = layers::add_container(*this, "mlp");
    fc1_ = mlp->register_module("fc1", layers::Linear(hidden, config.mlp_width(), true, options));
    fc2_ = mlp->register_module("fc2", layers::Linear(config.mlp_width(), hidden, true, options));
  }
  const int64_t mods = x_self_attn ? 9 : (pre_only ? 2 : 6);
  ada_ = register_module("adaLN_modulation", AdaLnModulation(hidden, mods * hidden, options));
}

DismantledBlockImpl::Pre DismantledBlockImpl::pre_attention(const at::Tensor& x, const at::Tensor& c) {
  Pre pre;
  const int64_t mods = x_self_attn_ ? 9 : (pre_only_ ? 2 : 6);
  pre.mods = ada_->forward(c).chunk(mods, 1);
  at::Tensor x_norm = plain_layer_norm(x);
  pre.qkv = attn_->pre_attention(mmdit_modulate(x_norm, pre.mods[0], pre.mods[1]));
  if (x_self_attn_) pre.qkv2 = attn2_->pre_attention(mmdit_modulate(x_norm, pre.mods[6], pre.mods[7]));
  return pre;
}

at::Tensor DismantledBlockImpl::post_attention(const at::Tensor& x, const Pre& pre, const at::Tensor& attn,
                                               const at::Tensor& attn2) {
  const auto& m = pre.mods;  // shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp[, 2 × 3]
  at::Tensor out = x + m[2].unsqueeze(1) * attn_->post_attention(attn);
  if (x_self_attn_) out = out + m[8].unsqueeze(1) * attn2_->post_attention(attn2);
  at::Tensor h =
      fc2_->forward(at::gelu(fc1_->forward(mmdit_modulate(plain_layer_norm(out), m[3], m[4])), "tanh"));
  return out + m[5].unsqueeze(1) * h;
}

MMDiTImpl::MMDiTImpl(const MMDiTConfig& config, const at::TensorOptions& options) : config_(config) {
  const int64_t hidden = config.hidden();
  const int64_t p = config.patch_size;
  x_embedder_ = layers::add_container(*this, "x_embedder")
                    ->register_module("proj", layers::Conv2d(config.in_channels, hidden, p, p, 0, options));
  const int64_t n = config.pos_embed_max_size;
  pos_embed_ = register_buffer("pos_embed", at::empty({1, n * n, hidden}, options));
  t_embedder_ = layers::add_container(*this, "t_embedder")
                    ->register_module("mlp", SiluMlp(256, hidden, "0", "2", options));
  if (config.adm_in_channels > 0) {
    y_embedder_ = layers::add_container(*this, "y_embedder")
                      ->register_module("mlp", SiluMlp(config.adm_in_channels, hidden, "0", "2", options));
  }
  if (config.context_in > 0) {
    context_embedder_ =
        register_module("context_embedder", layers::Linear(config.context_in, hidden, true, options));
  }
  auto blocks = layers::add_container(*this, "joint_blocks");
  const auto& xsa = config.x_block_self_attn_layers;
  for (int64_t i = 0; i < config.num_blocks; ++i) {
    auto block = layers::add_container(*blocks, std::to_string(i));
    const bool last = i == config.num_blocks - 1;
    const bool self_attn = std::find(xsa.begin(), xsa.end(), i) != xsa.end();
    context_blocks_.push_back(
        block->register_module("context_block", DismantledBlock(config, last, false, options)));
    x_blocks_.push_back(
        block->register_module("x_block", DismantledBlock(config, false, self_attn, options)));
  }
  auto final_layer = layers::add_container(*this, "final_layer");
  final_linear_ = final_layer->register_module(
      "linear", layers::Linear(hidden, p * p * config.out_channels, true, options));
  final_ada_ = final_layer->register_module("adaLN_modulation", AdaLnModulation(hidden, 2 * hidden, options));
}

Status MMDiTImpl::check_size(int64_t h, int64_t w) const {
  const int64_t p = config_.patch_size;
  const int64_t max = config_.pos_embed_max_size;
  if ((h + 1) / p > max || (w + 1) / p > max) {
    return Status::invalid_argument("latent " + std::to_string(h) + "x" + std::to_string(w) +
                                    " is larger than " + config_.describe() + " supports (" +
                                    std::to_string(max * p) + " per side)");
  }
  return Status::ok();
}

at::Tensor MMDiTImpl::cropped_pos_embed(int64_t h, int64_t w) const {
  const int64_t p = config_.patch_size;
  const int64_t max = config_.pos_embed_max_size;
  h = (h + 1) / p;
  w = (w + 1) / p;
  TORCH_CHECK(h <= max && w <= max, "MMDiT: patched size ", h, "x", w, " exceeds pos_embed_max_size ", max);
  const int64_t top = (max - h) / 2;
  const int64_t left = (max - w) / 2;
  at::Tensor spatial = pos_embed_.reshape({1, max, max, -1}).narrow(1, top, h).narrow(2, left, w);
  return spatial.reshape({1, h * w, -1});
}

at::Tensor MMDiTImpl::unpatchify(const at::Tensor& x, int64_t h, int64_t w) const {
  const int64_t p = config_.patch_size;
  const int64_t c = config_.out_channels;
  h = (h + 1) / p;
  w = (w + 1) / p;
  at::Tensor t = x.reshape({x.size(0), h, w, p, p, c}).permute({0, 5, 1, 3, 2, 4});
  return t.reshape({x.size(0), c, h * p, w * p});
}

at::Tensor MMDiTImpl::forward(const at::Tensor& x_in, const at::Tensor& timesteps,
                              const at::Tensor& context_in, const at::Tensor& y) {
  const int64_t h = x_in.size(2);
  const int64_t w = x_in.size(3);
  at::Tensor x = x_embedder_->forward(pad_to_patch(x_in, config_.patch_size)).flatten(2).transpose(1, 2);
  x = x + cropped_pos_embed(h, w).to(x.scalar_type());
  at::Tensor c = t_embedder_->forward(timestep_embedding(timesteps, 256, 1.0).to(x.scalar_type()));
  if (y.defined() && y_embedder_) c = c + y_embedder_->forward(y);
  at::Tensor context = context_embedder_ ? context_embedder_->forward(context_in) : context_in;
  for (size_t i = 0; i < x_blocks_.size(); ++i) {
    auto& cb = context_blocks_[i];
    auto& xb = x_blocks_[i];
    const DismantledBlockImpl::Pre cpre = cb->pre_attention(context, c);
    const DismantledBlockImpl::Pre xpre = xb->pre_attention(x, c);
    std::vector<at::Tensor> qkv;
    for (int t = 0; t < 3; ++t) qkv.push_back(at::cat({cpre.qkv[t], xpre.qkv[t]}, 2));
    at::Tensor attn = heads_attention(qkv[0], qkv[1], qkv[2]);
    const int64_t lc = context.size(1);
    at::Tensor attn2;
    if (xb->x_self_attn()) attn2 = heads_attention(xpre.qkv2[0], xpre.qkv2[1], xpre.qkv2[2]);
    at::Tensor x_attn = attn.narrow(1, lc, attn.size(1) - lc);
    if (!cb->pre_only()) context = cb->post_attention(context, cpre, attn.narrow(1, 0, lc), {});
    x = xb->post_attention(x, xpre, x_attn, attn2);
  }
  const std::vector<at::Tensor> mod = final_ada_->forward(c).chunk(2, 1);
  x = final_linear_->forward(mmdit_modulate(plain_layer_norm(x), mod[0], mod[1]));
  return unpatchify(x, h, w).narrow(2, 0, h).narrow(3, 0, w);
}

}  // namespace netdist::dit
