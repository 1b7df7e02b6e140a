// NetdistLink: a connect-out netdist worker (--workers URL, or the legacy POST join) as a worker link
// (worker_link.h). The coordinator makes every call (protocol.h): capabilities to probe, status as the
// idle heartbeat and for progress and live events, shard and prompt to run a task, interrupt to stop one.
// A worker whose capabilities state another protocol version is not usable (the probe's error names
// both versions).
#pragma once

#include "cluster/worker_link.h"

namespace netdist::cluster {

// A netdist worker's reply to a task (POST shard / prompt, or the result a dial-in worker posted) → its
// output: the rows of a row shard (checked against the task's row count) or the prompt's reply.
// `who` names the worker in messages; `seconds` is the round trip, which the cost model learns from for row
// shards (whole prompts: the seconds the worker's samplers took, as it reports them). A failed task sets
// `fault` (shard_runner.h TaskFault); 409 is kCancelled, 401 kUnauthenticated.
// A tile task's reply is its tiles (uint8, checked against the task's tile count).
Result<TaskOutput> decode_task_reply(const std::string& who, const TaskSpec& spec, HttpReply reply, double seconds,
                                     TaskFault* fault);

class NetdistLink final : public WorkerLink {
 public:
  NetdistLink(std::string url, LinkSettings settings) : url_(std::move(url)), settings_(std::move(settings)) {}

  LinkIdentity identity() const override { return LinkIdentity{url_, std::nullopt, false, "netdist"}; }
  std::string refuses(protocol::TaskKind) const override { return ""; }
  Result<std::optional<Json>> probe() override;
  Result<std::optional<Json>> heartbeat() override;
  Result<TaskOutput> run(const LinkTask& task, TaskFault* fault) override;
  void interrupt(protocol::TaskKind kind, const std::string& task_id) override;
  std::optional<protocol::StatusReply> progress() override;
  std::optional<Json> live_events(const std::string& task_id, size_t from) override;

 private:
  protocol::Peer peer(bool cancellable) const;

  const std::string url_;
  const LinkSettings settings_;
};

}  // namespace netdist::cluster
