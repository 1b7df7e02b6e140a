// ComfyUI's conditioning operation node classes (nodes.py ConditioningConcat, ConditioningAverage,
// ConditioningZeroOut, ConditioningSetAreaStrength), with ComfyUI's
// names, inputs, defaults, ranges, categories and arithmetic on the engine's Conditioning entries (context
// [1, L, D], pooled [1, P] or undefined; every other field of an entry is kept):
//   ConditioningConcat   each conditioning_to context with conditioning_from's first context appended along L.
//   ConditioningAverage  to · s + from[:, :L] (zero-padded to L) · (1 - s); pooled likewise where both have
//                        one (an entry without pooled averages from's with itself), from's where only it has.
//   ConditioningZeroOut  zeros of the same shapes (context and pooled).
//   ConditioningSetAreaStrength  sets every entry's strength (the weight calc_cond_batch gives its
//                        prediction, with or without an area).
// An empty conditioning_from, or contexts whose widths differ, is invalid_argument naming node and inputs.
// And the classes whose effect is the sampler's (engine/cond_masks.h, cond_batch.h), each setting its keys on
// every entry as node_helpers.conditioning_set_values does:
//   ConditioningSetMask           mask ([H, W] becomes [1, H, W]), mask_strength, set_area_to_bounds
//                                 ("mask bounds"); a mask that is not a non-empty float [N, H, W] is refused.
//   ConditioningSetTimestepRange  start_percent / end_percent.
//   ConditioningSetAreaPercentage area as fractions (replacing a pixel area), strength, set_area_to_bounds off.
#pragma once

#include "graph/node_registry.h"

namespace netdist::nodes {

void register_conditioning_ops_nodes(graph::NodeRegistry& registry);

}  // namespace netdist::nodes
