#include "cluster/local_workers.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "core/log.h"
#include "core/spawn.h"

namespace netdist::cluster {

pid_t LocalWorkers::launch(const LocalWorkerSpec& spec) {
  SpawnSpec s;
  s.program = "/proc/self/exe";
  s.args = {"/proc/self/exe", "worker"};
  s.args.insert(s.args.end(), spec.args.begin(), spec.args.end());
  s.env.emplace_back("NETDIST_EXIT_WITH_PARENT", std::to_string(getpid()));
  if (!spec.cuda_visible_devices.empty()) s.env.emplace_back("CUDA_VISIBLE_DEVICES", spec.cuda_visible_devices);
  auto pid = spawn_process(s);
  if (!pid.is_ok()) {
    // The monitor tries again after a second, as for a child that exited.
    log::error("cannot start a local worker: {}", pid.status().to_string());
    return 0;
  }
  return *pid;
}

void LocalWorkers::start() {
  std::lock_guard<std::mutex> lock(mutex_);
  pids_ = std::vector<std::atomic<pid_t>>(specs_.size());
  for (size_t i = 0; i < specs_.size(); ++i) pids_[i] = launch(specs_[i]);
  monitor_ = std::thread([this] { monitor(); });
}

void LocalWorkers::monitor() {
  while (!stopping_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < pids_.size() && !stopping_; ++i) {
      const pid_t pid = pids_[i];
      if (pid <= 0 || waitpid(pid, nullptr, WNOHANG) == pid) {
        if (pid > 0) log::warn("local worker {} (pid {}) exited; restarting it", i, int(pid));
        pids_[i] = 0;
        std::this_thread::sleep_for(std::chrono::seconds(1));
        if (!stopping_) pids_[i] = launch(specs_[i]);
      }
    }
  }
}

void LocalWorkers::stop() {
  if (stopping_.exchange(true)) return;
  if (monitor_.joinable()) monitor_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& pid : pids_) {
    if (pid > 0) kill(pid, SIGTERM);
  }
  const auto deadline = std::chrono::steady_clock::now() + grace_;  // one grace for all of them
  for (auto& pid : pids_) {
    if (pid <= 0) continue;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (!wait_child(pid, std::max(left, std::chrono::milliseconds(0)))) stop_child(pid, SIGKILL, std::chrono::seconds(0));
    pid = 0;
  }
}

void LocalWorkers::kill_now() {
  stopping_ = true;
  // Not under mutex_: the monitor may hold it through its restart delay, and the caller is out of time. A
  // child the monitor starts after this read dies with this process (exit_with_parent).
  std::vector<pid_t> pids;
  for (const auto& pid : pids_) pids.push_back(pid);
  for (pid_t pid : pids) {
    if (pid > 0) kill(pid, SIGKILL);
  }
  for (pid_t pid : pids) {
    if (pid > 0) (void)wait_child(pid, std::chrono::seconds(2));
  }
}

}  // namespace netdist::cluster
