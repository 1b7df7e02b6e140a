// The serving half of "models travel to workers" (`--share-models`): a coordinator (or any netdist server)
// serves the files of its ModelIndex by SHA-256 to cluster members that hold the cluster token.
//   GET /netdist/v1/models           → {"models": [{"kind", "name", "sha256", "bytes"}], "pending": n}: every
//                                      model file (kind/name as model_index.h); sha256 null for the `pending`
//                                      files not hashed yet (they cannot be fetched until they are)
//   GET /netdist/v1/models/<sha256>  → the file's bytes, application/octet-stream. With
//                                      `Range: bytes=a-b` or `bytes=a-`: 206 with Content-Range
//                                      "bytes a-e/size", at most max_chunk bytes from a (fewer than asked for
//                                      when the range is longer: the client asks again from e+1). Without a
//                                      Range: 200 with the whole file when it fits in max_chunk, else 416
//                                      `range_required`. 416 for a range outside the file, 400
//                                      `invalid_model_hash` for a path that is not 64 lower-case hex digits,
//                                      404 for a digest no model file has.
// Refusals (before anything is read): 401 from the server's token check without the right bearer token;
// 403 `model_sharing_off` when this server was started without --share-models; 403
// `model_sharing_needs_token` when it has no --auth-token (model files are never served anonymously). Only
// files the index lists can be served: the route takes a digest, never a path, and the index lists only
// files whose real path lies inside the models folder.
// Each response is read from disk by range (pread-style, max_chunk bytes at most), so a large file is
// never held in memory whole.
// Test-only fault injection from the environment of the serving process, NETDIST_TEST_MODEL_FAULTS, a
// comma-separated list: "corrupt-once" flips one byte of the first range served; "cut-once" answers the
// first range request that starts past byte 0 with 503 `model_transfer_cut` (a dropped link for the
// client); "chunk=N" sets max_chunk to N bytes.
// Thread-safety: the routes may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>

#include "cluster/model_index.h"
#include "server/http_types.h"
#include "server/server_state.h"

namespace netdist::cluster {

struct ModelShareOptions {
  bool enabled = false;    // --share-models
  bool has_token = false;  // the server checks a bearer token (--auth-token)
  uint64_t max_chunk = uint64_t(8) << 20;
};

// The two routes above in front of `fallback` (which gets every other request).
server::ExtraRoutes model_share_routes(std::shared_ptr<ModelIndex> index, ModelShareOptions options,
                                       server::ExtraRoutes fallback);

}  // namespace netdist::cluster
