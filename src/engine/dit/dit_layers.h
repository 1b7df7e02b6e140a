// Pieces shared by the diffusion transformers (MMDiT of SD3/SD3.5, Flux), each as ComfyUI computes it
// (comfy/ldm/modules/diffusionmodules/mmdit.py, comfy/ldm/flux/layers.py + math.py, comfy/ldm/common_dit.py).
// Computation stays in the input's dtype except where ComfyUI upcasts (timestep embeddings and RoPE in fp32).
#pragma once

#include <cstdint>
#include <string>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "engine/unet/layers.h"

namespace netdist::dit {

// Sinusoidal embedding [B, dim] float32 of t [B] (cat(cos, sin), max_period 10000): mmdit's util
// timestep_embedding with time_factor 1, Flux's (t · 1000 first) with time_factor 1000.
at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim, double time_factor);

// x · rsqrt(mean(x², -1) + eps) [· weight]: common_dit.rms_norm (its torch < 2.4 formula).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// LayerNorm over the last dim without affine parameters, eps 1e-6.
at::Tensor plain_layer_norm(const at::Tensor& x);

// Right/bottom circular padding of [B, C, H, W] up to multiples of `patch` (common_dit.pad_to_patch_size).
at::Tensor pad_to_patch(const at::Tensor& x, int64_t patch);

// softmax(q kᵀ / √d) v with q, k, v [B, H, L, d]; returns [B, L, H·d] (ComfyUI's optimized_attention).
at::Tensor heads_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// Linear → SiLU → Linear whose layers are named `first` and `second` ("0"/"2" as in nn.Sequential for
// mmdit's TimestepEmbedder/VectorEmbedder mlp, "in_layer"/"out_layer" for Flux's MLPEmbedder).
class SiluMlpImpl : public torch::nn::Module {
 public:
  SiluMlpImpl(int64_t in, int64_t hidden, const std::string& first, const std::string& second,
              const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);

 private:
  layers::Linear first_{nullptr};
  layers::Linear second_{nullptr};
};
TORCH_MODULE(SiluMlp);

// nn.Sequential(SiLU, Linear) as "adaLN_modulation": forward(c) = linear(silu(c)), weights at "1.weight".
class AdaLnModulationImpl : public torch::nn::Module {
 public:
  AdaLnModulationImpl(int64_t hidden, int64_t out, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& c);

 private:
  layers::Linear linear_{nullptr};
};
TORCH_MODULE(AdaLnModulation);

// The number of N with a key starting with prefix + N + "." (comfy model_detection.count_blocks).
template <typename Map>
int64_t count_blocks(const Map& weights, const std::string& prefix) {
  int64_t n = 0;
  for (;;) {
    const std::string head = prefix + std::to_string(n) + ".";
    bool found = false;
    for (const auto& item : weights) {
      if (item.first.compare(0, head.size(), head) == 0) {
        found = true;
        break;
      }
    }
    if (!found) return n;
    ++n;
  }
}

}  // namespace netdist::dit
