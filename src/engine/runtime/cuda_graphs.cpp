#include "engine/runtime/cuda_graphs.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <utility>

#ifdef NETDIST_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "core/log.h"
#include "engine/runtime/device_memory.h"

namespace netdist::runtime {

namespace {

std::vector<at::Tensor> contiguous_copies(const std::vector<at::Tensor>& inputs) {
  std::vector<at::Tensor> out;
  out.reserve(inputs.size());
  for (const at::Tensor& t : inputs) out.push_back(t.contiguous());
  return out;
}

void run_sequentially(const std::vector<std::vector<at::Tensor>>& calls, const std::vector<at::Tensor>& outs,
                      const GraphedCalls::Fn& fn) {
  for (size_t i = 0; i < calls.size(); ++i) outs[i].copy_(fn(contiguous_copies(calls[i])));
}

}  // namespace

#ifdef NETDIST_CUDA

namespace {

// More distinct shapes than this in one sampling (area conditioning can produce several) run eagerly.
constexpr size_t kMaxShapes = 8;

int lane_count(int requested) {
  const char* env = std::getenv("NETDIST_UNET_STREAMS");
  const int n = env ? std::atoi(env) : requested;
  return std::clamp(n, 1, 8);
}

bool memory_log() {
  static const bool on = std::getenv("NETDIST_MEMORY_LOG") != nullptr;
  return on;
}

std::string signature(const std::vector<at::Tensor>& inputs) {
  std::string key;
  for (const at::Tensor& t : inputs) {
    key += std::to_string(static_cast<int>(t.scalar_type()));
    for (int64_t s : t.sizes()) key += "," + std::to_string(s);
    key += ";";
  }
  return key;
}

}  // namespace

struct GraphedCalls::Impl {
  struct Graph {
    int64_t seen = 0;
    bool eager = false;              // capture failed once: this shape runs eagerly on this lane
    std::vector<at::Tensor> inputs;  // static buffers the graph reads
    at::Tensor output;               // static buffer the graph writes
    std::unique_ptr<at::cuda::CUDAGraph> graph;
  };
  at::Device device;
  c10::cuda::CUDAStream caller;
  c10::cuda::CUDAStream main;
  std::vector<c10::cuda::CUDAStream> lanes;
  // One memory pool per lane, shared by the graphs of every shape on it: a lane replays its graphs one after
  // the other on one stream and copies each output out before the next call, so a graph may reuse what
  // another's intermediates used. Lanes run concurrently, so they never share a pool.
  std::vector<decltype(at::cuda::graph_pool_handle())> pools;
  bool warmups_released = false;
  int64_t memory_budget;    // bytes the pools may hold together; < 0 = no bound
  int64_t pool_bytes = 0;   // what the first capture took: the cost of one more lane
  size_t usable_lanes = 1;  // lanes the budget allows (known after the first capture)
  std::optional<c10::cuda::CUDAStreamGuard> guard;
  std::map<std::pair<std::string, size_t>, Graph> graphs;  // (shape signature, lane)
  std::map<std::string, bool> shapes;                      // signatures seen; false = too many, eager
  int64_t replays = 0;

  Impl(const at::Device& device, int max_lanes, int64_t budget)
      : device(device),
        caller(c10::cuda::getCurrentCUDAStream(device.index())),
        main(c10::cuda::getStreamFromPool(false, device.index())),
        memory_budget(budget) {
    for (int i = lane_count(max_lanes); i > 0; --i) {
      lanes.push_back(c10::cuda::getStreamFromPool(false, device.index()));
      pools.push_back(at::cuda::graph_pool_handle());
    }
    usable_lanes = lanes.size();
    at::cuda::CUDAEvent ready;
    ready.record(caller);
    ready.block(main);
    guard.emplace(main);
  }
  ~Impl() {
    at::cuda::CUDAEvent done;
    done.record(main);
    done.block(caller);
    guard.reset();
    graphs.clear();
  }

  // After a capture that took `bytes` of new pool memory: how many lanes the budget allows.
  void note_capture(int64_t bytes) {
    if (bytes <= pool_bytes) return;
    pool_bytes = bytes;
    if (memory_budget >= 0) {
      usable_lanes = std::clamp<size_t>(static_cast<size_t>(memory_budget / std::max<int64_t>(pool_bytes, 1)),
                                        1, lanes.size());
    }
    if (memory_log()) {
      log::info("memory: CUDA graph pool {:.1f} MiB; budget {:.1f} MiB; lanes {} of {}", pool_bytes / 1048576.0,
                memory_budget / 1048576.0, usable_lanes, lanes.size());
    }
  }

  // One call on the current stream (a lane): warm-up, capture or replay. The result is read before the next
  // call on this lane, on this lane.
  at::Tensor call(size_t lane, const std::vector<at::Tensor>& inputs, const Fn& fn) {
    const std::string key = signature(inputs);
    auto shape = shapes.find(key);
    if (shape == shapes.end()) shape = shapes.emplace(key, shapes.size() < kMaxShapes).first;
    if (!shape->second) return fn(contiguous_copies(inputs));
    Graph& g = graphs[{key, lane}];
    if (g.eager) return fn(contiguous_copies(inputs));
    if (!g.graph) {
      if (g.seen++ == 0) return fn(contiguous_copies(inputs));  // warm-up: lazy state is set up uncaptured
      if (lane >= usable_lanes) return fn(contiguous_copies(inputs));  // the budget was spent by lower lanes
      for (const at::Tensor& t : inputs) g.inputs.push_back(t.contiguous().clone());
      auto graph = std::make_unique<at::cuda::CUDAGraph>();
      // The warm-up's activations sit in the allocator's cache; give them back so that the pool below is
      // not paid on top of them.
      if (!warmups_released) {
        release_cached_memory(device);
        warmups_released = true;
      }
      const int64_t before = device_memory(device).torch_reserved;
      try {
        graph->capture_begin(pools[lane], cudaStreamCaptureModeThreadLocal);
        g.output = fn(g.inputs);
        graph->capture_end();
      } catch (const std::exception& ex) {
        try {
          graph->capture_end();
        } catch (...) {
        }
        (void)cudaGetLastError();
        log::warn("CUDA graph capture failed, running this call eagerly: {}", ex.what());
        g = Graph{};
        g.eager = true;
        return fn(contiguous_copies(inputs));
      }
      g.graph = std::move(graph);
      note_capture(device_memory(device).torch_reserved - before);
    } else {
      for (size_t i = 0; i < inputs.size(); ++i) g.inputs[i].copy_(inputs[i]);
    }
    g.graph->replay();
    ++replays;
    return g.output;
  }
};

GraphedCalls::GraphedCalls(const at::Device& device, bool enabled, int max_lanes, int64_t memory_budget) {
  if (enabled && device.is_cuda()) impl_ = std::make_unique<Impl>(device, max_lanes, memory_budget);
}

void GraphedCalls::run_each(const std::vector<std::vector<at::Tensor>>& calls,
                            const std::vector<at::Tensor>& outs, const Fn& fn) {
  if (!impl_) return run_sequentially(calls, outs, fn);
  const size_t used = std::min(calls.size(), impl_->usable_lanes);
  at::cuda::CUDAEvent ready;
  ready.record(impl_->main);
  for (size_t l = 0; l < used; ++l) ready.block(impl_->lanes[l]);
  // Inputs and outputs are views of tensors the main stream made and frees only after it waits for the
  // lanes below, so no lane ever touches memory the allocator has handed out again.
  for (size_t i = 0; i < calls.size(); ++i) {
    const size_t lane = i % used;
    c10::cuda::CUDAStreamGuard on_lane(impl_->lanes[lane]);
    outs[i].copy_(impl_->call(lane, calls[i], fn));
  }
  for (size_t l = 0; l < used; ++l) {
    at::cuda::CUDAEvent done;
    done.record(impl_->lanes[l]);
    done.block(impl_->main);
  }
}

int64_t GraphedCalls::replays() const { return impl_ ? impl_->replays : 0; }
bool GraphedCalls::active() const { return impl_ != nullptr; }

#else

struct GraphedCalls::Impl {};

GraphedCalls::GraphedCalls(const at::Device&, bool, int, int64_t) {}

void GraphedCalls::run_each(const std::vector<std::vector<at::Tensor>>& calls,
                            const std::vector<at::Tensor>& outs, const Fn& fn) {
  run_sequentially(calls, outs, fn);
}

int64_t GraphedCalls::replays() const { return 0; }
bool GraphedCalls::active() const { return false; }

#endif

GraphedCalls::~GraphedCalls() = default;

}  // namespace netdist::runtime
