#include "engine/runtime/device_memory.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

#ifdef NETDIST_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace netdist::runtime {

namespace {

// A "Key:   value kB" line of a /proc file, in bytes; 0 when absent.
int64_t proc_kib(const char* file, const std::string& key) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) != 0 || line.size() <= key.size() || line[key.size()] != ':')
      continue;
    std::istringstream fields(line.substr(key.size() + 1));
    int64_t kib = 0;
    fields >> kib;
    return kib * 1024;
  }
  return 0;
}

#ifdef NETDIST_CUDA
// libtorch sets up its CUDA allocator on the first allocation; its statistics and settings throw before
// that. One tiny allocation on the device does it.
bool allocator_ready(const at::Device& device) {
  try {
    (void)at::empty({1}, at::TensorOptions().device(device));
    return true;
  } catch (const std::exception&) {
    return false;
  }
}
#endif

}  // namespace

DeviceMemory device_memory(const at::Device& device) {
  DeviceMemory m;
#ifdef NETDIST_CUDA
  if (device.is_cuda()) {
    const c10::DeviceIndex index = device.has_index() ? device.index() : 0;
    if (!allocator_ready(at::Device(at::kCUDA, index))) return m;
    c10::cuda::CUDAGuard guard(index);
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) == cudaSuccess) {
      m.free = static_cast<int64_t>(free);
      m.total = static_cast<int64_t>(total);
    } else {
      (void)cudaGetLastError();
    }
    // Index 0 of every stat array is the aggregate over pool kinds (StatType::AGGREGATE), whose namespace
    // moved between libtorch versions.
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    m.torch_reserved = stats.reserved_bytes[0].current;
    m.torch_allocated = stats.allocated_bytes[0].current;
    m.torch_peak_allocated = stats.allocated_bytes[0].peak;
    return m;
  }
#endif
  (void)device;
  m.total = proc_kib("/proc/meminfo", "MemTotal");
  m.free = proc_kib("/proc/meminfo", "MemAvailable");
  return m;
}

void release_cached_memory(const at::Device& device) {
#ifdef NETDIST_CUDA
  if (device.is_cuda() && allocator_ready(device)) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
  (void)device;
}

void set_memory_cap(const at::Device& device, int64_t bytes) {
#ifdef NETDIST_CUDA
  if (!device.is_cuda() || !allocator_ready(device)) return;
  const DeviceMemory m = device_memory(device);
  if (m.total <= 0) return;
  const double fraction =
      bytes <= 0 ? 1.0 : std::min(1.0, static_cast<double>(bytes) / static_cast<double>(m.total));
  c10::cuda::CUDACachingAllocator::setMemoryFraction(fraction, device.has_index() ? device.index() : 0);
#endif
  (void)device;
  (void)bytes;
}

void reset_peak_memory(const at::Device& device) {
#ifdef NETDIST_CUDA
  if (device.is_cuda() && allocator_ready(device)) {
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index() : 0);
  }
#endif
  (void)device;
}

int64_t resident_set_bytes() { return proc_kib("/proc/self/status", "VmRSS"); }

}  // namespace netdist::runtime
