// What a device has and what libtorch holds on it, and the calls that give memory back: the facts that
// /system_stats reports and that the engine's model residency (engine/residency.h) decides with.
//
// On a CUDA device: total/free from the driver (cudaMemGetInfo: every process's use counts), reserved and
// allocated from libtorch's caching allocator (reserved ≥ allocated; the difference is cached blocks that a
// new allocation of this process can reuse, and that release_cached_memory gives back to the driver). On the
// CPU (and in a build without CUDA): total/free are the machine's RAM (MemTotal/MemAvailable), the torch
// figures are 0. Sizes in bytes.
// Thread-safety: every function may be called from any thread.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

namespace netdist::runtime {

struct DeviceMemory {
  int64_t total = 0;
  int64_t free = 0;
  int64_t torch_reserved = 0;
  int64_t torch_allocated = 0;
  int64_t torch_peak_allocated = 0;  // since the last reset_peak_memory
};

DeviceMemory device_memory(const at::Device& device);

// Returns the caching allocator's unused blocks to the driver (torch.cuda.empty_cache). CPU: no-op.
void release_cached_memory(const at::Device& device);

// Caps what libtorch's allocator may reserve on a CUDA device (torch.cuda.set_per_process_memory_fraction):
// an allocation past it fails with out-of-memory, as on a card of that size. bytes <= 0 removes the cap.
void set_memory_cap(const at::Device& device, int64_t bytes);

void reset_peak_memory(const at::Device& device);

// The process's resident set size (VmRSS) in bytes; 0 where /proc is missing.
int64_t resident_set_bytes();

}  // namespace netdist::runtime
