// The worker half of dial-in (`netdist worker --join URL`): the worker makes every request, so it works
// behind NAT or a firewall; the coordinator never connects to it.
//   loop: POST <coordinator>/netdist/v1/pull {"worker_id", "url", "capabilities" (first pull, and again
//         whenever the coordinator answers 409: it does not know this id, e.g. after a restart)}
//         → 204: no work within the coordinator's poll timeout (the long poll is the heartbeat); pull again
//         → 200: a task with "kind", "ticket", "progress_ms": kind "shard" (the /netdist/v1/shard body;
//           also when "kind" is absent) or "prompt" (the /netdist/v1/prompt body: a whole prompt): run it
//           on the ShardRunner (serve_shard / serve_prompt); meanwhile POST /netdist/v1/progress
//           {"worker_id", "ticket", "step", "steps"} every progress_ms (a reply {"interrupt": true}, or
//           409 = the task is no longer this worker's, interrupts it); then POST
//           /netdist/v1/result?worker_id=&ticket=&status=[&kind=prompt] with the reply that route would
//           have given (safetensors, prompt reply JSON, or error JSON) as body. An unknown kind is
//           answered with a 400 error result.
//   An unreachable coordinator is retried every second. worker_id is "<hostname>-<pid>-<random>": a
//   restarted worker is a new worker to the coordinator. Every request carries the bearer token.
// Thread-safety: start/stop from the owning thread; the loop runs on its own thread.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "cluster/http_client.h"
#include "cluster/protocol.h"
#include "cluster/shard_runner.h"

namespace netdist::cluster {

struct DialInOptions {
  std::string coordinator;  // http[s]://host:port of the coordinator
  std::string label;        // the URL shown for this worker in the coordinator's status (--advertise)
  std::string auth_token;
  std::shared_ptr<const TlsClientContext> tls;  // an https:// coordinator (--tls-ca); null = system CA store
  std::chrono::milliseconds retry_delay{1000};
};

class DialIn {
 public:
  // `runner` must outlive this object.
  DialIn(ShardRunner& runner, DialInOptions options);
  ~DialIn() { stop(); }
  DialIn(const DialIn&) = delete;
  DialIn& operator=(const DialIn&) = delete;

  void start();
  // Ends a held pull at once, interrupts a running shard (reported as interrupted), joins. Idempotent.
  void stop();
  const std::string& worker_id() const { return worker_id_; }

 private:
  void loop();
  void run_task(const protocol::PulledTask& task);
  // The coordinator as this worker calls it; `cancel` ends a call early.
  protocol::Peer coordinator_peer(const std::atomic<bool>* cancel) const;
  void sleep_for(std::chrono::milliseconds d);

  ShardRunner& runner_;
  DialInOptions options_;
  std::string worker_id_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace netdist::cluster
