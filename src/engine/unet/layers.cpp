#include "engine/unet/layers.h"

#include <torch/torch.h>

namespace netdist::layers {

namespace {

at::Tensor new_param(torch::nn::Module& m, const std::string& name, at::IntArrayRef shape,
                     const at::TensorOptions& options) {
  return m.register_parameter(name, at::empty(shape, options), /*requires_grad=*/false);
}

}  // namespace

Conv2dImpl::Conv2dImpl(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride,
                       int64_t padding, const at::TensorOptions& options)
    : stride_(stride), padding_(padding) {
  weight = new_param(*this, "weight", {out_channels, in_channels, kernel_size, kernel_size}, options);
  bias = new_param(*this, "bias", {out_channels}, options);
}

at::Tensor Conv2dImpl::forward(const at::Tensor& x) {
  return at::conv2d(x, weight, bias, {stride_, stride_}, {padding_, padding_});
}

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool has_bias, const at::TensorOptions& options) {
  weight = new_param(*this, "weight", {out_features, in_features}, options);
  if (has_bias) bias = new_param(*this, "bias", {out_features}, options);
}

at::Tensor LinearImpl::forward(const at::Tensor& x) { return at::linear(x, weight, bias); }

GroupNormImpl::GroupNormImpl(int64_t num_groups, int64_t num_channels, double eps, const at::TensorOptions& options)
    : num_groups_(num_groups), eps_(eps) {
  weight = new_param(*this, "weight", {num_channels}, options);
  bias = new_param(*this, "bias", {num_channels}, options);
}

at::Tensor GroupNormImpl::forward(const at::Tensor& x) { return at::group_norm(x, num_groups_, weight, bias, eps_); }

LayerNormImpl::LayerNormImpl(int64_t dim, double eps, const at::TensorOptions& options) : dim_(dim), eps_(eps) {
  weight = new_param(*this, "weight", {dim}, options);
  bias = new_param(*this, "bias", {dim}, options);
}

at::Tensor LayerNormImpl::forward(const at::Tensor& x) { return at::layer_norm(x, {dim_}, weight, bias, eps_); }

std::shared_ptr<torch::nn::Module> add_container(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>(name));
}

void randomize_parameters(torch::nn::Module& module, uint64_t seed, double std) {
  torch::NoGradGuard no_grad;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  for (auto& item : module.named_parameters(/*recurse=*/true)) {
    at::Tensor& p = item.value();
    at::Tensor r = at::normal(0.0, std, p.sizes(), gen, at::TensorOptions().dtype(at::kFloat));
    const std::string& name = item.key();
    const bool is_norm_weight = p.dim() == 1 && name.size() >= 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
    if (is_norm_weight) r.add_(1.0);
    p.copy_(r);
  }
}

}  // namespace netdist::layers
