// WorkerLink: how the scheduler (cluster.h) reaches one worker, whatever its kind. One implementation per
// kind, each keeping its own state:
//   LocalLink      (local_link.h)    this process's own ShardRunner, in-process calls; row shards only
//   NetdistLink    (netdist_link.h)  a connect-out netdist worker (--workers URL, legacy join): HTTP calls
//   DialInLink     (dial_in_link.h)  a dial-in netdist worker (netdist worker --join): it pulls, we wait
//   ComfyLink      (comfy_link.h)    a stock ComfyUI server (comfy+http:// URL): whole prompts only
// A link knows this interface, task.h and the protocol (protocol.h), never the scheduler's internals. The
// scheduler's per-link loop reads: probe until alive → wait for a task the link accepts → run(task) →
// account; while idle it calls heartbeat() every ClusterOptions::heartbeat.
//
// Thread-safety: run, probe and heartbeat are called by the link's one scheduler thread; interrupt,
// progress, live_events, close and the const members from any thread while run() is in progress.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "cluster/protocol.h"
#include "cluster/shard_runner.h"
#include "cluster/task.h"
#include "core/status.h"

namespace netdist::cluster {

// What every link shares: how to reach workers and when to give up.
struct LinkSettings {
  std::string auth_token;  // sent to workers as "Authorization: Bearer"
  std::shared_ptr<const TlsClientContext> tls;
  std::chrono::milliseconds task_timeout{600000};  // ClusterOptions::shard_timeout
  std::chrono::milliseconds heartbeat{2000};
  std::string input_dir = "input";
  const std::atomic<bool>* halting = nullptr;  // set by stop(): calls in flight end early
};

// Who a link is, for the cluster's status and log lines.
struct LinkIdentity {
  std::string url;                       // "local", a worker URL, or a dial-in worker's advertised URL
  std::optional<std::string> worker_id;  // dial-in workers
  bool dial_in = false;
  std::string kind = "netdist";  // "netdist" or "comfy"
};

class WorkerLink {
 public:
  virtual ~WorkerLink() = default;

  virtual LinkIdentity identity() const = 0;
  // Whether this link ever runs tasks of `kind`; when not, why (for check_prompt's message), else "".
  virtual std::string refuses(protocol::TaskKind kind) const = 0;
  // True for this process's own runner (not counted among remote workers).
  virtual bool in_process() const { return false; }
  // Whether a failed task makes the worker prove it is alive again (probe) before it gets another.
  virtual bool reprobe_after_failure() const { return true; }
  // Whether the benchmark in its capabilities seeds its speed (cost_model.h) when a probe succeeds.
  virtual bool seeds_speed() const { return true; }

  // The worker's capabilities (shard_runner.h capabilities()), blocking up to about a heartbeat:
  // a value when it answered, nullopt when there is nothing to say yet (a dial-in worker that has not
  // pulled again), an error naming why it is not usable (connection refused, another protocol version).
  virtual Result<std::optional<Json>> probe() = 0;
  // Liveness of an idle worker that has capabilities: an error = not alive (its capabilities are dropped
  // until probe() succeeds again); a value = its capabilities changed to it.
  virtual Result<std::optional<Json>> heartbeat() = 0;

  // Runs one task and returns its output. A failure sets `fault` to whose fault it is (TaskFault: left
  // kWorker for transport failures); kCancelled when interrupted.
  virtual Result<TaskOutput> run(const LinkTask& task, TaskFault* fault) = 0;
  // Stops the task `task_id` of `kind` this link runs now, if it still does (best effort, returns soon).
  virtual void interrupt(protocol::TaskKind kind, const std::string& task_id) = 0;
  // The running task's progress as the worker reports it (nullopt: unknown or not reported).
  virtual std::optional<protocol::StatusReply> progress() = 0;
  // The events the worker has recorded for whole-prompt task `task_id` from index `from` on; nullopt when
  // this link does not relay events this way (ComfyUI relays them itself) or they are not available now.
  virtual std::optional<Json> live_events(const std::string& task_id, size_t from) = 0;
  // The scheduler is stopping: wake every wait of this link (held pulls, a task waiting for its reply).
  virtual void close() {}
};

}  // namespace netdist::cluster
