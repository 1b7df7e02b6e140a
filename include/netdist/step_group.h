// A step group: a fixed set of processes that sample one request together, exchanging tensors every
// sampler step (issue #17: CFG split, tile-parallel sampling). The engine sees only this interface; the
// implementation over libtorch's c10d (Gloo between hosts and on the CPU, NCCL between GPUs of one host),
// its rendezvous and its authentication live outside the engine.
//
// Contract: every member calls the same collectives in the same order with tensors of one shape and dtype
// (all_gather: the same shape on every member). A lost member, a member that fails, or a wait longer than
// the group's timeout ends the call with a Status naming the member (rank and address where known) on every
// member still alive; after a failed call the group is unusable (each later call fails at once).
// Thread-safety: one thread calls a group's collectives at a time.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "core/status.h"

namespace netdist {

class StepGroup {
 public:
  virtual ~StepGroup() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Every member's tensor, indexed by rank (this member's own included), on t's device.
  virtual Result<std::vector<at::Tensor>> all_gather(const at::Tensor& t) = 0;
  // Root's t on every member (in place on the others).
  virtual Status broadcast(at::Tensor& t, int root) = 0;
  // Who a rank is, for error messages ("rank 1 (127.0.0.1:8190)").
  virtual std::string describe(int rank) const = 0;
};

}  // namespace netdist
