// Worker child processes started by a coordinator (`--enable-distributed` without `--workers`): one per
// local GPU (CUDA_VISIBLE_DEVICES=i, `--cuda-device 0`) or N CPU workers. Each child is
// `<this executable> worker --port 0 --join <coordinator URL> [--auth-token T] <extra args>`; it dials in,
// so the coordinator learns its port from the join. Children are started with posix_spawn, never fork()
// (core/spawn.h: a fork runs OpenBLAS's atfork handler under another thread's running sgemm, which then
// never returns), so a start or restart is safe while the coordinator renders. Each child gets
// NETDIST_EXIT_WITH_PARENT=<this pid> and ends itself when this process dies (cli: exit_with_parent). A
// child that exits is restarted after a second; stop() (and the destructor) sends SIGTERM, then SIGKILL
// after `grace`, and reaps them; kill_now() SIGKILLs and reaps them at once (a shutdown out of time).
// Thread-safety: start/stop from the owning thread; kill_now from any thread; the monitor runs on its own.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace netdist::cluster {

struct LocalWorkerSpec {
  std::string cuda_visible_devices;  // empty = leave the variable as it is
  std::vector<std::string> args;     // after "worker"
};

class LocalWorkers {
 public:
  explicit LocalWorkers(std::vector<LocalWorkerSpec> specs,
                        std::chrono::milliseconds grace = std::chrono::seconds(5))
      : specs_(std::move(specs)), grace_(grace) {}
  ~LocalWorkers() { stop(); }
  void start();
  void stop();
  void kill_now();

 private:
  pid_t launch(const LocalWorkerSpec& spec);
  void monitor();

  std::vector<LocalWorkerSpec> specs_;
  std::chrono::milliseconds grace_;
  std::vector<std::atomic<pid_t>> pids_;  // one per spec; 0 = not running
  std::mutex mutex_;  // start, stop and the monitor's restarts
  std::atomic<bool> stopping_{false};
  std::thread monitor_;
};

}  // namespace netdist::cluster
