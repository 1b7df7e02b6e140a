// CFG split (issue #17): two members of a step group (include/netdist/step_group.h) sample one request
// together. Every step, rank 0 runs the UNet on the positive (conditional) entries and rank 1 on the negative
// (unconditional) ones; the two predictions are exchanged (all_gather) and both members compute the same
// guided prediction uncond + (cond − uncond)·cfg from the same bytes, so every sampler step, and the result,
// are identical on both members whatever the sampler and scheduler.
//
// Interrupts: a member whose progress callback asks to stop flags it in the next exchange (it skips its
// UNet pass for that one); both members then end with Status cancelled naming who stopped.
// Thread-safety: one object per sample() call, used from its sampling thread.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "core/status.h"
#include "engine/cond_batch.h"
#include "engine/model_patches.h"
#include "netdist/step_group.h"

namespace netdist::cond {

class CfgSplit {
 public:
  // OK when `group` can run a CFG split: it exists and has exactly two members.
  static Status check(const StepGroup* group);

  // `patches` (may be null): a RescaleCFG cfg function combines the exchanged predictions instead
  // (engine/model_patches.h); both members hold both predictions, so it runs identically on each.
  CfgSplit(StepGroup& group, double cfg, std::shared_ptr<const patches::ModelPatches> patches = nullptr)
      : group_(group), cfg_(cfg), patches_(std::move(patches)) {}

  // The guided prediction for x [B, C, h, w] at sigma [B], this member computing its own list (so its own
  // entries' ControlNets; `hook` as calc_cond_batch's). Throws
  // std::runtime_error when the exchange failed or a member asked to stop; status() then says why.
  at::Tensor denoise(const ModelFn& model, const std::vector<CondRow>& positive,
                     const std::vector<CondRow>& negative, const at::Tensor& x, const at::Tensor& sigma,
                     const CallHook& hook = {});

  // The local progress callback's answer after a step; a stop reaches the other member at the next exchange.
  void note_progress(bool keep_going) { stop_requested_ = stop_requested_ || !keep_going; }
  bool stop_requested() const { return stop_requested_; }

  // OK, or why denoise() threw (the group's error naming the member, or cancelled).
  const Status& status() const { return status_; }
  // Seconds spent in exchanges so far, and how many (for bench/ and the cost model).
  double exchange_seconds() const { return exchange_seconds_; }
  int exchanges() const { return exchanges_; }

 private:
  StepGroup& group_;
  double cfg_;
  std::shared_ptr<const patches::ModelPatches> patches_;
  bool stop_requested_ = false;
  Status status_;
  double exchange_seconds_ = 0;
  int exchanges_ = 0;
};

}  // namespace netdist::cond
