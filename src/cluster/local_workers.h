// Worker child processes started by a coordinator (`--enable-distributed` without `--workers`): one per
// local GPU (CUDA_VISIBLE_DEVICES=i, `--cuda-device 0`) or N CPU workers. Each child is
// `<this executable> worker --port 0 --join <coordinator URL> [--auth-token T] <extra args>`; it dials in,
// so the coordinator learns its port from the join. A child that exits is restarted after a second; stop()
// (and the destructor) sends SIGTERM, then SIGKILL after 5 s, and reaps them.
// Thread-safety: start/stop from the owning thread; the monitor runs on its own thread.
#pragma once

#include <sys/types.h>

#include <atomic>
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
  explicit LocalWorkers(std::vector<LocalWorkerSpec> specs) : specs_(std::move(specs)) {}
  ~LocalWorkers() { stop(); }
  void start();
  void stop();

 private:
  pid_t launch(const LocalWorkerSpec& spec);
  void monitor();

  std::vector<LocalWorkerSpec> specs_;
  std::vector<pid_t> pids_;
  std::mutex mutex_;
  std::atomic<bool> stopping_{false};
  std::thread monitor_;
};

}  // namespace netdist::cluster
