#include "engine/dit/dit_layers.h"

#include <cmath>

#include <torch/nn/functional/padding.h>

#include "engine/runtime/torch_compat.h"

namespace netdist::dit {

at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim, double time_factor) {
  at::Tensor scaled = time_factor == 1.0 ? t : t * time_factor;
  const int64_t half = dim / 2;
  at::Tensor freqs = at::exp(-std::log(10000.0) * at::arange(0, half, t.options().dtype(at::kFloat)) /
                             static_cast<double>(half));
  at::Tensor args = scaled.unsqueeze(1).to(at::kFloat) * freqs.unsqueeze(0);
  at::Tensor emb = at::cat({at::cos(args), at::sin(args)}, -1);
  if (dim % 2 != 0) emb = at::cat({emb, at::zeros_like(emb.narrow(1, 0, 1))}, -1);
  return emb;
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor r = x * at::rsqrt(at::mean(x.pow(2), {-1}, /*keepdim=*/true) + eps);
  if (!weight.defined()) return r;
  return r * weight.to(x.scalar_type());
}

at::Tensor plain_layer_norm(const at::Tensor& x) { return at::layer_norm(x, {x.size(-1)}, {}, {}, 1e-6); }

at::Tensor pad_to_patch(const at::Tensor& x, int64_t patch) {
  const int64_t ph = (patch - x.size(2) % patch) % patch;
  const int64_t pw = (patch - x.size(3) % patch) % patch;
  if (ph == 0 && pw == 0) return x;
  namespace F = torch::nn::functional;
  return F::pad(x, F::PadFuncOptions({0, pw, 0, ph}).mode(torch::kCircular));
}

at::Tensor heads_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  at::Tensor out = runtime::attention(q, k, v, /*causal=*/false);  // [B, H, L, d]
  return out.transpose(1, 2).reshape({q.size(0), q.size(2), q.size(1) * q.size(3)});
}

SiluMlpImpl::SiluMlpImpl(int64_t in, int64_t hidden, const std::string& first, const std::string& second,
                         const at::TensorOptions& options) {
  first_ = register_module(first, layers::Linear(in, hidden, true, options));
  second_ = register_module(second, layers::Linear(hidden, hidden, true, options));
}

at::Tensor SiluMlpImpl::forward(const at::Tensor& x) {
  return second_->forward(at::silu(first_->forward(x)));
}

AdaLnModulationImpl::AdaLnModulationImpl(int64_t hidden, int64_t out, const at::TensorOptions& options) {
  linear_ = register_module("1", layers::Linear(hidden, out, true, options));
}

at::Tensor AdaLnModulationImpl::forward(const at::Tensor& c) { return linear_->forward(at::silu(c)); }

}  // namespace netdist::dit
