// GET /metrics: the server's counters in the Prometheus text exposition format (version 0.0.4), behind the
// bearer token like every route. ServerMetrics is what the server itself counts (HTTP requests and their
// latency, prompts by outcome, sampler steps); render_metrics adds what it can read at scrape time (queue
// length, prompts by state, history size, device memory from the Backend) and ServerOptions::extra_metrics
// (a coordinator's per-worker figures, cluster/cluster_metrics.h). docs/api.md lists every family.
// Thread-safety: every method may be called from any thread.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "server/http_types.h"

namespace netdist::server {

class ServerState;

class ServerMetrics {
 public:
  // Upper bounds (seconds) of the HTTP latency histogram's buckets; +Inf is implied.
  static constexpr std::array<double, 10> kLatencyBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                                              0.05,  0.1,    0.25,  1.0,  5.0};

  // One answered request: `path` as requested (the /api alias is folded, ids and file names are not labels:
  // route_label), its status and its handling time.
  void observe_request(const std::string& method, const std::string& path, int status, double seconds);
  // One sampler step (a "progress" event of a running prompt).
  void observe_step();
  // A distributing backend reported how it ran a prompt (backend.h kPlanEvent): its plan's mode ("whole",
  // "rows", "cfg", "tiles", joined by "+").
  void observe_plan(const std::string& mode);
  // A prompt left the queue worker: outcome "success", "error" or "interrupted", after `seconds`.
  void observe_prompt(const std::string& outcome, double seconds);

  // The Prometheus text of these counters (each family with # HELP and # TYPE lines).
  std::string text() const;

  // The bounded label for a request path: the route's fixed part ("/history", "/view", "/netdist/v1/pull",
  // "/" ...), "other" for anything unknown, so that no client can grow the label set.
  static std::string route_label(const std::string& path);

 private:
  struct Histogram {
    std::array<uint64_t, kLatencyBuckets.size()> buckets{};  // per bucket, not cumulative
    uint64_t count = 0;
    double sum = 0;
  };
  // Steps per second over the last kStepWindow: the steps of the window's whole seconds.
  double steps_per_second_locked(std::chrono::steady_clock::time_point now) const;

  static constexpr int kStepWindowSeconds = 10;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, Histogram> latency_;  // by (method, route)
  std::map<std::string, uint64_t> responses_;                        // by status code
  std::map<std::string, uint64_t> prompts_;                          // by outcome
  std::map<std::string, uint64_t> plans_;                            // by plan mode
  double prompt_seconds_ = 0;
  uint64_t steps_ = 0;
  std::deque<std::pair<int64_t, uint64_t>> step_seconds_;  // (whole steady second, steps in it), recent only
};

// GET /metrics (nullopt for any other path/method): the text of `state`'s metrics, the scrape-time gauges and
// the embedding program's extra_metrics, Content-Type "text/plain; version=0.0.4; charset=utf-8".
std::optional<Response> route_metrics(ServerState& state, const Request& request, const std::string& path);

// Prometheus text helpers for extra_metrics providers: a label value escaped (\\, \", \n) and a number as
// Prometheus reads it (integers without a fraction, NaN, +Inf, -Inf).
std::string prometheus_label(const std::string& value);
std::string prometheus_number(double value);

}  // namespace netdist::server
