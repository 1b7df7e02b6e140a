#include "engine/upscale/nets.h"

#include <algorithm>
#include <string>
#include <vector>

namespace netdist::upscale {

namespace {

torch::nn::Conv2d upscale_conv(int64_t in, int64_t out, int64_t kernel = 3, bool bias = true) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(1).padding(kernel / 2).bias(bias));
}

at::Tensor upscale_lrelu(const at::Tensor& x) { return at::leaky_relu(x, 0.2); }

// F.interpolate(x, scale_factor=s, mode="nearest").
at::Tensor upscale_nearest(const at::Tensor& x, int64_t s) {
  const std::vector<int64_t> size = {x.size(2) * s, x.size(3) * s};
  const double f = static_cast<double>(s);
  return at::upsample_nearest2d(x, at::IntArrayRef(size), f, f);
}

// spandrel block.conv_block(act=None) wraps the conv in a Sequential: its key is "<name>.0.weight".
torch::nn::Sequential upscale_wrapped_conv(int64_t in, int64_t out) {
  return torch::nn::Sequential(upscale_conv(in, out));
}

// block.ResidualDenseBlock_5C (nf, gc = 32, CNA mode: LeakyReLU after conv1..4, none after conv5).
class RdbImpl : public torch::nn::Module {
 public:
  RdbImpl(int64_t nf, bool plus) {
    const int64_t gc = 32;
    if (plus) conv1x1_ = register_module("conv1x1", upscale_conv(nf, gc, 1, false));
    for (int i = 0; i < 5; ++i) {
      convs_.push_back(register_module("conv" + std::to_string(i + 1),
                                       upscale_wrapped_conv(nf + i * gc, i == 4 ? nf : gc)));
    }
  }
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor x1 = upscale_lrelu(convs_[0]->forward(x));
    at::Tensor x2 = upscale_lrelu(convs_[1]->forward(at::cat({x, x1}, 1)));
    if (conv1x1_) x2 = x2 + conv1x1_->forward(x);
    at::Tensor x3 = upscale_lrelu(convs_[2]->forward(at::cat({x, x1, x2}, 1)));
    at::Tensor x4 = upscale_lrelu(convs_[3]->forward(at::cat({x, x1, x2, x3}, 1)));
    if (conv1x1_) x4 = x4 + x2;
    at::Tensor x5 = convs_[4]->forward(at::cat({x, x1, x2, x3, x4}, 1));
    return x5 * 0.2 + x;
  }

 private:
  torch::nn::Conv2d conv1x1_{nullptr};
  std::vector<torch::nn::Sequential> convs_;
};
TORCH_MODULE(Rdb);

class RrdbImpl : public torch::nn::Module {
 public:
  RrdbImpl(int64_t nf, bool plus) {
    for (int i = 0; i < 3; ++i) rdbs_.push_back(register_module("RDB" + std::to_string(i + 1), Rdb(nf, plus)));
  }
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor out = rdbs_[2]->forward(rdbs_[1]->forward(rdbs_[0]->forward(x)));
    return out * 0.2 + x;
  }

 private:
  std::vector<Rdb> rdbs_;
};
TORCH_MODULE(Rrdb);

class RrdbNetImpl : public UpscaleNetImpl {
 public:
  explicit RrdbNetImpl(const ArchConfig& c) : shuffle_(c.shuffle), scale_(c.net_scale) {
    auto model = register_module("model", std::make_shared<torch::nn::Module>());
    const int64_t nf = c.num_filters;
    first_ = model->register_module("0", upscale_conv(c.in_nc, nf));
    auto shortcut = model->register_module("1", std::make_shared<torch::nn::Module>());
    auto sub = shortcut->register_module("sub", std::make_shared<torch::nn::Module>());
    for (int64_t b = 0; b < c.num_blocks; ++b) blocks_.push_back(sub->register_module(std::to_string(b), Rrdb(nf, c.plus)));
    trunk_ = sub->register_module(std::to_string(c.num_blocks), upscale_conv(nf, nf));
    int64_t index = 3;
    for (int64_t s = c.net_scale; s > 1; s /= 2, index += 3)
      ups_.push_back(model->register_module(std::to_string(index), upscale_conv(nf, nf)));
    hr_ = model->register_module(std::to_string(index - 1), upscale_conv(nf, nf));
    last_ = model->register_module(std::to_string(index + 1), upscale_conv(nf, c.out_nc));
  }

  at::Tensor forward(const at::Tensor& input) override {
    at::Tensor x = input;
    const int64_t h = input.size(2), w = input.size(3);
    if (shuffle_) {
      const int64_t pad_h = (shuffle_ - h % shuffle_) % shuffle_, pad_w = (shuffle_ - w % shuffle_) % shuffle_;
      if (pad_h || pad_w) x = at::reflection_pad2d(x, {0, pad_w, 0, pad_h});
      x = at::pixel_unshuffle(x, shuffle_);
    }
    at::Tensor fea = first_->forward(x);
    at::Tensor t = fea;
    for (Rrdb& b : blocks_) t = b->forward(t);
    at::Tensor y = fea + trunk_->forward(t);
    for (torch::nn::Conv2d& up : ups_) {
      y = upscale_nearest(y, 2);
      y = upscale_lrelu(up->forward(y));
    }
    y = last_->forward(upscale_lrelu(hr_->forward(y)));
    if (shuffle_) {
      const int64_t s = scale_ / shuffle_;
      y = y.narrow(2, 0, std::min(y.size(2), h * s)).narrow(3, 0, std::min(y.size(3), w * s));
    }
    return y;
  }

 private:
  int64_t shuffle_ = 0;
  int64_t scale_ = 1;
  torch::nn::Conv2d first_{nullptr}, trunk_{nullptr}, hr_{nullptr}, last_{nullptr};
  std::vector<Rrdb> blocks_;
  std::vector<torch::nn::Conv2d> ups_;
};

class SrvggImpl : public UpscaleNetImpl {
 public:
  explicit SrvggImpl(const ArchConfig& c) : scale_(c.net_scale) {
    auto body = register_module("body", std::make_shared<torch::nn::Module>());
    const int64_t nf = c.num_filters;
    int64_t index = 0;
    for (int64_t i = 0; i <= c.num_conv; ++i) {
      convs_.push_back(body->register_module(std::to_string(index++), upscale_conv(i == 0 ? c.in_nc : nf, nf)));
      prelus_.push_back(body->register_module(std::to_string(index++),
                                              torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(nf))));
    }
    last_ = body->register_module(std::to_string(index), upscale_conv(nf, c.out_nc * scale_ * scale_));
  }

  at::Tensor forward(const at::Tensor& x) override {
    at::Tensor out = x;
    for (size_t i = 0; i < convs_.size(); ++i) out = prelus_[i]->forward(convs_[i]->forward(out));
    out = at::pixel_shuffle(last_->forward(out), scale_);
    return out + upscale_nearest(x, scale_);
  }

 private:
  int64_t scale_ = 4;
  std::vector<torch::nn::Conv2d> convs_;
  std::vector<torch::nn::PReLU> prelus_;
  torch::nn::Conv2d last_{nullptr};
};

}  // namespace

std::shared_ptr<UpscaleNetImpl> make_upscale_net(const ArchConfig& config) {
  if (config.arch == Arch::kCompact) return std::make_shared<SrvggImpl>(config);
  return std::make_shared<RrdbNetImpl>(config);
}

}  // namespace netdist::upscale
