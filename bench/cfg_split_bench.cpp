// cfg_split_bench: CFG split (issue #17) against one member, measured in the same run. Two members are two
// threads of this process, each with its own Model on its own device, joined by a Gloo step group over
// loopback; on two GPUs of one host this is the CFG-split speed-up, on a CPU the two share the cores.
//
//   cfg_split_bench [--devices cpu,cpu|cuda:0,cuda:1] [--size 64] [--steps 20] [--checkpoint PATH]
//
// Prints the seconds of one sample() alone and split, their ratio (the speed-up), and the time of one
// exchange (an all_gather of one latent-sized prediction), which is the communication cost per UNet call.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "engine/runtime/c10d_group.h"
#include "netdist/engine.h"
#include "netdist/source_dir.h"

namespace {

using netdist::Conditioning;
using netdist::Model;

struct CfgBenchMember {
  std::shared_ptr<Model> model;
  Conditioning pos, neg;
};

double cfg_bench_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

netdist::SampleRequest cfg_bench_request(const Model& model, int size, int steps) {
  netdist::SampleRequest req;
  req.seed = 7;
  req.steps = steps;
  req.cfg = 6.0;
  req.latent = netdist::empty_latent(model, 1, size, size);
  return req;
}

// Seconds of one split sample() (both members), and of one exchange (mean over `reps`).
std::pair<double, double> cfg_bench_split(CfgBenchMember* members, int size, int steps, int reps) {
  auto store = netdist::runtime::make_hash_store();
  double split_s = 0, exchange_s = 0;
  std::thread threads[2];
  for (int rank = 0; rank < 2; ++rank) {
    threads[rank] = std::thread([&, rank] {
      netdist::runtime::StepGroupOptions options;
      options.host = "127.0.0.1";
      options.timeout = std::chrono::milliseconds(600000);
      auto group = netdist::runtime::make_step_group(store, rank, 2, options);
      if (!group.is_ok()) {
        std::fprintf(stderr, "cfg_split_bench: %s\n", group.status().to_string().c_str());
        std::exit(1);
      }
      netdist::SampleRequest req = cfg_bench_request(*members[rank].model, size, steps);
      req.group = *group;
      req.cfg_split = true;
      for (int pass = 0; pass < 2; ++pass) {  // the first pass warms up
        const double t0 = cfg_bench_now();
        auto out = netdist::sample(*members[rank].model, members[rank].pos, members[rank].neg, req, nullptr);
        if (!out.is_ok()) {
          std::fprintf(stderr, "cfg_split_bench: rank %d: %s\n", rank, out.status().to_string().c_str());
          std::exit(1);
        }
        if (rank == 0) split_s = cfg_bench_now() - t0;
      }
      at::Tensor packed = at::zeros({req.latent.numel() + 1}, req.latent.options());
      const double t0 = cfg_bench_now();
      for (int i = 0; i < reps; ++i) {
        if (!(*group)->all_gather(packed).is_ok()) std::exit(1);
      }
      if (rank == 0) exchange_s = (cfg_bench_now() - t0) / reps;
    });
  }
  for (auto& t : threads) t.join();
  return {split_s, exchange_s};
}

}  // namespace

int main(int argc, char** argv) {
  std::string devices = "cpu,cpu";
  std::string checkpoint =
      (std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string();
  int size = 64, steps = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--devices"))
      devices = argv[i + 1];
    else if (!std::strcmp(argv[i], "--size"))
      size = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--steps"))
      steps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--checkpoint"))
      checkpoint = argv[i + 1];
  }
  const size_t comma = devices.find(',');
  const std::string device[2] = {devices.substr(0, comma),
                                 comma == std::string::npos ? devices : devices.substr(comma + 1)};
  CfgBenchMember members[2];
  for (int r = 0; r < 2; ++r) {
    netdist::EngineOptions options;
    options.device = device[r];
    auto model = netdist::load_model(checkpoint, options);
    if (!model.is_ok()) {
      std::fprintf(stderr, "cfg_split_bench: %s\n", model.status().to_string().c_str());
      return 1;
    }
    members[r].model = *model;
    members[r].pos = netdist::encode_prompt(**model, "a red heart").value();
    members[r].neg = netdist::encode_prompt(**model, "blurry").value();
  }
  double alone_s = 0;
  for (int pass = 0; pass < 2; ++pass) {
    netdist::SampleRequest req = cfg_bench_request(*members[0].model, size, steps);
    const double t0 = cfg_bench_now();
    if (!netdist::sample(*members[0].model, members[0].pos, members[0].neg, req, nullptr).is_ok()) return 1;
    alone_s = cfg_bench_now() - t0;
  }
  const auto [split_s, exchange_s] = cfg_bench_split(members, size, steps, 50);
  std::printf("cfg split, %s, %d×%d, %d steps: alone %.3f s, split %.3f s, speed-up %.2f×\n", devices.c_str(),
              size, size, steps, alone_s, split_s, alone_s / split_s);
  std::printf("exchange (all_gather of one latent-sized prediction): %.3f ms per UNet call\n",
              exchange_s * 1e3);
  return 0;
}
