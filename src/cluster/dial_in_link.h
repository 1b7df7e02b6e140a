// DialInLink: a dial-in netdist worker (`netdist worker --join`, dial_in.h) as a worker link
// (worker_link.h). The worker makes every request, so the link is a mailbox: run() leaves the task in it and
// waits; the worker's pull (held up to poll_timeout) takes it, its progress reports renew the lease and
// fetch the interrupt flag, and its result ends run(). Any pull, progress or result renews the worker's
// lease; a worker silent for 3 × heartbeat while no pull of it is held has lost it (its task fails here and
// goes back to the queue). After a failure the worker is alive again when it pulls.
// Thread-safety: every member may be called from any thread (one mutex).
#pragma once

#include <condition_variable>
#include <mutex>

#include "cluster/worker_link.h"

namespace netdist::cluster {

class DialInLink final : public WorkerLink {
 public:
  DialInLink(std::string worker_id, std::string label, Json capabilities, LinkSettings settings,
             std::chrono::milliseconds poll_timeout);

  LinkIdentity identity() const override;
  std::string refuses(protocol::TaskKind) const override { return ""; }
  // Its speed is learnt from its tasks only (as before the links: its pulls never seeded the cost model).
  bool seeds_speed() const override { return false; }
  Result<std::optional<Json>> probe() override;
  Result<std::optional<Json>> heartbeat() override;
  Result<TaskOutput> run(const LinkTask& task, TaskFault* fault) override;
  void interrupt(protocol::TaskKind kind, const std::string& task_id) override;
  std::optional<protocol::StatusReply> progress() override;
  std::optional<Json> live_events(const std::string& task_id, size_t from) override;
  void close() override;

  // The worker's requests (coordinator.h routes, through Cluster).
  // A pull: renews the lease, takes `capabilities` (null = as before) and `label` (empty = as before), then
  // waits up to poll_timeout for a task: its protocol::PulledTask JSON, or nullopt. kUnavailable once closed.
  Result<std::optional<Json>> pull(const Json& capabilities, const std::string& label);
  // Progress of `ticket`: true = interrupt it. kNotFound when the ticket is not current.
  Result<bool> report_progress(uint64_t ticket, int64_t step, int64_t steps, size_t events_from, const Json& events);
  // The outcome of `ticket` (as POST shard / prompt would have answered); `kind` (none = not stated) must be
  // the ticket's. kNotFound when the ticket is not current, invalid_argument naming both kinds.
  Status report_result(uint64_t ticket, int http_status, std::string body, std::optional<protocol::TaskKind> kind);

 private:
  // The task run() handed over, until the worker reports its outcome.
  struct Mail {
    uint64_t ticket = 0;
    std::string task_id;  // the shard id, or a whole prompt's task id
    protocol::TaskKind kind = protocol::TaskKind::shard;
    Json request;         // its protocol request body
    bool taken = false;   // a pull carried it to the worker
    bool interrupt = false;
    int64_t step = 0, steps = 0;
    Json events = Json::array();     // a whole prompt's events so far, from its progress reports
    std::optional<HttpReply> reply;  // as POST shard / prompt would have answered
  };
  bool lease_lost() const;  // mutex_ held
  std::string who() const;  // mutex_ held
  // Waits (lock held) for the mail's reply, the lease, the job's withdrawal, the timeout or close().
  Result<HttpReply> await_reply(std::unique_lock<std::mutex>& lock, const LinkTask& task);

  const std::string worker_id_;
  const LinkSettings settings_;
  const std::chrono::milliseconds poll_timeout_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::string label_;
  Json reported_caps_;
  bool alive_ = true;  // a pull came since the last failure (probe() answers then)
  bool closed_ = false;
  std::chrono::steady_clock::time_point last_seen_;
  int pulls_held_ = 0;
  std::optional<Mail> mail_;
};

}  // namespace netdist::cluster
