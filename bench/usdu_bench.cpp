// usdu_bench: how much parallelism Ultimate SD Upscale leaves, and what the cluster makes of it.
// (1) Always: for a 2048² canvas in 512² tiles (padding 32, mask blur 8; seam fix width 64, padding 16,
//     blur 8), for each redraw × seam-fix mode:
//       exact        steps in dependency waves (usdu_plan.h usdu_waves): a step waits for every earlier step
//                    whose written pixels it reads or whose read pixels it writes — the result equals
//                    sequential USDU;
//       independent  every step reads the same source canvas: one wave, not USDU's picture.
//     Prints steps, waves, the largest and mean steps per wave, and the bound on the speed-up over one
//     worker (steps / waves, with unlimited equal workers).
// (2) --run N: times N redraw steps of the embedded tiny model on this machine's CPU, one process (tiles/s).
// (3) --cluster: the measured speed-up. For each worker count of --workers (default 1,2,3) and each mode of
//     --modes (default exact,independent): W `netdist worker` processes and a coordinator
//     (`serve --enable-distributed --no-local --workers ...`, the tile tasks of src/cluster/tile_jobs.h; with
//     one worker the prompt runs whole there), a --size² test card (default 256) through
//     UltimateSDUpscaleNoUpscale (--tile, default 64; padding 32 (16 below 128), Linear, no seam fix,
//     --steps, default 2, denoise 0.4) once to load the models, then timed from submit to /history. Prints
//     tiles (redraw steps), seconds, tiles/s, the speed-up over one worker of the same mode and the
//     waves' bound. --ckpt NAME (default the embedded tiny-emoji.safetensors) and --models-dir DIR pick
//     the checkpoint; --gpus G puts worker i (and the coordinator: 0) on cuda:(i mod G); --threads T
//     (default 1) per process; --binary PATH (default `netdist` next to this program).
//     CPU check:  usdu_bench --cluster --size 256 --tile 64
//     GPU (2048², SD1.5):  usdu_bench --cluster --size 2048 --tile 512 --steps 20 --gpus N --workers 1,2,...
//       --models-dir /path/to/models --ckpt v1-5-pruned-emaonly.safetensors
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <thread>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/http_client.h"
#include "cluster/netdist_child_process.h"
#include "io/png.h"
#include "netdist/engine.h"
#include "netdist/source_dir.h"
#include "nodes/usdu_nodes.h"
#include "nodes/usdu_plan.h"
#include "nodes/usdu_tiles.h"

namespace {

using netdist::nodes::UsduRedrawMode;
using netdist::nodes::UsduSeamFixMode;

void print_parallelism() {
  std::printf(
      "| redraw | seam fix | steps | exact waves | max/mean steps per wave | exact bound | independent bound "
      "|\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (UsduRedrawMode mode : {UsduRedrawMode::kLinear, UsduRedrawMode::kChess}) {
    for (int fix = 0; fix < 4; ++fix) {
      netdist::nodes::UsduSettings s;
      s.padding = 32;
      s.redraw = mode;
      s.seam_fix = static_cast<UsduSeamFixMode>(fix);
      auto canvas = netdist::nodes::usdu_canvas(2048, 2048, 1.0, s).value();
      auto steps = netdist::nodes::usdu_plan(s, canvas).value();
      using netdist::nodes::UsduTileMode;
      const auto exact = netdist::nodes::usdu_wave_stats(netdist::nodes::usdu_mode_waves(steps, UsduTileMode::kExact));
      const auto independent =
          netdist::nodes::usdu_wave_stats(netdist::nodes::usdu_mode_waves(steps, UsduTileMode::kIndependent));
      std::printf("| %s | %s | %zu | %lld | %lld / %.2f | %.2f× | %.0f× |\n",
                  netdist::nodes::usdu_redraw_mode_names()[static_cast<int>(mode)].c_str(),
                  netdist::nodes::usdu_seam_fix_mode_names()[fix].c_str(), steps.size(),
                  static_cast<long long>(exact.waves), static_cast<long long>(exact.widest), exact.mean_width(),
                  exact.mean_width(), independent.mean_width());
    }
  }
}

void time_tiny(int n) {
  netdist::EngineOptions o;
  const std::string ckpt =
      (std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string();
  auto model = netdist::load_model(ckpt, o).value();
  netdist::nodes::UsduSampling s;
  s.model = model;
  s.vae = model;
  s.positive = netdist::encode_prompt(*model, "red heart").value();
  s.negative = netdist::encode_prompt(*model, "").value();
  s.request.steps = 4;
  s.request.denoise = 0.3;
  netdist::nodes::UsduSettings settings;
  settings.padding = 32;
  auto canvas = netdist::nodes::usdu_canvas(2048, 2048, 1.0, settings).value();
  auto steps = netdist::nodes::usdu_plan(settings, canvas).value();
  std::vector<netdist::nodes::PilImage> images = {netdist::nodes::pil_new(2048, 2048, 3, 128)};
  s.image_width = s.image_height = 2048;
  const auto t0 = std::chrono::steady_clock::now();
  int done = 0;
  for (int i = 0; i < n && i < static_cast<int>(steps.size()); ++i, ++done) {
    auto out =
        netdist::nodes::usdu_redraw_tiles(s, steps[i], netdist::nodes::usdu_step_inputs(images, steps[i]),
                                          canvas.width, canvas.height, [](int, int) { return true; });
    if (!out.is_ok() || !netdist::nodes::usdu_apply_step(images, steps[i], *out).is_ok()) {
      std::fprintf(stderr, "usdu_bench: step %d failed\n", i);
      std::exit(1);
    }
  }
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\none process, cpu, tiny model, 576² tiles, 4 steps: %d tiles in %.2f s = %.3f tiles/s\n",
              done, sec, done / sec);
}


// --- (3) --cluster ---------------------------------------------------------------------------------------

namespace fs = std::filesystem;
using BenchClock = std::chrono::steady_clock;
using BenchJson = nlohmann::json;

struct ClusterBench {
  std::string binary, ckpt = "tiny-emoji.safetensors", models_dir;
  std::vector<int> workers = {1, 2, 3};
  std::vector<std::string> modes = {"exact", "independent"};
  int size = 256, tile = 64, steps = 2, gpus = 0, threads = 1;
  fs::path root;
};

std::vector<std::string> bench_split(const std::string& s) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= s.size()) {
    const size_t comma = std::min(s.find(',', at), s.size());
    if (comma > at) out.push_back(s.substr(at, comma - at));
    at = comma + 1;
  }
  return out;
}

BenchJson bench_call(const std::string& url, const std::string& method, const std::string& target,
                     const BenchJson& body = nullptr) {
  netdist::cluster::HttpCall c;
  c.method = method;
  c.target = target;
  if (!body.is_null()) c.body = body.dump();
  c.timeout = std::chrono::seconds(120);
  auto r = netdist::cluster::http_call(url, c);
  if (!r.is_ok() || r->status != 200) {
    std::fprintf(stderr, "usdu_bench: %s %s%s failed: %s\n", method.c_str(), url.c_str(), target.c_str(),
                 r.is_ok() ? r->body.substr(0, 2000).c_str() : r.status().to_string().c_str());
    std::exit(1);
  }
  return BenchJson::parse(r->body, nullptr, false);
}

// A `netdist` child with its folders and log under root/name (device `device` unless empty).
std::unique_ptr<netdist::cluster::test::NetdistChildProcess> bench_proc(const ClusterBench& b,
                                                                        std::vector<std::string> args,
                                                                        const std::string& name,
                                                                        const std::string& device) {
  const fs::path dir = b.root / name;
  fs::create_directories(dir / "in");
  for (const char* d : {"--output-directory", "--temp-directory"}) args.insert(args.end(), {d, (dir / "out").string()});
  args.insert(args.end(), {"--input-directory", (dir / "in").string(), "--threads", std::to_string(b.threads),
                           "--port", "0"});
  args.insert(args.end(), {"--models-dir", b.models_dir.empty() ? (dir / "models").string() : b.models_dir});
  if (!device.empty()) args.insert(args.end(), {"--device", device});
  auto p = std::make_unique<netdist::cluster::test::NetdistChildProcess>(b.binary, args, dir / "log.txt",
                                                                          std::vector<std::string>{},
                                                                          std::chrono::seconds(600));
  if (p->url().empty()) {
    std::fprintf(stderr, "usdu_bench: %s did not start; see %s\n", name.c_str(), (dir / "log.txt").c_str());
    std::exit(1);
  }
  return p;
}

// A size² RGB test card as PNG bytes.
std::string bench_source_png(int size) {
  netdist::io::Image8 im;
  im.width = im.height = size;
  im.channels = 3;
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x)
      for (int c = 0; c < 3; ++c) im.pixels.push_back(uint8_t((x * 3 + y * 5 + c * 80 + ((x ^ y) & 31)) & 255));
  auto png = netdist::io::encode_png(im, {}, 1);
  if (!png.is_ok()) std::exit(1);
  return *png;
}

int bench_padding(const ClusterBench& b) { return b.tile < 128 ? 16 : 32; }

BenchJson bench_usdu_prompt(const ClusterBench& b, int seed) {
  BenchJson p = {
      {"4", {{"class_type", "CheckpointLoaderSimple"}, {"inputs", {{"ckpt_name", b.ckpt}}}}},
      {"6", {{"class_type", "CLIPTextEncode"}, {"inputs", {{"text", "a detailed photo"}, {"clip", {"4", 1}}}}}},
      {"7", {{"class_type", "CLIPTextEncode"}, {"inputs", {{"text", ""}, {"clip", {"4", 1}}}}}},
      {"1", {{"class_type", "LoadImage"}, {"inputs", {{"image", "src.png"}}}}},
      {"10",
       {{"class_type", "UltimateSDUpscaleNoUpscale"},
        {"inputs",
         {{"upscaled_image", {"1", 0}}, {"model", {"4", 0}}, {"positive", {"6", 0}}, {"negative", {"7", 0}},
          {"vae", {"4", 2}}, {"seed", seed}, {"steps", b.steps}, {"cfg", 5.0}, {"sampler_name", "euler"},
          {"scheduler", "normal"}, {"denoise", 0.4}, {"mode_type", "Linear"}, {"tile_width", b.tile},
          {"tile_height", b.tile}, {"mask_blur", 8}, {"tile_padding", bench_padding(b)}, {"seam_fix_mode", "None"},
          {"seam_fix_denoise", 1.0}, {"seam_fix_width", 64}, {"seam_fix_mask_blur", 8}, {"seam_fix_padding", 16},
          {"force_uniform_tiles", true}, {"tiled_decode", false}, {"batch_size", 1}}}}},
      {"9", {{"class_type", "SaveImage"}, {"inputs", {{"filename_prefix", "usdu_bench"}, {"images", {"10", 0}}}}}}};
  return p;
}

// Submits and waits; seconds from submit to the /history entry (polled every 50 ms).
double bench_run(const std::string& url, const BenchJson& prompt, const std::string& mode) {
  BenchJson body = {{"prompt", prompt}, {"client_id", "usdu_bench"}, {"extra_data", {{"netdist", {{"tiles", mode}}}}}};
  const auto t0 = BenchClock::now();
  const std::string id = bench_call(url, "POST", "/prompt", body)["prompt_id"];
  for (;;) {
    const BenchJson h = bench_call(url, "GET", "/history/" + id);
    if (h.contains(id)) {
      if (h[id]["status"].value("status_str", "") != "success") {
        std::fprintf(stderr, "usdu_bench: prompt failed: %s\n", h[id]["status"].dump().substr(0, 2000).c_str());
        std::exit(1);
      }
      return std::chrono::duration<double>(BenchClock::now() - t0).count();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// Seconds of one timed USDU job in `mode` on `n` workers (after an untimed one that loads the models).
double bench_workers(const ClusterBench& b, int n, const std::string& mode, const std::string& png) {
  std::vector<std::unique_ptr<netdist::cluster::test::NetdistChildProcess>> workers;
  std::string urls;
  for (int i = 0; i < n; ++i) {
    const std::string device = b.gpus > 0 ? "cuda:" + std::to_string(i % b.gpus) : "";
    workers.push_back(bench_proc(b, {"worker"}, mode + "-w" + std::to_string(n) + "-" + std::to_string(i), device));
    urls += (urls.empty() ? "" : ",") + workers.back()->url();
  }
  const std::string name = mode + "-c" + std::to_string(n);
  fs::create_directories(b.root / name / "in");
  std::ofstream(b.root / name / "in" / "src.png", std::ios::binary) << png;
  auto coord = bench_proc(b, {"serve", "--enable-distributed", "--no-local", "--workers", urls}, name,
                          b.gpus > 0 ? "cuda:0" : "");
  for (int tries = 0;; ++tries) {  // every worker probed alive
    int alive = 0;
    // The reply is kept in a variable: a range-for over `bench_call(...)["workers"]` iterates a member of a
    // temporary destroyed before the loop body runs (C++20), which read freed memory and counted no worker
    // alive ("only 0 of 1 workers came alive" on the CPU machine while /netdist/v1/cluster said alive).
    const BenchJson cluster = bench_call(coord->url(), "GET", "/netdist/v1/cluster");
    for (const BenchJson& w : cluster["workers"]) alive += w.value("alive", false);
    if (alive == n) break;
    if (tries > 1200) {
      std::fprintf(stderr, "usdu_bench: only %d of %d workers came alive: %s\n", alive, n,
                   cluster["workers"].dump().substr(0, 2000).c_str());
      coord.reset();
      workers.clear();
      std::exit(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  bench_run(coord->url(), bench_usdu_prompt(b, 1), mode);  // loads the models everywhere
  return bench_run(coord->url(), bench_usdu_prompt(b, 2), mode);
}

int usdu_cluster_bench(int argc, char** argv) {
  ClusterBench b;
  b.binary = (fs::absolute(argv[0]).parent_path() / "netdist").string();
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--workers") {
      b.workers.clear();
      for (const std::string& w : bench_split(v)) b.workers.push_back(std::atoi(w.c_str()));
    } else if (k == "--modes") b.modes = bench_split(v);
    else if (k == "--size") b.size = std::atoi(v.c_str());
    else if (k == "--tile") b.tile = std::atoi(v.c_str());
    else if (k == "--steps") b.steps = std::atoi(v.c_str());
    else if (k == "--gpus") b.gpus = std::atoi(v.c_str());
    else if (k == "--threads") b.threads = std::atoi(v.c_str());
    else if (k == "--ckpt") b.ckpt = v;
    else if (k == "--models-dir") b.models_dir = v;
    else if (k == "--binary") b.binary = v;
    else {
      std::fprintf(stderr, "usdu_bench: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (!fs::exists(b.binary)) {
    std::fprintf(stderr, "usdu_bench: no netdist binary at %s (--binary PATH)\n", b.binary.c_str());
    return 2;
  }
  b.root = fs::temp_directory_path() / ("netdist_usdu_bench_" + std::to_string(getpid()));
  signal(SIGPIPE, SIG_IGN);
  netdist::nodes::UsduSettings s;
  s.tile_width = s.tile_height = b.tile;
  s.padding = bench_padding(b);
  auto canvas = netdist::nodes::usdu_canvas(b.size, b.size, 1.0, s).value();
  auto steps = netdist::nodes::usdu_plan(s, canvas).value();
  const std::string png = bench_source_png(b.size);
  std::printf("\n%d² image, %d² tiles (%lld steps), %d sampler steps each, %s%s\n", b.size, b.tile,
              static_cast<long long>(steps.size()), b.steps, b.gpus > 0 ? "GPUs: " : "CPU",
              b.gpus > 0 ? std::to_string(b.gpus).c_str() : "");
  for (const auto m : {netdist::nodes::UsduTileMode::kExact, netdist::nodes::UsduTileMode::kIndependent}) {
    const auto st = netdist::nodes::usdu_wave_stats(netdist::nodes::usdu_mode_waves(steps, m));
    std::printf(
        "parallelism %s leaves: %zu tiles in %lld waves, at most %lld / %.2f mean tiles per wave (bound on "
        "the speed-up with unlimited workers)\n",
        netdist::nodes::usdu_tile_mode_name(m), steps.size(), static_cast<long long>(st.waves),
        static_cast<long long>(st.widest), st.mean_width());
  }
  std::printf("| mode | workers | tiles | seconds | tiles/s | speed-up over 1 worker | waves' bound |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const std::string& mode : b.modes) {
    auto parsed = netdist::nodes::parse_usdu_tile_mode(mode);
    if (!parsed.is_ok()) {
      std::fprintf(stderr, "usdu_bench: %s\n", parsed.status().to_string().c_str());
      return 2;
    }
    const auto stats = netdist::nodes::usdu_wave_stats(netdist::nodes::usdu_mode_waves(steps, *parsed));
    double one = 0;
    for (int n : b.workers) {
      const double sec = bench_workers(b, n, mode, png);
      if (n == 1) one = sec;
      const std::string speedup = one > 0 ? std::to_string(one / sec).substr(0, 4) + "×" : "—";
      std::printf("| %s | %d | %zu | %.2f | %.3f | %s | %.2f× |\n", mode.c_str(), n, steps.size(), sec,
                  double(steps.size()) / sec, speedup.c_str(), std::min<double>(n, stats.mean_width()));
      std::fflush(stdout);
    }
  }
  fs::remove_all(b.root);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  print_parallelism();
  if (argc == 3 && std::strcmp(argv[1], "--run") == 0) time_tiny(std::atoi(argv[2]));
  if (argc >= 2 && std::strcmp(argv[1], "--cluster") == 0) return usdu_cluster_bench(argc, argv);
  return 0;
}
