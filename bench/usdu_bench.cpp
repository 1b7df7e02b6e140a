// usdu_bench: how much parallelism Ultimate SD Upscale leaves, for a 2048² canvas in 512² tiles (padding 32,
// mask blur 8; seam fix width 64, padding 16, blur 8), for each redraw × seam-fix mode:
//   exact        steps in dependency waves (usdu_plan.h usdu_waves): a step waits for every earlier step
//   whose
//                written pixels it reads or whose read pixels it writes — the result equals sequential USDU;
//   independent  every step reads the same source canvas: one wave, not USDU's picture.
// Prints steps, waves, the largest and mean steps per wave, and the bound on the speed-up over one worker
// (steps / waves, with unlimited equal workers). With --run N it also times N redraw steps of the embedded
// tiny model on this machine's CPU, one process (tiles/s). The waves are those the cluster's tile tasks run
// (src/cluster/tile_jobs.h, nodes/usdu_tiles.h usdu_mode_waves); a measured multi-worker speed-up is not
// printed yet.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

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
  const std::string ckpt = std::string(NETDIST_SOURCE_DIR) + "/models/tiny-emoji.safetensors";
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

}  // namespace

int main(int argc, char** argv) {
  print_parallelism();
  if (argc == 3 && std::strcmp(argv[1], "--run") == 0) time_tiny(std::atoi(argv[2]));
  return 0;
}
