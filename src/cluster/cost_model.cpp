#include "cluster/cost_model.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cluster/protocol.h"
#include "core/status.h"

namespace netdist::cluster {

bool CostModel::seed_from_capabilities(const nlohmann::ordered_json& capabilities) {
  const protocol::Capabilities caps = protocol::capabilities_from_json(capabilities);
  if (!caps.benchmark) return false;
  const double delay_s = std::max(0.0, caps.test_step_delay_ms) / 1000.0;
  const double sps = caps.benchmark->steps_per_second;
  const double width = caps.benchmark->width, height = caps.benchmark->height;
  if (!(sps > 0) || !(width > 0) || !(height > 0)) return false;
  if (samples_ > 0) return true;
  seconds_per_unit_ = (1.0 / sps + delay_s) / (width * height / 4096.0);
  return true;
}

double predict_group_seconds(double whole_seconds, int members, int64_t steps, double exchange_bytes) {
  const double per_step = kGroupStepLatencySeconds + std::max(0.0, exchange_bytes) / kGroupBytesPerSecond;
  return whole_seconds / std::max(1, members) + kGroupSetupSeconds + double(std::max<int64_t>(0, steps)) * per_step;
}

GroupModeCost group_mode_cost(const std::string& mode, int members, double exchange_bytes, bool cfg) {
  const double b = std::max(0.0, exchange_bytes);
  const int k = std::max(1, members);
  GroupModeCost c{k, 1.0 / k, 1, b};
  if (mode == "tiles") c.bytes_per_step = (cfg ? 2 * b : b) / k;
  if (mode == "cfg+tiles") c = {k, 1.0 / k, 2, b + b / 2};
  if (mode == "rows+cfg") c = {k, 1.0 / k, 1, b / std::max(1, k / 2)};
  return c;
}

double predict_group_seconds(double whole_seconds, int64_t steps, const GroupModeCost& cost,
                             std::optional<double> measured_exchange_s) {
  const double per_collective =
      measured_exchange_s && *measured_exchange_s > 0
          ? *measured_exchange_s
          : kGroupStepLatencySeconds +
                cost.bytes_per_step / std::max(1.0, cost.collectives_per_step) / kGroupBytesPerSecond;
  return whole_seconds * cost.share + kGroupSetupSeconds +
         double(std::max<int64_t>(0, steps)) * cost.collectives_per_step * per_collective;
}

void ExchangeCost::observe(double seconds, int64_t exchanges) {
  if (!(seconds > 0) || exchanges <= 0) return;
  const double measured = seconds / double(exchanges);
  seconds_per_exchange_ = seconds_per_exchange_
                              ? (1 - kCostEwmaWeight) * *seconds_per_exchange_ + kCostEwmaWeight * measured
                              : measured;
}

void CostModel::observe(double units, double seconds) {
  if (!(units > 0) || !(seconds > 0)) return;
  const double measured = seconds / units;
  seconds_per_unit_ =
      samples_ == 0 ? measured : (1 - kCostEwmaWeight) * *seconds_per_unit_ + kCostEwmaWeight * measured;
  ++samples_;
}

std::optional<size_t> shard_to_take(const std::vector<WorkerForecast>& workers, size_t self,
                                    const std::vector<double>& shard_units, double now) {
  ND_ASSERT(self < workers.size(), "shard_to_take: self out of range");
  double fastest = std::numeric_limits<double>::infinity();
  for (const WorkerForecast& w : workers) {
    if (w.seconds_per_unit && *w.seconds_per_unit > 0) fastest = std::min(fastest, *w.seconds_per_unit);
  }
  if (!std::isfinite(fastest)) fastest = 1.0;
  std::vector<double> free_at, speed;
  for (const WorkerForecast& w : workers) {
    free_at.push_back(std::max(w.free_at, now));
    speed.push_back(w.seconds_per_unit && *w.seconds_per_unit > 0 ? *w.seconds_per_unit : fastest);
  }
  free_at[self] = now;
  for (size_t k = 0; k < shard_units.size(); ++k) {
    const double units = shard_units[k];
    size_t best = self;
    double best_finish = free_at[self] + speed[self] * units;
    for (size_t i = 0; i < workers.size(); ++i) {
      if (i == self) continue;
      const double finish = free_at[i] + speed[i] * units;
      if (finish < best_finish) {
        best = i;
        best_finish = finish;
      }
    }
    if (best == self) return k;
    free_at[best] = best_finish;
  }
  return std::nullopt;
}

}  // namespace netdist::cluster
