#include "cluster/group_store.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include <torch/csrc/distributed/c10d/Store.hpp>

#include "core/base64.h"
#include "engine/runtime/c10d_group.h"

namespace netdist::cluster {

namespace {

using protocol::Json;

constexpr int64_t kGroupStorePollMs = 2000;  // one long-poll of get/wait

// One group/kv call; its reply body or the Status of a refusal.
Result<Json> group_store_call(const protocol::Peer& peer, const protocol::GroupKvRequest& r) {
  const auto timeout = std::chrono::milliseconds(r.wait_ms + 15000);
  ND_ASSIGN_OR_RETURN(HttpReply reply,
                      protocol::call(peer, protocol::Route::group_kv, timeout, protocol::to_json(r).dump()));
  if (reply.status == 401 || reply.status == 403)
    return Status::unauthenticated(
        "the coordinator " + peer.url + " refused to let this worker join step group " + r.group_id +
        ": it does not hold the cluster token (" + std::to_string(reply.status) + ")");
  if (reply.status == 404)
    return Status::unavailable("step group " + r.group_id + " is not running on the coordinator " + peer.url);
  if (reply.status != 200)
    return Status::unavailable("step group " + r.group_id + " store answered " +
                               std::to_string(reply.status) + ": " + reply.body);
  Json body = Json::parse(reply.body, nullptr, false);
  if (!body.is_object())
    return Status::corruption("step group " + r.group_id + " store reply is not a JSON object");
  return body;
}

class HttpGroupStore : public c10d::Store {
 public:
  HttpGroupStore(protocol::Peer peer, std::string group_id, std::chrono::milliseconds timeout,
                 std::function<bool()> cancelled)
      : c10d::Store(timeout),
        peer_(std::move(peer)),
        group_id_(std::move(group_id)),
        cancelled_(std::move(cancelled)) {}

  // A second handle on the same group's store (libtorch 2.x makes clone() pure virtual; 1.13 has none, so
  // this is written without `override` and is a plain member there).
  c10::intrusive_ptr<c10d::Store> clone() {  // NOLINT(modernize-use-override)
    return c10::make_intrusive<HttpGroupStore>(peer_, group_id_, timeout_, cancelled_);
  }

  void set(const std::string& key, const std::vector<uint8_t>& value) override {
    auto r = request("set");
    r.key = key;
    r.value.assign(value.begin(), value.end());
    must(r);
  }
  std::vector<uint8_t> get(const std::string& key) override {
    auto r = request("get");
    r.key = key;
    Json reply = until_ready(r, timeout_);
    auto bytes = base64_decode(reply.value("value", std::string()));
    if (!bytes.is_ok())
      throw std::runtime_error("step group " + group_id_ + ": key '" + key + "' is not base64");
    return std::vector<uint8_t>(bytes->begin(), bytes->end());
  }
  int64_t add(const std::string& key, int64_t value) override {
    auto r = request("add");
    r.key = key;
    r.delta = value;
    return must(r).value("count", int64_t(0));
  }
  bool deleteKey(const std::string& key) override {
    auto r = request("delete");
    r.key = key;
    return must(r).value("deleted", false);
  }
  bool check(const std::vector<std::string>& keys) override {
    auto r = request("check");
    r.keys = keys;
    return must(r).value("ready", false);
  }
  int64_t getNumKeys() override { return must(request("num_keys")).value("count", int64_t(0)); }
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    auto r = request("wait");
    r.keys = keys;
    until_ready(r, timeout);
  }

 private:
  protocol::GroupKvRequest request(const char* op) const {
    protocol::GroupKvRequest r;
    r.group_id = group_id_;
    r.op = op;
    return r;
  }
  Json must(const protocol::GroupKvRequest& r) {
    Result<Json> reply = group_store_call(peer_, r);
    if (!reply.is_ok()) throw std::runtime_error(reply.status().message());
    return std::move(*reply);
  }
  // Long-polls get/wait until the reply is ready, `timeout` passes (0 = no limit) or the task is cancelled.
  Json until_ready(protocol::GroupKvRequest r, std::chrono::milliseconds timeout) {
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      if (cancelled_ && cancelled_()) throw std::runtime_error("step group " + group_id_ + ": cancelled");
      const auto spent =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
      const int64_t left = timeout.count() > 0 ? timeout.count() - spent.count() : kGroupStorePollMs;
      if (left <= 0) {
        std::string keys = r.key;
        for (const auto& k : r.keys) keys += (keys.empty() ? "" : ", ") + k;
        throw std::runtime_error("step group " + group_id_ + ": timed out waiting for " + keys);
      }
      r.wait_ms = std::min(left, kGroupStorePollMs);
      Json reply = must(r);
      if (reply.value("ready", true) && (r.op != "get" || reply.contains("value"))) return reply;
    }
  }

  protocol::Peer peer_;
  std::string group_id_;
  std::function<bool()> cancelled_;
};

// Every member's "netdist_ready/<rank>" key, set by each as it arrives, waited for with long polls that an
// interrupt or the group's end (404) cut short, so c10d's own join barrier (which polls until its timeout
// whatever fails) finds everyone there. unavailable naming the ranks that did not come within the timeout.
Status group_barrier(const protocol::Peer& peer, const protocol::GroupSpec& spec,
                     const std::function<bool()>& cancelled) {
  const auto key = [](int r) { return "netdist_ready/" + std::to_string(r); };
  protocol::GroupKvRequest set{spec.group_id, "set", key(spec.rank), "1", {}, 0, 0};
  ND_RETURN_IF_ERROR(group_store_call(peer, set).status());
  protocol::GroupKvRequest wait{spec.group_id, "wait", "", "", {}, 0, 0};
  for (int r = 0; r < spec.size; ++r) wait.keys.push_back(key(r));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(spec.timeout_ms);
  for (;;) {
    if (cancelled && cancelled())
      return Status::cancelled("step group " + spec.group_id + ": interrupted while joining");
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    wait.wait_ms = std::min<int64_t>(left.count(), kGroupStorePollMs);
    ND_ASSIGN_OR_RETURN(Json reply, group_store_call(peer, wait));
    if (reply.value("ready", false)) return Status::ok();
  }
  std::string missing;
  for (int r = 0; r < spec.size; ++r) {
    protocol::GroupKvRequest check{spec.group_id, "check", "", "", {key(r)}, 0, 0};
    auto present = group_store_call(peer, check);
    if (present.is_ok() && present->value("ready", false)) continue;
    missing += (missing.empty() ? "rank " : ", rank ") + std::to_string(r);
    if (r < int(spec.names.size())) missing += " (" + spec.names[r] + ")";
  }
  return Status::unavailable("step group " + spec.group_id + ": rank " + std::to_string(spec.rank) +
                             " waited " + std::to_string(spec.timeout_ms) + " ms for " + missing +
                             " to join");
}

// A StepGroup that adds the wall time of each collective to a tally (for the coordinator's per-link cost).
class TimedStepGroup : public StepGroup {
 public:
  TimedStepGroup(std::shared_ptr<StepGroup> inner, std::shared_ptr<ExchangeTally> tally)
      : inner_(std::move(inner)), tally_(std::move(tally)) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  Result<std::vector<at::Tensor>> all_gather(const at::Tensor& t) override {
    const auto start = std::chrono::steady_clock::now();
    auto out = inner_->all_gather(t);
    count(start);
    return out;
  }
  Status broadcast(at::Tensor& t, int root) override {
    const auto start = std::chrono::steady_clock::now();
    Status out = inner_->broadcast(t, root);
    count(start);
    return out;
  }
  std::string describe(int rank) const override { return inner_->describe(rank); }

 private:
  void count(std::chrono::steady_clock::time_point start) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::lock_guard<std::mutex> lock(tally_->mutex);
    tally_->seconds += s;
    ++tally_->exchanges;
  }
  std::shared_ptr<StepGroup> inner_;
  std::shared_ptr<ExchangeTally> tally_;
};

}  // namespace

Result<GroupMembership> join_group(const protocol::GroupSpec& spec,
                                              const GroupJoinOptions& options) {
  const std::string url = spec.store_url.empty() ? options.coordinator_url : spec.store_url;
  if (url.empty())
    return Status::invalid_argument("step group " + spec.group_id + ": no coordinator URL to meet at");
  protocol::Peer peer{url, options.auth_token, options.tls, nullptr};
  // Our barrier first (plain calls: a refused token or a group that ended is a clean Status, not a c10d
  // exception, and an interrupt ends the wait).
  const auto timeout = std::chrono::milliseconds(spec.timeout_ms);
  ND_RETURN_IF_ERROR(group_barrier(peer, spec, options.cancelled));
  c10::intrusive_ptr<c10d::Store> store =
      c10::make_intrusive<HttpGroupStore>(peer, spec.group_id, timeout, options.cancelled);
  runtime::StepGroupOptions o;
  o.backend = "gloo";
  o.timeout = timeout;
  o.host = options.host;
  o.names = spec.names;
  GroupMembership joined;
  joined.tally = std::make_shared<ExchangeTally>();
  Status made;
  if (spec.mode == "cfg+tiles" || spec.mode == "rows+cfg") {
    auto grid = runtime::make_cfg_grid(store, spec.rank, spec.size, o);
    made = grid.status();
    if (grid.is_ok()) {
      joined.group = std::make_shared<TimedStepGroup>(grid->pair, joined.tally);
      joined.cross = std::make_shared<TimedStepGroup>(grid->cross, joined.tally);
    }
  } else {
    auto group = runtime::make_step_group(store, spec.rank, spec.size, o);
    made = group.status();
    if (group.is_ok()) joined.group = std::make_shared<TimedStepGroup>(*group, joined.tally);
  }
  if (!made.is_ok() && options.cancelled && options.cancelled())
    return Status::cancelled("step group " + spec.group_id + ": interrupted while joining");
  if (!made.is_ok()) return made;
  return joined;
}

}  // namespace netdist::cluster
