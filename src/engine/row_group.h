// Rows shared by a step group (issue #17, rows × CFG): SampleRequest::row_group. Every member calls sample()
// with the same request; the request's rows [begin, end) are cut at the batch's fixed micro-batch bounds
// (engine/micro_batch.h) into one contiguous run of micro-batches per member (member a of k takes groups
// [G·a/k, G·(a+1)/k) of the G micro-batches in range), each member samples its run as a call with those
// row bounds (its CFG pair, `group` + `cfg_split`, as the request sets it), and one all_gather of the
// padded results (plus a status word per member) gives every member every row, in row order.
//
// Exactness: a run of micro-batches sampled alone is bit-identical to those rows of the unsplit batch
// (micro_batch.h), so the gathered latent equals the request sampled without row_group (with the same CFG
// pairing) bit for bit. Errors: fewer micro-batches than members → invalid_argument; a member whose own
// sampling failed sends its code and every member returns a Status naming it (kCancelled stays kCancelled);
// a failed exchange → the group's Status.
// Thread-safety: as sample(): one call per Model at a time.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "netdist/engine.h"

namespace netdist::rows {

// The row bounds of every member (k + 1 entries, absolute rows) of rows [begin, end) of a batch of n; invalid_argument
// when there are fewer micro-batches in range than members or the range cuts a micro-batch.
Result<std::vector<int64_t>> shared_row_bounds(int64_t n, int64_t begin, int64_t end, int members);

// sample_with_denoised for a request with row_group set (engine.cpp dispatches here).
Result<SampleOutput> sample_shared_rows(Model& model, const Conditioning& positive, const Conditioning& negative,
                                        const SampleRequest& req, const ProgressFn& progress);

}  // namespace netdist::rows
