#include "nodes/step_group_binding.h"

#include <map>
#include <mutex>

#include "core/log.h"
#include "engine/row_group.h"

namespace netdist::nodes {

namespace {

std::mutex& step_group_mutex() {
  static std::mutex m;
  return m;
}

std::map<std::string, StepGroupBinding>& step_group_bindings() {
  static std::map<std::string, StepGroupBinding> bindings;
  return bindings;
}

}  // namespace

ScopedStepGroupBinding::ScopedStepGroupBinding(std::string prompt_id, StepGroupBinding binding)
    : prompt_id_(std::move(prompt_id)) {
  std::lock_guard<std::mutex> lock(step_group_mutex());
  step_group_bindings()[prompt_id_] = std::move(binding);
}

ScopedStepGroupBinding::~ScopedStepGroupBinding() {
  std::lock_guard<std::mutex> lock(step_group_mutex());
  step_group_bindings().erase(prompt_id_);
}

std::optional<StepGroupBinding> step_group_binding(const std::string& prompt_id) {
  std::lock_guard<std::mutex> lock(step_group_mutex());
  auto it = step_group_bindings().find(prompt_id);
  if (it == step_group_bindings().end()) return std::nullopt;
  return it->second;
}

void apply_step_group(const std::string& prompt_id, bool model_tiled, SampleRequest& req) {
  const std::optional<StepGroupBinding> b = step_group_binding(prompt_id);
  if (!b || !b->group) return;
  const std::string rank =
      "rank " + std::to_string(b->group->rank()) + " of " + std::to_string(b->group->size());
  if (b->cfg_split && b->group->size() == 2 && req.cfg != 1.0) {
    req.group = b->group;
    req.cfg_split = true;
    log::info("sampler: CFG split as {}", rank);
  }
  if (b->tiles && model_tiled) {
    req.tile_group = b->cross ? b->cross : b->group;
    if (b->tile_speeds.size() == size_t(req.tile_group->size())) req.tile_speeds = b->tile_speeds;
    log::info("sampler: tiles shared as {} (rank {} of {} in the tile group)", rank, req.tile_group->rank(),
              req.tile_group->size());
  }
  if (b->rows && b->cross && req.latent.defined() && req.latent.dim() == 4) {
    const int64_t n = req.latent.size(0);
    if (rows::shared_row_bounds(n, req.row_begin, req.row_end < 0 ? n : req.row_end, b->cross->size()).is_ok()) {
      req.row_group = b->cross;
      log::info("sampler: rows shared as {} (rank {} of {} in the row group)", rank, b->cross->rank(),
                b->cross->size());
    }
  }
}

}  // namespace netdist::nodes
