// Parameter-holding layers shared by the UNet and the VAE (Conv2d, Linear, GroupNorm, LayerNorm).
//
// Unlike torch::nn's layers these allocate their parameters with at::empty in caller-given TensorOptions
// (dtype and device, including torch::kMeta) and never run a random initializer: a model is built
// uninitialized in its final dtype/device and then filled by runtime::load_module_weights (or by
// randomize_parameters in tests). Parameter names are "weight"/"bias", as in torch.nn, so module trees built
// from these layers reproduce ldm checkpoint names. Inputs may have any memory format (NCHW or channels_last).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace netdist::layers {

// y = conv2d(x, weight [out, in, k, k], bias [out]); x [B, in, H, W].
class Conv2dImpl : public torch::nn::Module {
 public:
  Conv2dImpl(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride, int64_t padding,
             const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight;
  at::Tensor bias;

 private:
  int64_t stride_;
  int64_t padding_;
};
TORCH_MODULE(Conv2d);

// y = x · weightᵀ + bias; weight [out, in], bias [out] (absent when has_bias is false); x [..., in].
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool has_bias, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight;
  at::Tensor bias;
};
TORCH_MODULE(Linear);

// at::group_norm over [B, C, ...] with affine weight/bias [C]; computed in the input dtype.
class GroupNormImpl : public torch::nn::Module {
 public:
  GroupNormImpl(int64_t num_groups, int64_t num_channels, double eps, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight;
  at::Tensor bias;

 private:
  int64_t num_groups_;
  double eps_;
};
TORCH_MODULE(GroupNorm);

// at::layer_norm over the last dimension [..., dim] with affine weight/bias [dim].
class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(int64_t dim, double eps, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight;
  at::Tensor bias;

 private:
  int64_t dim_;
  double eps_;
};
TORCH_MODULE(LayerNorm);

// A parameter-free child registered under `name` in `parent`, used to reproduce nn.Sequential / nn.Module
// nesting in names ("in_layers.2.weight", "mid.attn_1.q.weight") without a forward of its own.
std::shared_ptr<torch::nn::Module> add_container(torch::nn::Module& parent, const std::string& name);

// Fills every parameter of `module` with N(0, std²) (biases and norm weights included) from a CPU
// generator seeded with `seed`; norm weights get 1 + N(0, std²). For tests and benchmarks only.
void randomize_parameters(torch::nn::Module& module, uint64_t seed, double std = 0.05);

}  // namespace netdist::layers
