// Initial latent noise and per-step sampler noise, seeded exactly as ComfyUI seeds them.
//
// Initial noise (comfy/sample.py prepare_noise): one CPU MT19937 randn of the WHOLE batch, float32
// (reference/comfy-api.md §5.1 — libtorch's CPU randn reproduces torch's bits). A shard rendering images
// [a, b) uses rows a..b of that tensor.
//
// Per-step noise (k_diffusion default_noise_sampler): a generator on the sampling device seeded with the
// seed, one randn of the full batch shape per call. A shard draws the full batch and keeps its rows, so a
// split batch gives exactly the unsplit result (on the same device type).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <ATen/ATen.h>

#include "core/status.h"

namespace netdist::sampling {

// A fresh generator on `device` (CPU: MT19937; CUDA: Philox, offset 0) seeded as torch's manual_seed(seed).
at::Generator make_generator(at::Device device, uint64_t seed);

// prepare_noise(latent, seed, batch_index). full_batch_shape: [N, C, H, W] (any rank >= 1).
// Without batch_index: randn(full_batch_shape) from a CPU generator seeded with `seed`.
// With batch_index (latent["batch_index"]): max(index)+1 sequential draws of shape [1, C, H, W]; output row k
// is draw batch_index[k] (duplicates allowed); the output has batch_index.size() rows.
// dtype: the latent's dtype (float32 for EmptyLatentImage). Returns a CPU tensor.
// Negative or empty batch_index → invalid_argument.
Result<at::Tensor> initial_noise(uint64_t seed, at::IntArrayRef full_batch_shape,
                                 const std::optional<std::vector<int64_t>>& batch_index = std::nullopt,
                                 at::ScalarType dtype = at::kFloat);

// Rows [row_begin, row_end) of initial_noise(seed, full_batch_shape). CPU float32.
at::Tensor initial_noise_rows(uint64_t seed, at::IntArrayRef full_batch_shape, int64_t row_begin, int64_t row_end);

// Where per-step noise is drawn: on the sampling device (ComfyUI's behaviour) or on the CPU and then moved
// (`--noise cpu`: identical across GPU models and CPU runs, but not ComfyUI's CUDA noise).
enum class NoiseDevice { kSampling, kCpu };

// Noise for one sample() call. Not thread-safe; one instance per sampler run.
class NoiseSource {
 public:
  // full_batch < 0 means "the batch being sampled is the full batch" (row_begin must then be 0).
  explicit NoiseSource(uint64_t seed, int64_t full_batch = -1, int64_t row_begin = 0,
                       NoiseDevice where = NoiseDevice::kSampling);

  uint64_t seed() const { return seed_; }
  NoiseDevice where() const { return where_; }

  // Binds to the latent being sampled (x: [rows, ...]) and starts a fresh generator: ComfyUI creates one
  // per sampler invocation. Fails when the rows do not fit the full batch.
  Status begin(const at::Tensor& x);

  // One default_noise_sampler draw: randn(full_shape()) in x's dtype, rows [row_begin, row_end) on x's device.
  at::Tensor next();

  // Valid after begin().
  const std::vector<int64_t>& full_shape() const { return full_shape_; }
  int64_t row_begin() const { return row_begin_; }
  int64_t row_end() const { return row_end_; }
  at::Device device() const { return device_; }
  at::ScalarType dtype() const { return dtype_; }

 private:
  uint64_t seed_;
  int64_t full_batch_;
  int64_t row_begin_;
  int64_t row_end_ = 0;
  NoiseDevice where_;
  std::vector<int64_t> full_shape_;
  at::Device device_ = at::kCPU;
  at::ScalarType dtype_ = at::kFloat;
  std::optional<at::Generator> generator_;
};

}  // namespace netdist::sampling
