// The one place where libtorch 1.13 (Debian, CPU) and 2.x (CUDA wheels) differ for netdist.
// Everything else in the engine calls these wrappers instead of the version-specific APIs.
#pragma once

#include <string>

#include <ATen/ATen.h>
#include <torch/version.h>

namespace netdist::runtime {

// "1.13.1" / "2.11.0": the libtorch the binary was built against.
std::string torch_version();

// True when the binary was built with CUDA support and at least one device is visible.
bool cuda_available();

// Number of visible CUDA devices (0 on CPU-only builds). Always an int, whatever the libtorch version.
int cuda_device_count();

// softmax(q·kᵀ·scale [+ causal mask])·v. q: [B, H, Lq, D], k/v: [B, H, Lk, D], same dtype and device.
// Uses at::scaled_dot_product_attention on libtorch >= 2.0, matmul-softmax-matmul (softmax in fp32) on 1.13.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal);

}  // namespace netdist::runtime
