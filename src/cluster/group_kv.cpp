#include "cluster/group_kv.h"

#include <algorithm>
#include <chrono>

#include "core/base64.h"

namespace netdist::cluster {

void GroupKv::open(const std::string& group_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  groups_[group_id];
}

void GroupKv::close(const std::string& group_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  groups_.erase(group_id);
  cv_.notify_all();
}

bool GroupKv::is_open(const std::string& group_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  return groups_.count(group_id) > 0;
}

Result<protocol::Json> GroupKv::apply(const protocol::GroupKvRequest& r) {
  using protocol::Json;
  std::unique_lock<std::mutex> lock(mutex_);
  const auto missing = [&] { return Status::not_found("step group " + r.group_id + " is not running here"); };
  auto group = groups_.find(r.group_id);
  if (group == groups_.end()) return missing();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(r.wait_ms);
  // Waits until every key of `keys` is present, the deadline passes or the group closes.
  const auto wait_for = [&](const std::vector<std::string>& keys) -> Result<bool> {
    for (;;) {
      group = groups_.find(r.group_id);
      if (group == groups_.end()) return missing();
      const bool ready = std::all_of(keys.begin(), keys.end(),
                                     [&](const std::string& k) { return group->second.count(k) > 0; });
      if (ready) return true;
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout &&
          std::chrono::steady_clock::now() >= deadline) {
        group = groups_.find(r.group_id);
        if (group == groups_.end()) return missing();
        return std::all_of(keys.begin(), keys.end(),
                           [&](const std::string& k) { return group->second.count(k) > 0; });
      }
    }
  };
  auto& kv = group->second;
  if (r.op == "set") {
    kv[r.key] = r.value;
    cv_.notify_all();
    return Json::object();
  }
  if (r.op == "add") {
    int64_t count = r.delta;
    if (auto it = kv.find(r.key); it != kv.end()) {
      try {
        count += std::stoll(it->second);
      } catch (...) {
        return Status::invalid_argument("step group " + r.group_id + " key '" + r.key +
                                        "' does not hold a number");
      }
    }
    kv[r.key] = std::to_string(count);
    cv_.notify_all();
    return Json{{"count", count}};
  }
  if (r.op == "delete") {
    const bool deleted = kv.erase(r.key) > 0;
    return Json{{"deleted", deleted}};
  }
  if (r.op == "num_keys") return Json{{"count", int64_t(kv.size())}};
  if (r.op == "check") {
    const bool ready =
        std::all_of(r.keys.begin(), r.keys.end(), [&](const std::string& k) { return kv.count(k) > 0; });
    return Json{{"ready", ready}};
  }
  if (r.op == "wait") {
    ND_ASSIGN_OR_RETURN(bool ready, wait_for(r.keys));
    return Json{{"ready", ready}};
  }
  // get
  ND_ASSIGN_OR_RETURN(bool ready, wait_for({r.key}));
  if (!ready) return Json{{"ready", false}};
  return Json{{"value", base64_encode(groups_[r.group_id][r.key])}};
}

}  // namespace netdist::cluster
