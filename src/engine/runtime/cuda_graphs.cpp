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

int lane_count() {
  const char* env = std::getenv("NETDIST_UNET_STREAMS");
  const int n = env ? std::atoi(env) : 4;
  return std::clamp(n, 1, 8);
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
  c10::cuda::CUDAStream caller;
  c10::cuda::CUDAStream main;
  std::vector<c10::cuda::CUDAStream> lanes;
  std::optional<c10::cuda::CUDAStreamGuard> guard;
  std::map<std::pair<std::string, size_t>, Graph> graphs;  // (shape signature, lane)
  std::map<std::string, bool> shapes;                      // signatures seen; false = too many, eager
  int64_t replays = 0;

  explicit Impl(const at::Device& device)
      : caller(c10::cuda::getCurrentCUDAStream(device.index())),
        main(c10::cuda::getStreamFromPool(false, device.index())) {
    for (int i = lane_count(); i > 0; --i)
      lanes.push_back(c10::cuda::getStreamFromPool(false, device.index()));
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
      for (const at::Tensor& t : inputs) g.inputs.push_back(t.contiguous().clone());
      auto graph = std::make_unique<at::cuda::CUDAGraph>();
      try {
        graph->capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
        g.output = fn(g.inputs);
        graph->capture_end();
      } catch (const std::exception& ex) {
        try {
          graph->capture_end();
        } catch (...) {
        }
        (void)cudaGetLastError();
        std::fprintf(stderr, "netdist: CUDA graph capture failed, running this call eagerly: %s\n",
                     ex.what());
        g = Graph{};
        g.eager = true;
        return fn(contiguous_copies(inputs));
      }
      g.graph = std::move(graph);
    } else {
      for (size_t i = 0; i < inputs.size(); ++i) g.inputs[i].copy_(inputs[i]);
    }
    g.graph->replay();
    ++replays;
    return g.output;
  }
};

GraphedCalls::GraphedCalls(const at::Device& device, bool enabled) {
  if (enabled && device.is_cuda()) impl_ = std::make_unique<Impl>(device);
}

void GraphedCalls::run_each(const std::vector<std::vector<at::Tensor>>& calls,
                            const std::vector<at::Tensor>& outs, const Fn& fn) {
  if (!impl_) return run_sequentially(calls, outs, fn);
  const size_t used = std::min(calls.size(), impl_->lanes.size());
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

GraphedCalls::GraphedCalls(const at::Device&, bool) {}

void GraphedCalls::run_each(const std::vector<std::vector<at::Tensor>>& calls,
                            const std::vector<at::Tensor>& outs, const Fn& fn) {
  run_sequentially(calls, outs, fn);
}

int64_t GraphedCalls::replays() const { return 0; }
bool GraphedCalls::active() const { return false; }

#endif

GraphedCalls::~GraphedCalls() = default;

}  // namespace netdist::runtime
