#include "engine/runtime/torch_compat.h"

#include <cmath>

#include <torch/cuda.h>

namespace netdist::runtime {

std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

bool cuda_available() { return torch::cuda::is_available(); }

int cuda_device_count() { return static_cast<int>(torch::cuda::device_count()); }

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal) {
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, causal);
#else
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * scale;
  if (causal) {
    const int64_t lq = q.size(-2);
    const int64_t lk = k.size(-2);
    at::Tensor mask = at::ones({lq, lk}, q.options().dtype(at::kBool)).triu(lk - lq + 1);
    scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
  }
  at::Tensor probs = at::softmax(scores.to(at::kFloat), -1).to(q.scalar_type());
  return at::matmul(probs, v);
#endif
}

}  // namespace netdist::runtime
