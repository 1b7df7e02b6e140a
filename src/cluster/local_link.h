// LocalLink: this process's own ShardRunner as a worker link (worker_link.h), called in-process. It takes
// row shards and USDU tile steps only: whole prompts never run here, since the coordinator's executor uses
// the same engine at the same time. Its capabilities are read once (hashes, a benchmark) and it never loses them: a failed
// shard does not make it prove it is alive.
#pragma once

#include "cluster/worker_link.h"

namespace netdist::cluster {

class LocalLink final : public WorkerLink {
 public:
  // `runner` must outlive the link; `capabilities` is runner.capabilities(), read by the caller.
  LocalLink(ShardRunner& runner, Json capabilities) : runner_(runner), caps_(std::move(capabilities)) {}

  LinkIdentity identity() const override { return LinkIdentity{"local", std::nullopt, false, "netdist"}; }
  std::string refuses(protocol::TaskKind kind) const override;
  bool in_process() const override { return true; }
  bool reprobe_after_failure() const override { return false; }
  Result<std::optional<Json>> probe() override { return std::optional<Json>(caps_); }
  Result<std::optional<Json>> heartbeat() override { return std::optional<Json>(); }
  Result<TaskOutput> run(const LinkTask& task, TaskFault* fault) override;
  void interrupt(protocol::TaskKind, const std::string&) override { runner_.interrupt(); }
  std::optional<protocol::StatusReply> progress() override;
  std::optional<Json> live_events(const std::string&, size_t) override { return std::nullopt; }
  void close() override { runner_.interrupt(); }

 private:
  ShardRunner& runner_;
  const Json caps_;
};

}  // namespace netdist::cluster
