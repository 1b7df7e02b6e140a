#include "engine/dit/flux.h"

#include <c10/util/Exception.h>

namespace netdist::dit {

namespace {

const at::Tensor* flux_find(const runtime::WeightMap& weights, std::string_view prefix,
                            const std::string& name) {
  auto it = weights.find(std::string(prefix) + name);
  return it == weights.end() ? nullptr : &it->second;
}

// flux/math.py apply_rope for one of q, k [B, H, L, d] with pe [B, 1, L, d/2, 2, 2].
at::Tensor flux_apply_rope(const at::Tensor& x, const at::Tensor& pe) {
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end() - 1);
  shape.push_back(-1);
  shape.push_back(1);
  shape.push_back(2);
  at::Tensor xf = x.to(at::kFloat).reshape(shape);
  at::Tensor out = pe.select(-1, 0) * xf.select(-1, 0) + pe.select(-1, 1) * xf.select(-1, 1);
  return out.reshape(x.sizes()).to(x.scalar_type());
}

// flux/math.py attention: RoPE on q and k, then softmax attention; [B, H, L, d] → [B, L, H·d].
at::Tensor flux_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const at::Tensor& pe) {
  return heads_attention(flux_apply_rope(q, pe), flux_apply_rope(k, pe), v);
}

at::Tensor flux_fp16_clamp(const at::Tensor& x) {
  if (x.scalar_type() != at::kHalf) return x;
  return at::nan_to_num(x, 0.0, 65504.0, -65504.0);
}

// One 1-D rope table: [B, N, dim/2, 2, 2] float32 (flux/math.py rope).
at::Tensor flux_rope_axis(const at::Tensor& pos, int64_t dim, double theta) {
  at::Tensor scale = at::linspace(0, static_cast<double>(dim - 2) / static_cast<double>(dim), dim / 2,
                                  pos.options().dtype(at::kDouble));
  at::Tensor omega = 1.0 / at::pow(at::Scalar(theta), scale);
  at::Tensor out = pos.to(at::kFloat).to(at::kDouble).unsqueeze(-1) * omega;
  at::Tensor cos = at::cos(out);
  at::Tensor sin = at::sin(out);
  at::Tensor table = at::stack({cos, -sin, sin, cos}, -1);
  std::vector<int64_t> shape(table.sizes().begin(), table.sizes().end() - 1);
  shape.push_back(2);
  shape.push_back(2);
  return table.reshape(shape).to(at::kFloat);
}

}  // namespace

std::string FluxConfig::describe() const {
  return std::string("Flux ") + (guidance_embed ? "dev" : "schnell") + "-like (hidden " +
         std::to_string(hidden) + ", " + std::to_string(depth) + "+" + std::to_string(depth_single) +
         " blocks)";
}

Result<FluxConfig> detect_flux_config(const runtime::WeightMap& weights, std::string_view prefix) {
  const std::string p(prefix);
  const at::Tensor* key_norm = flux_find(weights, prefix, "double_blocks.0.img_attn.norm.key_norm.scale");
  if (!key_norm)
    return Status::not_found("not a Flux model: no " + p + "double_blocks.0.img_attn.norm.key_norm.scale");
  const at::Tensor* img_in = flux_find(weights, prefix, "img_in.weight");
  const at::Tensor* vec_in = flux_find(weights, prefix, "vector_in.in_layer.weight");
  const at::Tensor* txt_in = flux_find(weights, prefix, "txt_in.weight");
  const at::Tensor* mlp = flux_find(weights, prefix, "double_blocks.0.img_mlp.0.weight");
  const at::Tensor* final_linear = flux_find(weights, prefix, "final_layer.linear.weight");
  for (const auto& [name, t] : {std::pair{"img_in.weight", img_in},
                                {"vector_in.in_layer.weight", vec_in},
                                {"txt_in.weight", txt_in},
                                {"double_blocks.0.img_mlp.0.weight", mlp},
                                {"final_layer.linear.weight", final_linear}}) {
    if (!t || t->dim() != 2) return Status::unsupported("Flux: " + p + name + " is missing or not a matrix");
  }
  FluxConfig c;
  c.hidden = img_in->size(0);
  c.in_channels = img_in->size(1) / 4;
  c.out_channels = final_linear->size(0) / 4;
  c.vec_in_dim = vec_in->size(1);
  c.context_in_dim = txt_in->size(1);
  c.mlp_hidden = mlp->size(0);
  const int64_t d = key_norm->numel();
  if (d <= 0 || d % 16 != 0 || c.hidden % d != 0) {
    return Status::unsupported(
        "Flux: head size " + std::to_string(d) + " (" + p +
        "double_blocks.0.img_attn.norm.key_norm.scale) is not a multiple of 16 dividing " +
        std::to_string(c.hidden));
  }
  c.heads = c.hidden / d;
  c.axes_dim = {d / 8, 7 * d / 16, 7 * d / 16};
  c.depth = count_blocks(weights, p + "double_blocks.");
  c.depth_single = count_blocks(weights, p + "single_blocks.");
  c.guidance_embed = flux_find(weights, prefix, "guidance_in.in_layer.weight") != nullptr;
  return c;
}

FluxAttentionImpl::FluxAttentionImpl(const FluxConfig& config, const at::TensorOptions& options)
    : heads_(config.heads) {
  qkv_ = register_module("qkv", layers::Linear(config.hidden, 3 * config.hidden, true, options));
  auto norm = layers::add_container(*this, "norm");
  query_norm_ = layers::add_container(*norm, "query_norm")
                    ->register_parameter("scale", at::empty({config.head_dim()}, options), false);
  key_norm_ = layers::add_container(*norm, "key_norm")
                  ->register_parameter("scale", at::empty({config.head_dim()}, options), false);
  proj_ = register_module("proj", layers::Linear(config.hidden, config.hidden, true, options));
}

std::vector<at::Tensor> FluxAttentionImpl::qkv(const at::Tensor& x) {
  at::Tensor t = qkv_->forward(x).view({x.size(0), x.size(1), 3, heads_, -1}).permute({2, 0, 3, 1, 4});
  return {rms_norm(t[0], query_norm_, 1e-6), rms_norm(t[1], key_norm_, 1e-6), t[2]};
}

DoubleStreamBlockImpl::Stream DoubleStreamBlockImpl::make_stream(const std::string& name,
                                                                 const FluxConfig& config,
                                                                 const at::TensorOptions& options) {
  Stream s;
  s.mod = layers::add_container(*this, name + "_mod")
              ->register_module("lin", layers::Linear(config.hidden, 6 * config.hidden, true, options));
  s.attn = register_module(name + "_attn", FluxAttention(config, options));
  auto mlp = layers::add_container(*this, name + "_mlp");
  s.mlp0 = mlp->register_module("0", layers::Linear(config.hidden, config.mlp_hidden, true, options));
  s.mlp2 = mlp->register_module("2", layers::Linear(config.mlp_hidden, config.hidden, true, options));
  return s;
}

DoubleStreamBlockImpl::DoubleStreamBlockImpl(const FluxConfig& config, const at::TensorOptions& options) {
  img_ = make_stream("img", config, options);
  txt_ = make_stream("txt", config, options);
}

std::pair<at::Tensor, at::Tensor> DoubleStreamBlockImpl::forward(const at::Tensor& img, const at::Tensor& txt,
                                                                 const at::Tensor& vec,
                                                                 const at::Tensor& pe) {
  // shift, scale, gate of the attention, then of the MLP: [B, 1, C] each.
  const std::vector<at::Tensor> im = img_.mod->forward(at::silu(vec)).unsqueeze(1).chunk(6, -1);
  const std::vector<at::Tensor> tm = txt_.mod->forward(at::silu(vec)).unsqueeze(1).chunk(6, -1);
  std::vector<at::Tensor> iq = img_.attn->qkv((1 + im[1]) * plain_layer_norm(img) + im[0]);
  std::vector<at::Tensor> tq = txt_.attn->qkv((1 + tm[1]) * plain_layer_norm(txt) + tm[0]);
  at::Tensor attn =
      flux_attention(at::cat({tq[0], iq[0]}, 2), at::cat({tq[1], iq[1]}, 2), at::cat({tq[2], iq[2]}, 2), pe);
  const int64_t lt = txt.size(1);
  at::Tensor txt_attn = attn.narrow(1, 0, lt);
  at::Tensor img_attn = attn.narrow(1, lt, attn.size(1) - lt);
  auto mlp = [](Stream& s, const at::Tensor& x) {
    return s.mlp2->forward(at::gelu(s.mlp0->forward(x), "tanh"));
  };
  at::Tensor i = img + im[2] * img_.attn->proj(img_attn);
  i = i + im[5] * mlp(img_, (1 + im[4]) * plain_layer_norm(i) + im[3]);
  at::Tensor t = txt + tm[2] * txt_.attn->proj(txt_attn);
  t = t + tm[5] * mlp(txt_, (1 + tm[4]) * plain_layer_norm(t) + tm[3]);
  return {i, flux_fp16_clamp(t)};
}

SingleStreamBlockImpl::SingleStreamBlockImpl(const FluxConfig& config, const at::TensorOptions& options)
    : hidden_(config.hidden), heads_(config.heads), mlp_hidden_(config.mlp_hidden) {
  linear1_ = register_module("linear1", layers::Linear(hidden_, 3 * hidden_ + mlp_hidden_, true, options));
  linear2_ = register_module("linear2", layers::Linear(hidden_ + mlp_hidden_, hidden_, true, options));
  auto norm = layers::add_container(*this, "norm");
  query_norm_ = layers::add_container(*norm, "query_norm")
                    ->register_parameter("scale", at::empty({config.head_dim()}, options), false);
  key_norm_ = layers::add_container(*norm, "key_norm")
                  ->register_parameter("scale", at::empty({config.head_dim()}, options), false);
  mod_ = layers::add_container(*this, "modulation")
             ->register_module("lin", layers::Linear(hidden_, 3 * hidden_, true, options));
}

at::Tensor SingleStreamBlockImpl::forward(const at::Tensor& x, const at::Tensor& vec, const at::Tensor& pe) {
  const std::vector<at::Tensor> m =
      mod_->forward(at::silu(vec)).unsqueeze(1).chunk(3, -1);  // shift, scale, gate
  at::Tensor h = linear1_->forward((1 + m[1]) * plain_layer_norm(x) + m[0]);
  at::Tensor qkv =
      h.narrow(-1, 0, 3 * hidden_).reshape({x.size(0), x.size(1), 3, heads_, -1}).permute({2, 0, 3, 1, 4});
  at::Tensor mlp = h.narrow(-1, 3 * hidden_, mlp_hidden_);
  at::Tensor attn =
      flux_attention(rms_norm(qkv[0], query_norm_, 1e-6), rms_norm(qkv[1], key_norm_, 1e-6), qkv[2], pe);
  at::Tensor out = linear2_->forward(at::cat({attn, at::gelu(mlp, "tanh")}, 2));
  return flux_fp16_clamp(x + m[2] * out);
}

at::Tensor flux_rope_embed(const at::Tensor& ids, const std::vector<int64_t>& axes_dim, double theta) {
  std::vector<at::Tensor> parts;
  for (size_t i = 0; i < axes_dim.size(); ++i) {
    parts.push_back(flux_rope_axis(ids.select(-1, static_cast<int64_t>(i)), axes_dim[i], theta));
  }
  return at::cat(parts, -3).unsqueeze(1);
}

FluxImpl::FluxImpl(const FluxConfig& config, const at::TensorOptions& options) : config_(config) {
  const int64_t hidden = config.hidden;
  img_in_ = register_module("img_in", layers::Linear(config.in_channels * 4, hidden, true, options));
  time_in_ = register_module("time_in", SiluMlp(256, hidden, "in_layer", "out_layer", options));
  vector_in_ =
      register_module("vector_in", SiluMlp(config.vec_in_dim, hidden, "in_layer", "out_layer", options));
  if (config.guidance_embed) {
    guidance_in_ = register_module("guidance_in", SiluMlp(256, hidden, "in_layer", "out_layer", options));
  }
  txt_in_ = register_module("txt_in", layers::Linear(config.context_in_dim, hidden, true, options));
  auto doubles = layers::add_container(*this, "double_blocks");
  for (int64_t i = 0; i < config.depth; ++i) {
    double_blocks_.push_back(doubles->register_module(std::to_string(i), DoubleStreamBlock(config, options)));
  }
  auto singles = layers::add_container(*this, "single_blocks");
  for (int64_t i = 0; i < config.depth_single; ++i) {
    single_blocks_.push_back(singles->register_module(std::to_string(i), SingleStreamBlock(config, options)));
  }
  auto final_layer = layers::add_container(*this, "final_layer");
  final_linear_ =
      final_layer->register_module("linear", layers::Linear(hidden, 4 * config.out_channels, true, options));
  final_ada_ = final_layer->register_module("adaLN_modulation", AdaLnModulation(hidden, 2 * hidden, options));
}

at::Tensor FluxImpl::forward(const at::Tensor& x_in, const at::Tensor& timesteps, const at::Tensor& context,
                             const at::Tensor& y, const at::Tensor& guidance) {
  const int64_t b = x_in.size(0);
  const int64_t c = x_in.size(1);
  const int64_t hh = x_in.size(2);
  const int64_t ww = x_in.size(3);
  const int64_t h = (hh + 1) / 2;
  const int64_t w = (ww + 1) / 2;
  at::Tensor x = pad_to_patch(x_in, 2);
  at::Tensor img = x.reshape({b, c, h, 2, w, 2}).permute({0, 2, 4, 1, 3, 5}).reshape({b, h * w, c * 4});
  at::Tensor img_ids = at::zeros({h, w, 3}, x.options());
  img_ids.select(2, 1).add_(at::linspace(0, static_cast<double>(h - 1), h, x.options()).unsqueeze(1));
  img_ids.select(2, 2).add_(at::linspace(0, static_cast<double>(w - 1), w, x.options()).unsqueeze(0));
  at::Tensor ids = at::cat(
      {at::zeros({b, context.size(1), 3}, x.options()), img_ids.reshape({1, h * w, 3}).expand({b, h * w, 3})},
      1);
  at::Tensor pe = flux_rope_embed(ids, config_.axes_dim, config_.theta);

  img = img_in_->forward(img);
  // layers.py timestep_embedding scales t in its own dtype and returns the embedding in it (ComfyUI's
  // apply_model passes guidance in the model dtype: bf16 rounds 3.5 · 1000 to 3504, as here).
  auto embed = [&](const at::Tensor& t) {
    return timestep_embedding(t, 256, 1000.0).to(t.scalar_type()).to(img.scalar_type());
  };
  at::Tensor vec = time_in_->forward(embed(timesteps));
  if (config_.guidance_embed) {
    TORCH_CHECK(guidance.defined(), "Flux: the guidance-distilled model needs a guidance value");
    vec = vec + guidance_in_->forward(embed(guidance));
  }
  vec = vec + vector_in_->forward(y.narrow(1, 0, config_.vec_in_dim));
  at::Tensor txt = txt_in_->forward(context);
  for (auto& block : double_blocks_) std::tie(img, txt) = block->forward(img, txt, vec, pe);
  img = at::cat({txt, img}, 1);
  for (auto& block : single_blocks_) img = block->forward(img, vec, pe);
  img = img.narrow(1, txt.size(1), img.size(1) - txt.size(1));
  const std::vector<at::Tensor> mod = final_ada_->forward(vec).chunk(2, 1);
  img = final_linear_->forward((1 + mod[1].unsqueeze(1)) * plain_layer_norm(img) + mod[0].unsqueeze(1));
  at::Tensor out = img.reshape({b, h, w, config_.out_channels, 2, 2}).permute({0, 3, 1, 4, 2, 5});
  return out.reshape({b, config_.out_channels, 2 * h, 2 * w}).narrow(2, 0, hh).narrow(3, 0, ww);
}

}  // namespace netdist::dit
