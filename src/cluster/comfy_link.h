// ComfyLink: a stock ComfyUI server (--workers comfy+http://...) as a worker link (worker_link.h), driven
// with ComfyUI's own API only (comfy_worker.h). It takes whole prompts only, never row shards (those need
// netdist's engine: split = unsplit). Capabilities come from GET /object_info and /system_stats, re-read
// every kComfyCapsEvery idle heartbeats (the other heartbeats probe /system_stats); a task runs through
// run_comfy_prompt, its events reach the task's relay live, and an abandoned task is withdrawn by the
// running thread itself (/queue delete or /interrupt). Its speed is measured by the round trip of whole
// prompts, since it runs nothing else.
#pragma once

#include "cluster/worker_link.h"

namespace netdist::cluster {

class ComfyLink final : public WorkerLink {
 public:
  // `url`: the --workers URL, with its comfy+ prefix.
  ComfyLink(std::string url, LinkSettings settings) : url_(std::move(url)), settings_(std::move(settings)) {}

  LinkIdentity identity() const override { return LinkIdentity{url_, std::nullopt, false, "comfy"}; }
  std::string refuses(protocol::TaskKind kind) const override;
  Result<std::optional<Json>> probe() override;
  Result<std::optional<Json>> heartbeat() override;
  Result<TaskOutput> run(const LinkTask& task, TaskFault* fault) override;
  void interrupt(protocol::TaskKind, const std::string&) override {}  // run() withdraws it itself
  std::optional<protocol::StatusReply> progress() override { return std::nullopt; }
  std::optional<Json> live_events(const std::string&, size_t) override { return std::nullopt; }

 private:
  const std::string url_;
  const LinkSettings settings_;
  int64_t beats_ = 0;  // idle heartbeats; every kComfyCapsEvery-th refreshes the capabilities
};

}  // namespace netdist::cluster
