// tiny_cpu_bench: the embedded model on the CPU — 4 images at 64×64, 20 euler steps, CFG 5 — with 1 thread
// and with N threads (default 2), timing text encoding, sampling and VAE decode separately. Prints seconds
// and the N-thread / 1-thread ratio (the baseline is measured in the same run). Target: under 5 s for the
// 4 images on 2 cores.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <ATen/Parallel.h>

#include "netdist/engine.h"
#include "netdist/source_dir.h"

namespace {

struct Times {
  double encode = 0, sample = 0, decode = 0;
  double total() const { return encode + sample + decode; }
};

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

Times run_once(netdist::Model& model) {
  Times t;
  double t0 = now();
  auto pos = netdist::encode_prompt(model, "red heart").value();
  auto neg = netdist::encode_prompt(model, "").value();
  t.encode = now() - t0;
  netdist::SampleRequest req;
  req.seed = 42;
  req.steps = 20;
  req.cfg = 5.0;
  req.latent = netdist::empty_latent(model, 4, 64, 64);
  t0 = now();
  at::Tensor latent = netdist::sample(model, pos, neg, req, nullptr).value();
  t.sample = now() - t0;
  t0 = now();
  at::Tensor images = netdist::decode(model, latent).value();
  t.decode = now() - t0;
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string path =
      argc > 1 ? argv[1]
               : (std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string();
  const int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  auto model = netdist::load_model(path, {});
  if (!model.is_ok()) {
    std::fprintf(stderr, "tiny_cpu_bench: %s\n", model.status().to_string().c_str());
    return 1;
  }
  run_once(**model);  // warm-up
  at::set_num_threads(1);
  Times one = run_once(**model);
  at::set_num_threads(threads);
  Times many = run_once(**model);
  std::printf("tiny model, 4 images 64x64, 20 steps euler, CFG 5, CPU\n");
  std::printf("| threads | encode s | sample s | decode s | total s |\n|---|---|---|---|---|\n");
  std::printf("| 1 | %.3f | %.3f | %.3f | %.3f |\n", one.encode, one.sample, one.decode, one.total());
  std::printf("| %d | %.3f | %.3f | %.3f | %.3f |\n", threads, many.encode, many.sample, many.decode, many.total());
  std::printf("speed-up %d threads vs 1: %.2fx; target < 5 s: %s\n", threads, one.total() / many.total(),
              many.total() < 5.0 ? "met" : "missed");
  return 0;
}
