// A `netdist` child process for tests and benchmarks, without GoogleTest (process_test_util.h wraps it for
// the tests; bench/sched_bench.cpp uses it directly): `prefix... binary args...` is spawned with
// NETDIST_MODEL set to the embedded tiny model, stderr to a log file and stdout to a pipe; its URL
// (http:// or https://) comes from the "listening on" line it prints. With a prefix (e.g. `ip netns exec
// NS`, looked up on PATH) the child gets its own process group, so stop() reaches the prefix's child too.
// The URL is empty when the process exits (or the pipe cannot be made) before printing one, or prints none
// within `start_timeout` (then it is killed). stop() waits a bounded time too.
// Thread-safety: owned by one thread.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "core/spawn.h"
#include "netdist/source_dir.h"

namespace netdist::cluster::test {

inline std::string tiny_model() {
  // (fs::path, not string + literal: GCC 12 -O3 flags that as -Warray-bounds for short source paths.)
  return (std::filesystem::path(NETDIST_SOURCE_DIR) / "models" / "tiny-emoji.safetensors").string();
}

// Starts `prefix... binary args...` (prefix[0], else binary, looked up on PATH when it has no '/') with
// posix_spawn (core/spawn.h: no fork, so no pthread_atfork handler runs in the test or benchmark process)
// with NETDIST_MODEL set, stderr to `log` (truncated), stdout to `stdout_fd` (< 0: this process's stdout).
// `own_group`: the child leads a new process group. Returns the child's pid (-1 if it could not start).
inline pid_t spawn_netdist(const std::string& binary, const std::vector<std::string>& args,
                           const std::filesystem::path& log, const std::vector<std::string>& prefix = {},
                           int stdout_fd = -1, bool own_group = false) {
  SpawnSpec spec;
  spec.args = prefix;
  spec.args.push_back(binary);
  spec.args.insert(spec.args.end(), args.begin(), args.end());
  spec.program = spec.args[0];
  spec.search_path = true;
  spec.env = {{"NETDIST_MODEL", tiny_model()}};
  spec.stdout_fd = stdout_fd;
  spec.stderr_path = log.string();
  spec.new_process_group = own_group;
  // posix_spawn opens the log before exec, so its folder must exist (a fork-based start used to let the child
  // fail to open it and run on).
  std::error_code ec;
  if (log.has_parent_path()) std::filesystem::create_directories(log.parent_path(), ec);
  auto pid = spawn_process(spec);
  if (!pid.is_ok()) std::fprintf(stderr, "spawn_netdist: %s\n", pid.status().to_string().c_str());
  return pid.is_ok() ? *pid : -1;
}

class NetdistChildProcess {
 public:
  NetdistChildProcess(const std::string& binary, const std::vector<std::string>& args,
                      const std::filesystem::path& log, const std::vector<std::string>& prefix = {},
                      std::chrono::seconds start_timeout = std::chrono::seconds(120))
      : own_group_(!prefix.empty()) {
    int out[2];
    if (pipe(out) != 0) return;
    fcntl(out[0], F_SETFD, FD_CLOEXEC);  // the child keeps only the write end
    pid_ = spawn_netdist(binary, args, log, prefix, out[1], own_group_);
    close(out[1]);
    FILE* f = fdopen(out[0], "r");
    stdout_ = f;  // kept open: the child writes to it while it runs
    if (pid_ <= 0) return;
    // A bounded read: a child that hangs before it prints its URL is stopped, not waited for.
    auto url = read_matching_line(out[0], "listening on (https?://[^ \\n]+)", start_timeout, "netdist child " + std::to_string(pid_));
    if (url.is_ok()) {
      url_ = *url;
    } else {
      std::fprintf(stderr, "%s\n", url.status().to_string().c_str());
      stop(SIGKILL);
    }
  }
  ~NetdistChildProcess() { stop(SIGTERM); }
  NetdistChildProcess(const NetdistChildProcess&) = delete;
  NetdistChildProcess& operator=(const NetdistChildProcess&) = delete;

  // Sends `sig` (to the process group too when it has one), then SIGCONT (a stopped process would never
  // act on it), and reaps the child; SIGKILL after `grace` if it has not exited by then. Returns its wait
  // status (0 when it was not running). Idempotent.
  int stop(int sig, std::chrono::milliseconds grace = std::chrono::seconds(30)) {
    int status = 0;
    if (pid_ > 0) status = stop_child(pid_, sig, grace, own_group_);
    pid_ = 0;
    if (stdout_) std::fclose(stdout_);
    stdout_ = nullptr;
    return status;
  }
  const std::string& url() const { return url_; }
  pid_t pid() const { return pid_; }

 private:
  bool own_group_ = false;
  pid_t pid_ = 0;
  FILE* stdout_ = nullptr;
  std::string url_;
};

}  // namespace netdist::cluster::test
