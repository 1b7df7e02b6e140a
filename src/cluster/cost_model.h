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
#include <string>
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

// The shape of one group mode's work (group_plan.h), per member and sampler step: the share of the whole
// prompt's sampling it computes, how many collectives it makes and the bytes it sends in them.
//   "cfg" (2): 1/2, 1 collective of B; "tiles" (k): 1/k, 1 of B/k (2B/k at cfg != 1: one call holds both
//   passes); "cfg+tiles" (4): 1/4, 2 (the pair's B and the tile group's B/2); "rows+cfg" (2p, p pairs):
//   1/(2p), 1 of B/p per step plus one gather of the rows at the end;
// where B = `exchange_bytes`, one model output of the whole batch (float32).
struct GroupModeCost {
  int members = 1;
  double share = 1;  // of whole_seconds
  double collectives_per_step = 0;
  double bytes_per_step = 0;
};
GroupModeCost group_mode_cost(const std::string& mode, int members, double exchange_bytes, bool cfg);

// A step group's seconds with a measured per-link cost: whole_seconds · share + kGroupSetupSeconds +
// steps · collectives_per_step · exchange_s, where exchange_s is the measured seconds per collective of the
// slowest link among the members (ExchangeCost below), or, unmeasured, kGroupStepLatencySeconds + the bytes
// of one collective / kGroupBytesPerSecond.
double predict_group_seconds(double whole_seconds, int64_t steps, const GroupModeCost& cost,
                             std::optional<double> measured_exchange_s);

// One worker's measured exchange cost: the seconds per collective it reported for its last step groups
// (group_store.h ExchangeTally: wall time inside all_gather/broadcast, the transfer plus any wait for a
// slower member), as an EWMA (kCostEwmaWeight on the newest; the first is taken as it is). The link of a pair
// of workers costs the slower of its two ends; a group, its slowest member's.
class ExchangeCost {
 public:
  void observe(double seconds, int64_t exchanges);  // ignored unless both are positive
  std::optional<double> seconds_per_exchange() const { return seconds_per_exchange_; }

 private:
  std::optional<double> seconds_per_exchange_;
};

std::optional<size_t> shard_to_take(const std::vector<WorkerForecast>& workers, size_t self,
                                    const std::vector<double>& shard_units, double now);

}  // namespace netdist::cluster
