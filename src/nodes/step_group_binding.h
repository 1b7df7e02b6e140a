// The step group a prompt's samplers run on (issue #17): a cluster worker that runs a prompt as one member
// of a coordinator-formed group (cluster/group_store.h) binds the group to the prompt id for the run, and
// KSampler / KSamplerAdvanced set SampleRequest::group + cfg_split (CFG split, cfg != 1, groups of 2) or
// tile_group (a model patched by TiledDiffusion) from it. Without a binding a sampler runs alone, as always.
// Every member runs the same prompt, so their samplers call the group's collectives in the same order.
// Thread-safety: bindings may be made, looked up and dropped from any thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "netdist/engine.h"
#include "netdist/step_group.h"

namespace netdist::nodes {

struct StepGroupBinding {
  std::shared_ptr<StepGroup> group;  // the whole group, or this member's CFG pair when `cross` is set
  bool cfg_split = false;            // "cfg" / "cfg+tiles" / "rows+cfg"
  bool tiles = false;                // "tiles" / "cfg+tiles"
  // The CFG pairs' cross group ("cfg+tiles": it shares the tiles; "rows+cfg": the batch rows); null otherwise.
  std::shared_ptr<StepGroup> cross;
  bool rows = false;                // "rows+cfg"
  std::vector<double> tile_speeds;  // the tile group's members' speeds (empty: equal shares)
};

// Binds `binding` to `prompt_id` for its lifetime (one binding per prompt id; a second replaces the first).
class ScopedStepGroupBinding {
 public:
  ScopedStepGroupBinding(std::string prompt_id, StepGroupBinding binding);
  ~ScopedStepGroupBinding();
  ScopedStepGroupBinding(const ScopedStepGroupBinding&) = delete;
  ScopedStepGroupBinding& operator=(const ScopedStepGroupBinding&) = delete;

 private:
  std::string prompt_id_;
};

std::optional<StepGroupBinding> step_group_binding(const std::string& prompt_id);

// Sets req's group fields from the binding of `prompt_id`, if any: CFG split when the binding asks for it,
// the group has 2 members and req.cfg != 1 (at cfg 1 there is nothing to split: each member samples alone
// and gets the same latent); the tile group (the cross group when set, else the group) and its speeds when
// it asks for tiles and `model_tiled`; the row group (the cross group) when it asks for rows and req's rows
// hold at least one micro-batch per pair (else every pair samples every row: the same latent, unshared).
void apply_step_group(const std::string& prompt_id, bool model_tiled, SampleRequest& req);

}  // namespace netdist::nodes
