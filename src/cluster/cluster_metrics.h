// A coordinator's per-worker figures for GET /metrics (server/metrics.h, ServerOptions::extra_metrics), in
// the Prometheus text format, from Cluster::status(false): workers alive, tasks queued, and per worker
// (labels worker = its URL, kind = netdist | comfy) up, busy, draining, busy seconds, tasks, rows and
// tiles, whole prompts, failures and the cost model's seconds per unit. docs/api.md lists the families.
// Thread-safety: a pure function.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace netdist::cluster {

// `status` has Cluster::status()'s shape; fields of another type are left out, never an exception.
std::string cluster_metrics_text(const nlohmann::ordered_json& status);

}  // namespace netdist::cluster
