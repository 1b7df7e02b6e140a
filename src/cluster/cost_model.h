// The coordinator's per-worker speed model and the earliest-predicted-finish worker choice
// (docs/scheduling.md).
//
// Work is counted in the units of server/prompt_cost.h: one sampler step of one 64×64 image (a shard of r
// rows of a sampler costs r × SamplerWork::units_per_row()). A CostModel holds one worker's seconds per
// unit: seeded from its GET /netdist/v1/capabilities "benchmark" (steps_per_second of the embedded model at
// width × height, batch 1, plus the worker's test_step_delay_ms throttle per step:
// seconds_per_unit = (1 / steps_per_second + delay) / (width × height / 4096)), then fitted
// online from finished shards as an EWMA (weight kCostEwmaWeight on the newest) of measured seconds / units;
// the first measurement replaces the seed. Measured seconds cover the whole shard round trip (HTTP,
// prompt encoding), so small shards read slower than the bare sampler; a netdist worker's whole prompt
// counts the seconds its samplers took there. No per-model factor: every checkpoint counts as the
// benchmark's.
// Thread-safety: CostModel is a plain value (the cluster guards it with its mutex); shard_to_take is a pure
// function.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

namespace netdist::cluster {

inline constexpr double kCostEwmaWeight = 0.3;

class CostModel {
 public:
  // Seeds from a capabilities reply ("benchmark", "test_step_delay_ms") unless a shard was already
  // measured; false (and no change) when the benchmark is null or lacks positive steps_per_second, width
  // and height.
  bool seed_from_capabilities(const nlohmann::ordered_json& capabilities);
  // A finished shard of `units` took `seconds`; ignored unless both are positive.
  void observe(double units, double seconds);
  // Seconds per unit; nullopt until seeded or measured.
  std::optional<double> seconds_per_unit() const { return seconds_per_unit_; }
  int64_t samples() const { return samples_; }  // measured shards (the seed is not one)

 private:
  std::optional<double> seconds_per_unit_;
  int64_t samples_ = 0;
};

// One eligible worker as the choice sees it. Times are seconds on one clock shared with `now`.
struct WorkerForecast {
  double free_at = 0;                          // when it can start a new shard; <= now means idle
  std::optional<double> seconds_per_unit;      // nullopt = unknown
};

// Earliest predicted finish. Hands the queued shards `shard_units` (in queue order, the ones `self` may run)
// one at a time to the worker that would finish that shard soonest, finish = max(free_at, now) +
// seconds_per_unit × units (ties go to `self`, then to the lower index), and returns the index of the first
// shard `self` gets: it should take that one now (shards differ in size, so a slow worker takes the small
// one meant for it, not the big front one); nullopt: other workers will finish all of them sooner, so
// `self` leaves them and re-checks later. Unknown speeds count as the fastest known one (1 s/unit when none
// is known), so an unmeasured worker gets tried. `workers[self]` must be idle; `shard_units` non-empty.
// Never leaves work undone: the idle worker with the lowest (seconds_per_unit, index) always gets the
// first shard unless a busy worker would finish it sooner.
// Step groups (issue #17; group_plan.h). A whole prompt that one worker would take `whole_seconds` for
// (units × its seconds per unit), run by a step group of `members` workers that split each step's UNet work
// evenly (CFG split: 2 members, one pass each; tiles: the tile batches shared), is predicted at
//   whole_seconds / members + kGroupSetupSeconds + steps × (kGroupStepLatencySeconds + exchange_bytes /
//   kGroupBytesPerSecond)
// where exchange_bytes is what one member sends per step (its share of the model output, float32). The
// constants are assumptions, not measured per link (a 1 Gbit/s LAN; the rendezvous through the
// coordinator's HTTP route and Gloo's connection set-up). Text encoding, VAE decode and model loads are not
// split, so the model is optimistic for prompts whose sampler is a small part of their time.
inline constexpr double kGroupSetupSeconds = 0.5;
inline constexpr double kGroupStepLatencySeconds = 0.002;
inline constexpr double kGroupBytesPerSecond = 125e6;
double predict_group_seconds(double whole_seconds, int members, int64_t steps, double exchange_bytes);

std::optional<size_t> shard_to_take(const std::vector<WorkerForecast>& workers, size_t self,
                                    const std::vector<double>& shard_units, double now);

}  // namespace netdist::cluster
