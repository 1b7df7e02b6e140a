#include "engine/sampling/noise.h"

#include <algorithm>
#include <mutex>
#include <string>

#include <ATen/CPUGeneratorImpl.h>

namespace netdist::sampling {

at::Generator make_generator(at::Device device, uint64_t seed) {
  if (device.is_cpu()) return at::detail::createCPUGenerator(seed);
  const at::Generator& default_generator = at::globalContext().defaultGenerator(device);
  at::Generator generator;
  {
    std::lock_guard<std::mutex> lock(const_cast<at::Generator&>(default_generator).mutex());
    generator = default_generator.clone();
  }
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_current_seed(seed);
  return generator;
}

Result<at::Tensor> initial_noise(uint64_t seed, at::IntArrayRef full_batch_shape,
                                 const std::optional<std::vector<int64_t>>& batch_index, at::ScalarType dtype) {
  if (full_batch_shape.empty()) return Status::invalid_argument("initial noise: latent shape is empty");
  for (int64_t d : full_batch_shape) {
    if (d < 0) return Status::invalid_argument("initial noise: negative latent dimension");
  }
  at::TensorOptions options = at::TensorOptions().dtype(dtype).device(at::kCPU);
  at::Generator generator = at::detail::createCPUGenerator(seed);
  if (!batch_index) return at::randn(full_batch_shape, generator, options);
  const std::vector<int64_t>& index = *batch_index;
  if (index.empty()) return Status::invalid_argument("initial noise: batch_index is empty");
  int64_t max_index = 0;
  for (int64_t i : index) {
    if (i < 0) return Status::invalid_argument("initial noise: batch_index " + std::to_string(i) + " is negative");
    max_index = std::max(max_index, i);
  }
  std::vector<int64_t> one_shape(full_batch_shape.begin(), full_batch_shape.end());
  one_shape[0] = 1;
  std::vector<at::Tensor> draws;
  for (int64_t i = 0; i <= max_index; ++i) draws.push_back(at::randn(one_shape, generator, options));
  std::vector<at::Tensor> rows;
  for (int64_t i : index) rows.push_back(draws[static_cast<size_t>(i)]);
  return at::cat(rows, 0);
}

at::Tensor initial_noise_rows(uint64_t seed, at::IntArrayRef full_batch_shape, int64_t row_begin, int64_t row_end) {
  ND_ASSERT(!full_batch_shape.empty() && 0 <= row_begin && row_begin <= row_end && row_end <= full_batch_shape[0],
            "initial_noise_rows: rows outside the batch");
  at::Tensor full = at::randn(full_batch_shape, at::detail::createCPUGenerator(seed), at::kFloat);
  return full.slice(0, row_begin, row_end).clone();
}

NoiseSource::NoiseSource(uint64_t seed, int64_t full_batch, int64_t row_begin, NoiseDevice where)
    : seed_(seed), full_batch_(full_batch), row_begin_(row_begin), where_(where) {}

Status NoiseSource::begin(const at::Tensor& x) {
  if (x.dim() < 1) return Status::invalid_argument("noise: latent has no batch dimension");
  int64_t rows = x.size(0);
  int64_t full = full_batch_ < 0 ? rows : full_batch_;
  if (full_batch_ < 0 && row_begin_ != 0) return Status::invalid_argument("noise: row_begin without a full batch size");
  if (row_begin_ < 0 || row_begin_ + rows > full) {
    return Status::invalid_argument("noise: rows [" + std::to_string(row_begin_) + ", " +
                                    std::to_string(row_begin_ + rows) + ") are outside a batch of " +
                                    std::to_string(full));
  }
  row_end_ = row_begin_ + rows;
  full_shape_.assign(x.sizes().begin(), x.sizes().end());
  full_shape_[0] = full;
  device_ = x.device();
  dtype_ = x.scalar_type();
  generator_ = make_generator(where_ == NoiseDevice::kCpu ? at::Device(at::kCPU) : device_, seed_);
  return Status::ok();
}

at::Tensor NoiseSource::next() {
  ND_ASSERT(generator_.has_value(), "NoiseSource::next before begin");
  at::Device draw_device = where_ == NoiseDevice::kCpu ? at::Device(at::kCPU) : device_;
  at::Tensor full = at::randn(full_shape_, *generator_, at::TensorOptions().dtype(dtype_).device(draw_device));
  at::Tensor rows = (row_begin_ == 0 && row_end_ == full_shape_[0]) ? full : full.slice(0, row_begin_, row_end_);
  return rows.to(device_);
}

}  // namespace netdist::sampling
