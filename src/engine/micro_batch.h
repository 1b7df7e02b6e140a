// The fixed micro-batches of a sampler batch: which images share a UNet call.
//
// Kernels may block their work by batch size, so an image's result can depend on which images share its
// UNet call. netdist therefore fixes the grouping from the batch size alone: images [b[i], b[i+1]) of a batch
// of n always share one call (per conditioning entry), however the batch is split over workers. A split
// along these bounds is bit-identical to the unsplit batch (engine.h; the cluster's shards are exactly these
// groups). The rule: G = min(n, 4·⌈n/32⌉) groups of ⌈n/G⌉ or ⌊n/G⌋ images (at most 8 per call), the larger
// ones spread evenly among the smaller (group g is larger when ⌊(g+1)·r/G⌋ > ⌊g·r/G⌋, r = n mod G), so that
// contiguous runs of groups, which the cluster hands one worker as one shard, split a batch evenly whenever
// n allows it (n = 10: 2, 3, 2, 3, and halves of 5 images). On one GPU, and on each worker for its run of
// groups, the groups run as overlapping CUDA graphs (runtime/cuda_graphs.h), so a small call costs little.
// Thread-safety: pure function.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace netdist {

// {0, b1, ..., n}: group i covers images [bounds[i], bounds[i+1]). n < 1 gives {0}.
inline std::vector<int64_t> micro_batch_bounds(int64_t n) {
  std::vector<int64_t> bounds = {0};
  if (n < 1) return bounds;
  const int64_t per_call_max = 8, lanes = 4;
  const int64_t groups = std::min<int64_t>(n, lanes * ((n + per_call_max * lanes - 1) / (per_call_max * lanes)));
  const int64_t larger = n % groups;
  for (int64_t g = 0; g < groups; ++g) {
    const bool is_larger = (g + 1) * larger / groups > g * larger / groups;
    bounds.push_back(bounds.back() + n / groups + (is_larger ? 1 : 0));
  }
  return bounds;
}

}  // namespace netdist
