// CUDA graph replay of the UNet (runtime/cuda_graphs.h) on a GPU: a replayed call equals the eager call bit
// for bit, whole samplings with graphs equal those without, and split = unsplit still holds with graphs on.
// Skipped on machines without CUDA; the CPU build runs every call eagerly (checked below as well).
#include <gtest/gtest.h>

#include <filesystem>
#include <torch/torch.h>

#include "core/skip_test_util.h"
#include "engine/runtime/cuda_graphs.h"
#include "netdist/engine.h"
#include "netdist/source_dir.h"

namespace netdist {
namespace {

std::shared_ptr<Model> tiny_on(const std::string& device, bool graphs) {
  EngineOptions o;
  o.device = device;
  o.cuda_graphs = graphs;
  auto m =
      load_model((std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string(), o);
  EXPECT_TRUE(m.is_ok()) << m.status().to_string();
  return m.is_ok() ? *m : nullptr;
}

at::Tensor render(Model& m, int64_t batch, int64_t row_begin, int64_t row_end, const std::string& sampler) {
  Conditioning pos = encode_prompt(m, "a red heart").value();
  Conditioning neg = encode_prompt(m, "").value();
  SampleRequest req;
  req.seed = 7;
  req.steps = 6;
  req.cfg = 6.0;
  req.sampler = sampler;
  req.latent = empty_latent(m, batch, 64, 64);
  req.row_begin = row_begin;
  req.row_end = row_end;
  return sample(m, pos, neg, req, nullptr).value();
}

// Runs fn over `count` calls (rows i of x and b) through run_each; returns the stacked results on the CPU.
at::Tensor run_rows(runtime::GraphedCalls& graphs, const at::Tensor& x, const at::Tensor& b,
                    const runtime::GraphedCalls::Fn& fn) {
  const int64_t count = x.size(0);
  at::Tensor out = at::empty({count, 8}, x.options());
  std::vector<std::vector<at::Tensor>> calls;
  std::vector<at::Tensor> outs;
  for (int64_t i = 0; i < count; ++i) {
    calls.push_back({x[i], b[i]});
    outs.push_back(out[i]);
  }
  graphs.run_each(calls, outs, fn);
  return out.cpu();
}

TEST(CudaGraphs, CpuRunsEagerly) {
  runtime::GraphedCalls graphs(at::Device(at::kCPU), true);
  EXPECT_FALSE(graphs.active());
  at::Tensor x = at::randn({5, 8, 16});
  at::Tensor b = at::randn({5, 8});
  auto fn = [](const std::vector<at::Tensor>& v) { return v[0].sum(-1) * 2 + v[1]; };
  EXPECT_TRUE(torch::equal(run_rows(graphs, x, b, fn), x.sum(-1) * 2 + b));
  EXPECT_EQ(graphs.replays(), 0);
}

TEST(CudaGraphs, ReplayOnParallelStreamsEqualsEagerBitForBit) {
  if (!torch::cuda::is_available()) ND_SKIP_NEEDS_GPU("no CUDA device (or a CPU build of libtorch)");
  const at::Device dev(at::kCUDA, 0);
  const auto half = at::TensorOptions().device(dev).dtype(at::kHalf);
  at::Tensor w = at::randn({256, 256}, half);
  auto fn = [&](const std::vector<at::Tensor>& v) { return at::gelu(at::matmul(v[0], w)).sum(-1) + v[1]; };
  // 3 rounds of 12 calls: every lane warms up, captures and then replays.
  for (int round = 0; round < 3; ++round) {
    at::Tensor x = at::randn({12, 8, 256}, half);
    at::Tensor b = at::randn({12, 8}, half);
    runtime::GraphedCalls off(dev, false);
    runtime::GraphedCalls on(dev, true);
    ASSERT_TRUE(on.active());
    at::Tensor eager = run_rows(off, x, b, fn);
    at::Tensor first = run_rows(on, x, b, fn);
    at::Tensor second = run_rows(on, x, b, fn);
    EXPECT_GT(on.replays(), 0);
    EXPECT_TRUE(torch::equal(eager, first)) << "round " << round;
    EXPECT_TRUE(torch::equal(eager, second)) << "round " << round;
  }
}

TEST(CudaGraphs, SamplingWithGraphsEqualsEagerAndSplitEqualsUnsplit) {
  if (!torch::cuda::is_available()) ND_SKIP_NEEDS_GPU("no CUDA device (or a CPU build of libtorch)");
  auto on = tiny_on("cuda", true);
  auto off = tiny_on("cuda", false);
  ASSERT_TRUE(on && off);
  for (const std::string sampler : {"euler", "euler_ancestral", "dpmpp_2m"}) {
    at::Tensor whole = render(*on, 5, 0, -1, sampler);
    EXPECT_TRUE(torch::equal(whole, render(*off, 5, 0, -1, sampler))) << sampler << ": graphs changed the result";
    at::Tensor tail = render(*on, 5, 3, 5, sampler);
    EXPECT_TRUE(torch::equal(tail, whole.slice(0, 3, 5))) << sampler << ": rows [3, 5) differ from the batch";
  }
}

}  // namespace
}  // namespace netdist
