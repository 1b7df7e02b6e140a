#include "engine/residency.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <mutex>

#include "core/log.h"
#include "engine/runtime/device_memory.h"

namespace netdist::residency {

namespace {

bool memory_log() {
  static const bool on = std::getenv("NETDIST_MEMORY_LOG") != nullptr;
  return on;
}

}  // namespace

class Registry {
 public:
  static Registry& get() {
    static Registry* registry = new Registry();  // never destroyed: tickets may outlive static destruction
    return *registry;
  }

  struct Slot {
    Ticket* ticket = nullptr;
    bool on_device = false;
    int running = 0;
    uint64_t last_used = 0;
  };

  std::mutex mutex;
  Options options;
  std::list<Slot> slots;
  uint64_t clock = 0;

  Slot* find(const Ticket* t) {
    for (Slot& s : slots) {
      if (s.ticket == t) return &s;
    }
    return nullptr;
  }

  // Under `mutex`.
  int64_t available_locked(const at::Device& device) {
    const runtime::DeviceMemory m = runtime::device_memory(device);
    const int64_t limit = options.vram_limit > 0 ? std::min(options.vram_limit, m.total) : m.total;
    const int64_t cached = m.torch_reserved - m.torch_allocated;
    return std::min(limit - options.reserve - m.torch_allocated, m.free + cached - options.reserve);
  }

  void move_out(Slot& s) {
    s.ticket->module_->to(at::kCPU);
    s.on_device = false;
    if (memory_log()) log::info("memory: moved {} to RAM", s.ticket->name_);
  }

  // Under `mutex`: evicts idle slots of `device`, least recently used first, until `bytes` fit.
  int64_t make_room_locked(const at::Device& device, int64_t bytes, const Slot* keep) {
    runtime::release_cached_memory(device);
    int64_t avail = available_locked(device);
    if (options.highvram) return avail;
    while (avail < bytes) {
      Slot* victim = nullptr;
      for (Slot& s : slots) {
        if (&s == keep || !s.on_device || s.running > 0 || s.ticket->device_ != device) continue;
        if (!victim || s.last_used < victim->last_used) victim = &s;
      }
      if (!victim) break;
      move_out(*victim);
      runtime::release_cached_memory(device);
      avail = available_locked(device);
    }
    return avail;
  }
};

Ticket::Ticket(torch::nn::Module* module, at::Device device, std::string name, int64_t bytes, bool on_device)
    : module_(module), device_(device), name_(std::move(name)), bytes_(bytes) {
  Registry& r = Registry::get();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.slots.push_back({this, on_device, 0, ++r.clock});
}

Ticket::~Ticket() {
  Registry& r = Registry::get();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.slots.remove_if([this](const Registry::Slot& s) { return s.ticket == this; });
}

void configure(const at::Device& device, const Options& o) {
  Registry& r = Registry::get();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.options = o;
  if (device.is_cuda()) runtime::set_memory_cap(device, o.vram_limit);
}

Options options() {
  Registry& r = Registry::get();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.options;
}

int64_t module_bytes(torch::nn::Module& module) {
  int64_t bytes = 0;
  for (const at::Tensor& p : module.parameters()) bytes += p.numel() * p.element_size();
  for (const at::Tensor& b : module.buffers()) bytes += b.numel() * b.element_size();
  return bytes;
}

std::shared_ptr<Ticket> track(torch::nn::Module& module, const at::Device& device, std::string name,
                              bool on_device) {
  if (!device.is_cuda()) return nullptr;
  return std::make_shared<Ticket>(&module, device, std::move(name), module_bytes(module), on_device);
}

void acquire(Ticket& t) {
  Registry& r = Registry::get();
  std::lock_guard<std::mutex> lock(r.mutex);
  Registry::Slot* s = r.find(&t);
  if (!s) return;
  s->last_used = ++r.clock;
  if (!s->on_device) {
    r.make_room_locked(t.device(), t.bytes(), s);
    t.module()->to(t.device());
    s->on_device = true;
    if (memory_log()) log::info("memory: moved {} to {}", t.name(), t.device().str());
  }
  ++s->running;
}

void release(Ticket& t) {
  Registry& r = Registry::get();
  std::lock_guard<std::mutex> lock(r.mutex);
  Registry::Slot* s = r.find(&t);
  if (!s) return;
  s->running = std::max(0, s->running - 1);
  s->last_used = ++r.clock;
  if (s->running == 0 && r.options.lowvram && s->on_device) {
    r.move_out(*s);
  }
}

int64_t make_room(const at::Device& device, int64_t bytes) {
  if (!device.is_cuda()) return bytes;
  Registry& r = Registry::get();
  std::lock_guard<std::mutex> lock(r.mutex);
  const int64_t avail = r.make_room_locked(device, bytes, nullptr);
  if (memory_log()) {
    log::info("memory: room for {:.1f} MiB asked, {:.1f} MiB available", bytes / 1048576.0, avail / 1048576.0);
  }
  return avail;
}

int64_t available(const at::Device& device) {
  if (!device.is_cuda()) return runtime::device_memory(device).free;
  Registry& r = Registry::get();
  std::lock_guard<std::mutex> lock(r.mutex);
  return r.available_locked(device);
}

void unload_all(const at::Device& device) {
  Registry& r = Registry::get();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (Registry::Slot& s : r.slots) {
    if (s.on_device && s.running == 0 && s.ticket->device() == device) r.move_out(s);
  }
  runtime::release_cached_memory(device);
}

std::vector<Entry> entries() {
  Registry& r = Registry::get();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<Entry> out;
  for (const Registry::Slot& s : r.slots)
    out.push_back({s.ticket->name(), s.ticket->bytes(), s.on_device, s.running > 0});
  return out;
}

}  // namespace netdist::residency
