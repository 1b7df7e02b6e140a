// Runs the UNet's per-image calls of one sampling as CUDA graphs, several images at once on parallel streams.
//
// A sampler calls the UNet once per image and step (engine.h: that is what makes a row's result independent
// of the batch it came in), always with the same shapes. At such small batches the GPU is starved twice:
// by kernel launches (SD1.5 512², one image: about 16 ms of launch overhead per step on an H200) and by
// occupancy (one image's kernels leave most of the chip idle). GraphedCalls fixes both without changing a
// single kernel: each call of a shape is captured once per lane (a CUDA stream) into a graph with static
// input buffers and replayed from then on, and run_each spreads independent calls over the lanes so the
// replays overlap. The first call of a shape on a lane runs eagerly (the warm-up capture needs). Replays run
// the same kernels on the same data, so results are bit-identical to eager calls whatever the lane or the
// overlap (cuda_graphs_test.cpp checks eager = replay and split = unsplit with graphs on).
//
// While alive, a GraphedCalls makes a side stream current (capture cannot use the default stream); it orders
// that stream after the caller's on entry and the caller's after it on exit. Graphs and their memory pools
// die with the object, so weights patched between samplings (LoRA) are never stale. On the CPU, with
// `enabled` false, or in a build without CUDA, calls simply run one after the other. A call that cannot be
// captured (a host sync inside) runs eagerly from then on, with one warning.
// Memory: every lane has one graph memory pool, shared by its shapes; it holds about one call's activations.
// Before the first capture the warm-up's cached activations are given back to the driver. `max_lanes`
// (NETDIST_UNET_STREAMS, 1–8, overrides it) is the most lanes used; `memory_budget` (bytes, < 0: no bound)
// bounds the pools together: once the first capture shows what a pool costs, only as many lanes run as
// the budget holds (at least one). NETDIST_MEMORY_LOG=1 prints the pool size and the lanes chosen.
// Thread-safety: one object per sampling call, used from the thread that made it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <ATen/ATen.h>

namespace netdist::runtime {

class GraphedCalls {
 public:
  using Fn = std::function<at::Tensor(const std::vector<at::Tensor>& inputs)>;

  GraphedCalls(const at::Device& device, bool enabled, int max_lanes = 4, int64_t memory_budget = -1);
  ~GraphedCalls();
  GraphedCalls(const GraphedCalls&) = delete;
  GraphedCalls& operator=(const GraphedCalls&) = delete;

  // For every i: outs[i].copy_(fn(calls[i])). calls[i] are device tensors (views are fine; fn sees
  // contiguous copies) made on the current stream; outs[i] are views of tensors made on the current stream,
  // with fn's result shape. fn must be capturable: no host synchronisation, nothing that depends on values.
  // When this returns, the current stream is ordered after every call.
  void run_each(const std::vector<std::vector<at::Tensor>>& calls, const std::vector<at::Tensor>& outs,
                const Fn& fn);

  // How many calls were replayed from a graph (tests, benchmarks).
  int64_t replays() const;
  // True when this build and device capture graphs at all.
  bool active() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace netdist::runtime
