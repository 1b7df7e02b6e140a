// Where model weights live: the engine's model memory manager (ComfyUI's model_management, per module).
//
// Every module of a loaded model (each text encoder, the UNet, the VAE) on a CUDA device is registered here
// with its weight bytes. A module is on the GPU or in RAM. Before a module runs (OnDevice in model.h) it is
// brought onto the GPU; if the GPU's budget has no room for it, the least recently used modules that are not
// running are moved to RAM first, as many as needed. Before sampling or decoding, the caller asks for room
// for its activations the same way (make_room). With --lowvram a module goes back to RAM after each call;
// with
// --highvram nothing is ever moved out.
//
// Budget: the device's memory (or --vram-limit, which also caps libtorch's allocator so that a big card
// behaves like a small one) minus --reserve-vram; what libtorch has allocated counts against it, and so does
// what other processes hold (the driver's free memory bounds it too).
// Dropping a model from RAM is the model cache's business (nodes/node_env.h, --max-loaded-models); a module
// leaves this registry when the last handle of its model goes.
// Thread-safety: every function may be called from any thread; moves happen under one process-wide lock,
// and a module that is running (acquired) is never moved.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/runtime/torch_pch.h"

namespace netdist::residency {

struct Options {
  int64_t vram_limit = 0;  // bytes netdist may use on the device; 0 = the whole device
  int64_t reserve = 0;     // bytes left for other programs (--reserve-vram)
  bool highvram = false;   // never move weights out; graphs may use any memory
  bool lowvram = false;    // weights live in RAM between calls
};

// Process-wide; the last call wins. Applies the cap to libtorch's allocator on `device` when vram_limit > 0.
void configure(const at::Device& device, const Options& options);
Options options();

// One registered module. Held (shared) by every handle of its model; unregisters when the last goes.
class Ticket {
 public:
  Ticket(torch::nn::Module* module, at::Device device, std::string name, int64_t bytes, bool on_device);
  ~Ticket();
  Ticket(const Ticket&) = delete;
  Ticket& operator=(const Ticket&) = delete;

  torch::nn::Module* module() const { return module_; }
  const std::string& name() const { return name_; }
  int64_t bytes() const { return bytes_; }
  const at::Device& device() const { return device_; }

 private:
  friend class Registry;
  torch::nn::Module* module_;
  at::Device device_;
  std::string name_;
  int64_t bytes_;
};

// The weight bytes (parameters and buffers) of a module.
int64_t module_bytes(torch::nn::Module& module);

// Registers a module; `on_device` says where it is now. Modules on the CPU device are not tracked (nullptr).
std::shared_ptr<Ticket> track(torch::nn::Module& module, const at::Device& device, std::string name,
                              bool on_device);

// Brings the ticket's module onto its device (making room first) and marks it running until release.
// Throws what libtorch throws (out of memory included); callers run inside guard_torch.
void acquire(Ticket& ticket);
void release(Ticket& ticket);

// Moves idle modules of `device` to RAM, least recently used first, until `bytes` fit in the budget (or
// nothing idle is left). Returns the bytes available afterwards. Gives libtorch's cached blocks back first.
int64_t make_room(const at::Device& device, int64_t bytes);

// Bytes available on the device under the budget now (after cached blocks are counted as free).
int64_t available(const at::Device& device);

// Moves every idle module to RAM (POST /free with unload_models) and gives cached blocks back.
void unload_all(const at::Device& device);

// What is registered, for /system_stats, tests and NETDIST_MEMORY_LOG: name, bytes, on device.
struct Entry {
  std::string name;
  int64_t bytes = 0;
  bool on_device = false;
  bool running = false;
};
std::vector<Entry> entries();

}  // namespace netdist::residency
