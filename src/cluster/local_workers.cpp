#include "cluster/local_workers.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace netdist::cluster {

pid_t LocalWorkers::launch(const LocalWorkerSpec& spec) {
  std::vector<std::string> argv = {"/proc/self/exe", "worker"};
  argv.insert(argv.end(), spec.args.begin(), spec.args.end());
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (!spec.cuda_visible_devices.empty())
      setenv("CUDA_VISIBLE_DEVICES", spec.cuda_visible_devices.c_str(), 1);
    std::vector<char*> cargv;
    for (std::string& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execv("/proc/self/exe", cargv.data());
    std::perror("netdist: cannot start a local worker");
    _exit(127);
  }
  return pid;
}

void LocalWorkers::start() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const LocalWorkerSpec& spec : specs_) pids_.push_back(launch(spec));
  monitor_ = std::thread([this] { monitor(); });
}

void LocalWorkers::monitor() {
  while (!stopping_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < pids_.size() && !stopping_; ++i) {
      int status = 0;
      if (pids_[i] > 0 && waitpid(pids_[i], &status, WNOHANG) == pids_[i]) {
        std::fprintf(stderr, "netdist: local worker %zu (pid %d) exited; restarting it\n", i, int(pids_[i]));
        std::this_thread::sleep_for(std::chrono::seconds(1));
        pids_[i] = launch(specs_[i]);
      }
    }
  }
}

void LocalWorkers::stop() {
  if (stopping_.exchange(true)) return;
  if (monitor_.joinable()) monitor_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  for (pid_t pid : pids_) {
    if (pid > 0) kill(pid, SIGTERM);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (pid_t& pid : pids_) {
    while (pid > 0) {
      if (waitpid(pid, nullptr, WNOHANG) == pid) break;
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid = 0;
  }
}

}  // namespace netdist::cluster
