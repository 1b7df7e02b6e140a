// configure_memory, device_memory_info and free_device_memory of include/netdist/engine.h.
#include <cmath>

#ifdef NETDIST_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

#include "engine/model.h"
#include "engine/residency.h"
#include "engine/runtime/device_memory.h"

namespace netdist {

namespace {

int64_t gib_to_bytes(double gb) { return static_cast<int64_t>(std::llround(gb * 1024.0 * 1024.0 * 1024.0)); }

}  // namespace

Status configure_memory(const EngineOptions& options) {
  if (!(options.vram_limit_gb >= 0) || !(options.reserve_vram_gb >= 0)) {
    return Status::invalid_argument("--vram-limit and --reserve-vram must be at least 0 (GB)");
  }
  if (options.lowvram && options.highvram)
    return Status::invalid_argument("--lowvram and --highvram exclude each other");
  ND_ASSIGN_OR_RETURN(at::Device device, parse_device(options.device));
  residency::Options o;
  o.vram_limit = gib_to_bytes(options.vram_limit_gb);
  o.reserve = gib_to_bytes(options.reserve_vram_gb);
  o.highvram = options.highvram;
  o.lowvram = options.lowvram;
  return guard_torch("setting up " + options.device + " memory", [&]() -> Status {
    if (device.is_cuda()) {
      const runtime::DeviceMemory m = runtime::device_memory(device);
      if (o.vram_limit > m.total) {
        return Status::invalid_argument("--vram-limit " + std::to_string(options.vram_limit_gb) +
                                        " GB is more than " + options.device + " has (" +
                                        std::to_string(m.total / (1 << 20)) + " MiB)");
      }
      const int64_t budget = (o.vram_limit > 0 ? o.vram_limit : m.total) - o.reserve;
      if (budget <= 0) {
        return Status::invalid_argument("--reserve-vram " + std::to_string(options.reserve_vram_gb) +
                                        " GB leaves nothing of " + options.device);
      }
    }
    residency::configure(device, o);
    return Status::ok();
  });
}

Result<DeviceMemoryInfo> device_memory_info(const std::string& name) {
  ND_ASSIGN_OR_RETURN(at::Device device, parse_device(name));
  DeviceMemoryInfo info;
  const runtime::DeviceMemory m = runtime::device_memory(device);
  info.vram_total = m.total;
  info.vram_free = m.free;
  if (device.is_cpu()) {
    info.name = "cpu";
    info.type = "cpu";
    return info;
  }
  info.type = "cuda";
  info.index = device.has_index() ? device.index() : 0;
  info.name = "cuda:" + std::to_string(info.index);
#ifdef NETDIST_CUDA
  info.name += std::string(" ") + at::cuda::getDeviceProperties(info.index)->name;
#endif
  info.vram_free = m.free + (m.torch_reserved - m.torch_allocated);
  info.torch_vram_total = m.torch_reserved;
  info.torch_vram_free = m.torch_reserved - m.torch_allocated;
  return info;
}

void free_device_memory(const std::string& name, bool unload_models) {
  auto device = parse_device(name);
  if (!device.is_ok() || device->is_cpu()) return;
  if (unload_models) {
    residency::unload_all(*device);
  } else {
    runtime::release_cached_memory(*device);
  }
}

}  // namespace netdist
