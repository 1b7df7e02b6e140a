// parallel_bench: every step-group mode of issue #17 against one member, measured in the same run — CFG
// split (2 members), tiles (2), CFG split × tiles (4) and rows × CFG (4, a batch of 2). Members are threads
// of this process, each with its own Model on its own device (`--devices`, cycled), joined by Gloo groups
// over loopback (engine/runtime/c10d_group.h; the combined modes through make_cfg_grid). On several GPUs
// of one host this is the speed-up of each mode (issue #22's run); on a CPU the members share the cores, so
// the speed-ups there say little beyond the communication cost.
//
//   parallel_bench [--devices cpu|cuda:0,cuda:1,cuda:2,cuda:3] [--size 128] [--steps 8] [--checkpoint PATH]
//
// Prints per mode: the seconds of one sample() alone (batch 1, or 2 for rows × CFG) and in the group, the
// speed-up, and the communication per sampler step (rank 0's wall time inside collectives / steps: the
// transfer plus any wait for a slower member). TiledDiffusion: Mixture of Diffusers, tiles of size/2 px
// overlapping by 16, one tile per batch (the alone run is the tiled model too).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/runtime/c10d_group.h"
#include "netdist/engine.h"
#include "netdist/source_dir.h"
#include "netdist/tiled_diffusion.h"

namespace {

using netdist::StepGroup;

double par_bench_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Adds the wall time of each collective to `seconds`.
class ParBenchTimed : public StepGroup {
 public:
  ParBenchTimed(std::shared_ptr<StepGroup> inner, double* seconds) : inner_(std::move(inner)), seconds_(seconds) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  netdist::Result<std::vector<at::Tensor>> all_gather(const at::Tensor& t) override {
    const double t0 = par_bench_now();
    auto out = inner_->all_gather(t);
    *seconds_ += par_bench_now() - t0;
    return out;
  }
  netdist::Status broadcast(at::Tensor& t, int root) override {
    const double t0 = par_bench_now();
    auto out = inner_->broadcast(t, root);
    *seconds_ += par_bench_now() - t0;
    return out;
  }
  std::string describe(int rank) const override { return inner_->describe(rank); }

 private:
  std::shared_ptr<StepGroup> inner_;
  double* seconds_;
};

struct ParBenchMember {
  std::shared_ptr<netdist::Model> plain, tiled;
  netdist::Conditioning pos, neg;
};

struct ParBenchConfig {
  int size = 128, steps = 8;
};

netdist::SampleRequest par_bench_request(const ParBenchMember& m, const ParBenchConfig& c, int batch) {
  netdist::SampleRequest req;
  req.seed = 7;
  req.steps = c.steps;
  req.cfg = 6.0;
  req.latent = netdist::empty_latent(*m.plain, batch, c.size, c.size);
  return req;
}

void par_bench_check(const netdist::Status& s, const char* what) {
  if (s.is_ok()) return;
  std::fprintf(stderr, "parallel_bench: %s: %s\n", what, s.to_string().c_str());
  std::exit(1);
}

// Seconds of one sample() of `members` threads (the second of two passes) and rank 0's collective seconds
// in it. `setup(rank, store, req, comm)` joins the groups and fills the request; it returns the model.
struct ParBenchRun {
  double seconds = 0, comm = 0;
};
using ParBenchSetup = std::function<netdist::Model*(int, const c10::intrusive_ptr<c10d::Store>&,
                                                    netdist::SampleRequest&, double*)>;
ParBenchRun par_bench_group(std::vector<ParBenchMember>& members, int n, int batch, const ParBenchConfig& c,
                            const ParBenchSetup& setup) {
  auto store = netdist::runtime::make_hash_store();
  ParBenchRun run;
  std::vector<std::thread> threads;
  for (int rank = 0; rank < n; ++rank) {
    threads.emplace_back([&, rank] {
      double comm = 0;
      netdist::SampleRequest req = par_bench_request(members[rank], c, batch);
      netdist::Model* model = setup(rank, store, req, &comm);
      for (int pass = 0; pass < 2; ++pass) {  // the first pass warms up
        comm = 0;
        const double t0 = par_bench_now();
        auto out = netdist::sample(*model, members[rank].pos, members[rank].neg, req, nullptr);
        par_bench_check(out.status(), "sample");
        if (rank == 0) run = {par_bench_now() - t0, comm};
      }
    });
  }
  for (auto& t : threads) t.join();
  return run;
}

double par_bench_alone(ParBenchMember& m, const ParBenchConfig& c, int batch, bool tiled) {
  double s = 0;
  for (int pass = 0; pass < 2; ++pass) {
    netdist::SampleRequest req = par_bench_request(m, c, batch);
    const double t0 = par_bench_now();
    par_bench_check(netdist::sample(tiled ? *m.tiled : *m.plain, m.pos, m.neg, req, nullptr).status(), "alone");
    s = par_bench_now() - t0;
  }
  return s;
}

netdist::runtime::StepGroupOptions par_bench_options() {
  netdist::runtime::StepGroupOptions o;
  o.host = "127.0.0.1";
  o.timeout = std::chrono::milliseconds(600000);
  return o;
}

void par_bench_print(const char* mode, int members, double alone, const ParBenchRun& run, int steps) {
  std::printf("%-10s %d members: alone %.3f s, group %.3f s, speed-up %.2fx, communication %.2f ms/step\n", mode,
              members, alone, run.seconds, alone / run.seconds, run.comm / steps * 1e3);
}

}  // namespace

int main(int argc, char** argv) {
  std::string devices = "cpu";
  std::string checkpoint =
      (std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string();
  ParBenchConfig c;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--devices"))
      devices = argv[i + 1];
    else if (!std::strcmp(argv[i], "--size"))
      c.size = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--steps"))
      c.steps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--checkpoint"))
      checkpoint = argv[i + 1];
  }
  std::vector<std::string> device_list;
  for (size_t at = 0; at <= devices.size();) {
    const size_t comma = std::min(devices.find(',', at), devices.size());
    device_list.push_back(devices.substr(at, comma - at));
    at = comma + 1;
  }
  std::vector<ParBenchMember> members(4);
  netdist::TiledDiffusionOptions tiles;
  tiles.method = netdist::TileMethod::kMixtureOfDiffusers;
  tiles.tile_width = tiles.tile_height = c.size / 2;
  tiles.tile_overlap = 16;
  tiles.tile_batch_size = 1;
  for (int r = 0; r < 4; ++r) {
    netdist::EngineOptions options;
    options.device = device_list[size_t(r) % device_list.size()];
    auto model = netdist::load_model(checkpoint, options);
    par_bench_check(model.status(), "load");
    members[r].plain = *model;
    auto tiled = netdist::apply_tiled_diffusion(*model, tiles);
    par_bench_check(tiled.status(), "TiledDiffusion");
    members[r].tiled = *tiled;
    members[r].pos = netdist::encode_prompt(**model, "a red heart").value();
    members[r].neg = netdist::encode_prompt(**model, "blurry").value();
  }
  std::printf("parallel_bench: devices %s, %d×%d px, %d steps, cfg 6\n", devices.c_str(), c.size, c.size, c.steps);
  const double alone = par_bench_alone(members[0], c, 1, false);
  const double alone_tiled = par_bench_alone(members[0], c, 1, true);
  const double alone_batch = par_bench_alone(members[0], c, 2, false);
  auto plain_group = [&](bool tiled) {
    return [&, tiled](int rank, const auto& store, netdist::SampleRequest& req, double* comm) {
      auto g = netdist::runtime::make_step_group(store, rank, 2, par_bench_options());
      par_bench_check(g.status(), "group");
      auto timed = std::make_shared<ParBenchTimed>(*g, comm);
      if (tiled) {
        req.tile_group = timed;
      } else {
        req.group = timed;
        req.cfg_split = true;
      }
      return tiled ? members[rank].tiled.get() : members[rank].plain.get();
    };
  };
  auto grid = [&](bool tiled) {
    return [&, tiled](int rank, const auto& store, netdist::SampleRequest& req, double* comm) {
      auto g = netdist::runtime::make_cfg_grid(store, rank, 4, par_bench_options());
      par_bench_check(g.status(), "grid");
      req.group = std::make_shared<ParBenchTimed>(g->pair, comm);
      req.cfg_split = true;
      (tiled ? req.tile_group : req.row_group) = std::make_shared<ParBenchTimed>(g->cross, comm);
      return tiled ? members[rank].tiled.get() : members[rank].plain.get();
    };
  };
  par_bench_print("cfg", 2, alone, par_bench_group(members, 2, 1, c, plain_group(false)), c.steps);
  par_bench_print("tiles", 2, alone_tiled, par_bench_group(members, 2, 1, c, plain_group(true)), c.steps);
  par_bench_print("cfg+tiles", 4, alone_tiled, par_bench_group(members, 4, 1, c, grid(true)), c.steps);
  par_bench_print("rows x cfg", 4, alone_batch, par_bench_group(members, 4, 2, c, grid(false)), c.steps);
  return 0;
}
