#include "server/queue_policy.h"

#include <algorithm>
#include <limits>
#include <map>
#include <mutex>

namespace netdist::server {

namespace {

using nlohmann::ordered_json;

class FifoPolicy : public QueuePolicy {
 public:
  size_t pick(const std::vector<const PendingPrompt*>&, Clock::time_point) override { return 0; }
};

class LifoPolicy : public QueuePolicy {
 public:
  size_t pick(const std::vector<const PendingPrompt*>& pending, Clock::time_point) override {
    size_t best = 0;
    for (size_t i = 1; i < pending.size(); ++i) {
      if (pending[i]->sequence > pending[best]->sequence) best = i;
    }
    return best;
  }
};

class PriorityPolicy : public QueuePolicy {
 public:
  size_t pick(const std::vector<const PendingPrompt*>& pending, Clock::time_point) override {
    size_t best = 0;
    for (size_t i = 1; i < pending.size(); ++i) {
      if (pending[i]->settings.priority > pending[best]->settings.priority) best = i;
    }
    return best;
  }
};

class SjfPolicy : public QueuePolicy {
 public:
  size_t pick(const std::vector<const PendingPrompt*>& pending, Clock::time_point now) override {
    size_t best = 0;
    double best_score = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < pending.size(); ++i) {
      const double wait = std::chrono::duration<double>(now - pending[i]->enqueued).count();
      const double score = pending[i]->predicted_units * seconds_per_unit_ - kSjfAging * wait;
      if (score < best_score) {
        best_score = score;
        best = i;
      }
    }
    return best;
  }
  void finished(double predicted_units, double seconds) override {
    if (predicted_units <= 0 || seconds <= 0) return;
    seconds_per_unit_ = (1 - kSjfEwmaWeight) * seconds_per_unit_ + kSjfEwmaWeight * (seconds / predicted_units);
  }

 private:
  double seconds_per_unit_ = kSjfSeedSecondsPerUnit;
};

class FairPolicy : public QueuePolicy {
 public:
  size_t pick(const std::vector<const PendingPrompt*>& pending, Clock::time_point now) override {
    // Per client: its pending indices (fifo order) and its oldest arrival.
    std::map<std::string, std::vector<size_t>> lanes;
    for (size_t i = 0; i < pending.size(); ++i) lanes[pending[i]->client_id].push_back(i);
    const std::string* chosen = nullptr;
    int64_t chosen_turn = 0;
    uint64_t chosen_oldest = 0;
    for (const auto& [client, indices] : lanes) {
      auto served = last_served_.find(client);
      const int64_t turn = served == last_served_.end() ? -1 : served->second;
      uint64_t oldest = std::numeric_limits<uint64_t>::max();
      for (size_t i : indices) oldest = std::min(oldest, pending[i]->sequence);
      if (!chosen || turn < chosen_turn || (turn == chosen_turn && oldest < chosen_oldest)) {
        chosen = &client;
        chosen_turn = turn;
        chosen_oldest = oldest;
      }
    }
    const std::vector<size_t>& lane = lanes[*chosen];
    size_t oldest_index = lane.front();
    for (size_t i : lane) {
      if (pending[i]->sequence < pending[oldest_index]->sequence) oldest_index = i;
    }
    std::vector<const PendingPrompt*> subset;
    for (size_t i : lane) subset.push_back(pending[i]);
    const size_t picked = lane[lane_policy(pending[oldest_index]->settings.policy).pick(subset, now)];
    if (last_served_.size() > 10000) last_served_.clear();
    last_served_[*chosen] = ++turn_;
    return picked;
  }
  void finished(double predicted_units, double seconds) override {
    for (auto& [name, policy] : lanes_) policy->finished(predicted_units, seconds);
  }

 private:
  QueuePolicy& lane_policy(const std::string& name) {
    const std::string key = name.empty() || name == "fair" ? "fifo" : name;
    auto it = lanes_.find(key);
    if (it == lanes_.end()) {
      auto made = make_queue_policy(key);
      if (!made.is_ok()) made = make_queue_policy("fifo");
      it = lanes_.emplace(key, std::move(*made)).first;
    }
    return *it->second;
  }

  std::map<std::string, int64_t> last_served_;  // client_id → turn it was last served
  int64_t turn_ = 0;
  std::map<std::string, std::unique_ptr<QueuePolicy>> lanes_;
};

struct Registry {
  std::mutex mutex;
  std::map<std::string, QueuePolicyFactory> factories;
  Registry() {
    factories["fifo"] = [] { return std::make_unique<FifoPolicy>(); };
    factories["lifo"] = [] { return std::make_unique<LifoPolicy>(); };
    factories["priority"] = [] { return std::make_unique<PriorityPolicy>(); };
    factories["sjf"] = [] { return std::make_unique<SjfPolicy>(); };
    factories["fair"] = [] { return std::make_unique<FairPolicy>(); };
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

std::string names_list() {
  std::string list;
  for (const std::string& n : queue_policy_names()) list += (list.empty() ? "" : ", ") + n;
  return list;
}

}  // namespace

QueuePolicy::~QueuePolicy() = default;

void QueuePolicy::finished(double, double) {}

Status register_queue_policy(const std::string& name, QueuePolicyFactory factory) {
  const bool valid_name = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
  if (!valid_name) return Status::invalid_argument("queue policy name '" + name + "' must be letters, digits, '_' or '-'");
  if (!factory) return Status::invalid_argument("queue policy '" + name + "' has no factory");
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  if (!r.factories.emplace(name, std::move(factory)).second)
    return Status::invalid_argument("queue policy '" + name + "' is already registered");
  return Status::ok();
}

Result<std::unique_ptr<QueuePolicy>> make_queue_policy(const std::string& name) {
  QueuePolicyFactory factory;
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    auto it = r.factories.find(name);
    if (it != r.factories.end()) factory = it->second;
  }
  if (!factory) return Status::invalid_argument("unknown queue policy '" + name + "' (valid: " + names_list() + ")");
  std::unique_ptr<QueuePolicy> policy = factory();
  if (!policy) return Status::internal("queue policy '" + name + "' factory returned nothing");
  return policy;
}

std::vector<std::string> queue_policy_names() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& [name, factory] : r.factories) names.push_back(name);
  return names;
}

Result<QueueSettings> parse_queue_settings(const ordered_json& extra_data) {
  QueueSettings settings;
  if (!extra_data.is_object() || !extra_data.contains("netdist")) return settings;
  const ordered_json& nd = extra_data["netdist"];
  if (!nd.is_object()) return Status::invalid_argument("extra_data.netdist must be an object, got " + nd.dump());
  if (nd.contains("priority")) {
    const ordered_json& p = nd["priority"];
    if (!p.is_number_integer())
      return Status::invalid_argument("extra_data.netdist.priority must be an integer, got " + p.dump());
    settings.priority = p.get<int64_t>();
  }
  if (nd.contains("policy")) {
    const ordered_json& p = nd["policy"];
    if (!p.is_string()) return Status::invalid_argument("extra_data.netdist.policy must be a string, got " + p.dump());
    settings.policy = p.get<std::string>();
    const std::vector<std::string> names = queue_policy_names();
    if (std::find(names.begin(), names.end(), settings.policy) == names.end())
      return Status::invalid_argument("extra_data.netdist.policy: unknown queue policy '" + settings.policy +
                                      "' (valid: " + names_list() + ")");
  }
  if (nd.contains("tiles")) {  // read by the Ultimate SD Upscale nodes (nodes/usdu_tiles.h); checked here
    const ordered_json& t = nd["tiles"];
    if (!t.is_string() || (t != "exact" && t != "independent"))
      return Status::invalid_argument("extra_data.netdist.tiles must be \"exact\" or \"independent\", got " + t.dump());
  }
  return settings;
}

Status check_queue_settings(const QueueSettings& settings, const std::string& server_policy) {
  if (settings.policy.empty() || settings.policy == server_policy || server_policy == "fair") return Status::ok();
  return Status::invalid_argument("extra_data.netdist.policy '" + settings.policy +
                                  "' is only honoured when the server runs --queue-policy fair (it orders a "
                                  "client's own prompts); this server runs '" + server_policy + "'");
}

}  // namespace netdist::server
