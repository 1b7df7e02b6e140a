#include "nodes/usdu_tiles.h"

#include <algorithm>
#include <atomic>
#include <map>

namespace netdist::nodes {

namespace {

std::atomic<int> g_usdu_default_tile_mode{static_cast<int>(UsduTileMode::kExact)};

}  // namespace

const char* usdu_tile_mode_name(UsduTileMode mode) {
  return mode == UsduTileMode::kIndependent ? "independent" : "exact";
}

Result<UsduTileMode> parse_usdu_tile_mode(const std::string& name) {
  if (name == "exact") return UsduTileMode::kExact;
  if (name == "independent") return UsduTileMode::kIndependent;
  return Status::invalid_argument("tile mode '" + name + "' is not \"exact\" or \"independent\"");
}

void set_usdu_default_tile_mode(UsduTileMode mode) { g_usdu_default_tile_mode = static_cast<int>(mode); }

UsduTileMode usdu_default_tile_mode() { return static_cast<UsduTileMode>(g_usdu_default_tile_mode.load()); }

Result<UsduTileMode> usdu_tile_mode(const nlohmann::ordered_json& extra_data) {
  if (!extra_data.is_object()) return usdu_default_tile_mode();
  auto nd = extra_data.find("netdist");
  if (nd == extra_data.end() || !nd->is_object()) return usdu_default_tile_mode();
  auto tiles = nd->find("tiles");
  if (tiles == nd->end() || tiles->is_null()) return usdu_default_tile_mode();
  if (!tiles->is_string())
    return Status::invalid_argument("extra_data.netdist.tiles must be \"exact\" or \"independent\", not " +
                                    tiles->dump());
  auto mode = parse_usdu_tile_mode(tiles->get<std::string>());
  if (!mode.is_ok()) return mode.status().with_context("extra_data.netdist.tiles");
  return mode;
}

std::vector<int> usdu_mode_waves(const std::vector<UsduStep>& steps, UsduTileMode mode) {
  if (mode == UsduTileMode::kIndependent) return std::vector<int>(steps.size(), 0);
  return usdu_waves(steps);
}

Status usdu_run_waves(std::vector<PilImage>& images, const std::vector<UsduStep>& steps,
                      const std::vector<int>& waves, const UsduWaveFn& run_wave) {
  ND_ASSERT(waves.size() == steps.size(), "usdu_run_waves: one wave per step");
  std::map<int, std::vector<size_t>> by_wave;
  for (size_t i = 0; i < steps.size(); ++i) by_wave[waves[i]].push_back(i);
  for (const auto& [wave, ids] : by_wave) {
    std::vector<std::vector<PilImage>> inputs;
    for (size_t id : ids) inputs.push_back(usdu_step_inputs(images, steps[id]));
    ND_ASSIGN_OR_RETURN(std::vector<std::vector<PilImage>> redrawn, run_wave(ids, std::move(inputs)));
    if (redrawn.size() != ids.size())
      return Status::internal("wave " + std::to_string(wave) + " gave " + std::to_string(redrawn.size()) +
                              " steps' tiles for " + std::to_string(ids.size()) + " steps");
    for (size_t k = 0; k < ids.size(); ++k) {
      Status applied = usdu_apply_step(images, steps[ids[k]], redrawn[k]);
      if (!applied.is_ok()) return applied.with_context("step " + std::to_string(ids[k]));
    }
  }
  return Status::ok();
}

UsduWaveStats usdu_wave_stats(const std::vector<int>& waves) {
  UsduWaveStats st;
  st.steps = static_cast<int64_t>(waves.size());
  std::map<int, int64_t> width;
  for (int w : waves) ++width[w];
  st.waves = static_cast<int64_t>(width.size());
  for (const auto& [w, n] : width) st.widest = std::max(st.widest, n);
  return st;
}

}  // namespace netdist::nodes
