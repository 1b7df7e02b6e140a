// How an Ultimate SD Upscale job's steps (usdu_plan.h) run when they do not simply run one after another:
// in dependency waves, each wave's steps redrawn independently (on one process, or as cluster tile tasks:
// cluster/tile_jobs.h) and pasted back in the script's step order after the wave.
//
// Tile modes (per prompt extra_data.netdist.tiles, per server `--tiles`):
//  - "exact" (default): waves = usdu_waves; a step reads the canvas as every earlier step it depends on left
//    it, so the result is bit-for-bit the sequential (1-process) result, whatever runs the steps.
//  - "independent": every step reads the prepared source canvas, all in one wave (as ComfyUI-Distributed
//    does); results pasted in step order. Deterministic for any worker count, but not USDU's picture.
// Thread-safety: pure functions, except the process default (set once at start-up, read atomically).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "nodes/usdu_plan.h"

namespace netdist::nodes {

enum class UsduTileMode { kExact, kIndependent };

const char* usdu_tile_mode_name(UsduTileMode mode);  // "exact", "independent"
// invalid_argument quoting `name` and naming the two modes.
Result<UsduTileMode> parse_usdu_tile_mode(const std::string& name);

// The server's default (`netdist serve --tiles`); exact until set.
void set_usdu_default_tile_mode(UsduTileMode mode);
UsduTileMode usdu_default_tile_mode();

// extra_data["netdist"]["tiles"] when present, else the default. invalid_argument naming
// extra_data.netdist.tiles when it is not one of the mode strings.
Result<UsduTileMode> usdu_tile_mode(const nlohmann::ordered_json& extra_data);

// The wave of each step in `mode`: usdu_waves for exact, 0 for every step when independent.
std::vector<int> usdu_mode_waves(const std::vector<UsduStep>& steps, UsduTileMode mode);

// A wave's step indices (ascending) and their input tiles → each step's redrawn tiles, same order.
using UsduWaveFn = std::function<Result<std::vector<std::vector<PilImage>>>(
    const std::vector<size_t>& step_ids, std::vector<std::vector<PilImage>> inputs)>;

// Runs the steps wave by wave on `images`: a wave's inputs are cut from `images` as the earlier waves left
// them, its results pasted back in step order. Errors: run_wave's, or a count mismatch naming the step.
Status usdu_run_waves(std::vector<PilImage>& images, const std::vector<UsduStep>& steps,
                      const std::vector<int>& waves, const UsduWaveFn& run_wave);

// How much parallelism the waves leave: steps per wave on average, and the largest wave.
struct UsduWaveStats {
  int64_t steps = 0, waves = 0, widest = 0;
  double mean_width() const { return waves ? double(steps) / double(waves) : 0.0; }
};
UsduWaveStats usdu_wave_stats(const std::vector<int>& waves);

}  // namespace netdist::nodes
