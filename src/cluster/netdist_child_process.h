// A `netdist` child process for tests and benchmarks, without GoogleTest (process_test_util.h wraps it for
// the tests; bench/sched_bench.cpp uses it directly): `prefix... binary args...` is forked with
// NETDIST_MODEL set to the embedded tiny model, stderr to a log file and stdout to a pipe; its URL
// (http:// or https://) comes from the "listening on" line it prints. With a prefix (e.g. `ip netns exec
// NS`, looked up on PATH) the child gets its own process group, so stop() reaches the prefix's child too.
// The URL is empty when the process exits (or the pipe cannot be made) before printing one.
// Thread-safety: owned by one thread.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "netdist/source_dir.h"

namespace netdist::cluster::test {

inline std::string tiny_model() {
  // (fs::path, not string + literal: GCC 12 -O3 flags that as -Warray-bounds for short source paths.)
  return (std::filesystem::path(NETDIST_SOURCE_DIR) / "models" / "tiny-emoji.safetensors").string();
}

// Forks and execs `prefix... binary args...` (prefix[0], else binary, looked up on PATH when it has no '/')
// with NETDIST_MODEL set, stderr to `log` (truncated), stdout to `stdout_fd` (< 0: this process's stdout).
// `own_group`: the child leads a new process group. Returns the child's pid (-1 if fork failed).
inline pid_t spawn_netdist(const std::string& binary, const std::vector<std::string>& args,
                           const std::filesystem::path& log, const std::vector<std::string>& prefix = {},
                           int stdout_fd = -1, bool own_group = false) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (stdout_fd >= 0) dup2(stdout_fd, STDOUT_FILENO);
    const int err = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (err >= 0) dup2(err, STDERR_FILENO);
    if (own_group) setpgid(0, 0);
    setenv("NETDIST_MODEL", tiny_model().c_str(), 1);
    std::vector<std::string> all = prefix;
    all.push_back(binary);
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

class NetdistChildProcess {
 public:
  NetdistChildProcess(const std::string& binary, const std::vector<std::string>& args,
                      const std::filesystem::path& log, const std::vector<std::string>& prefix = {})
      : own_group_(!prefix.empty()) {
    int out[2];
    if (pipe(out) != 0) return;
    fcntl(out[0], F_SETFD, FD_CLOEXEC);  // the child keeps only the write end
    pid_ = spawn_netdist(binary, args, log, prefix, out[1], own_group_);
    close(out[1]);
    FILE* f = fdopen(out[0], "r");
    char line[512];
    const std::regex re("listening on (https?://[^ \\n]+)");
    while (pid_ > 0 && f && std::fgets(line, sizeof line, f)) {
      std::cmatch m;
      if (std::regex_search(line, m, re)) {
        url_ = m[1].str();
        break;
      }
    }
    stdout_ = f;
  }
  ~NetdistChildProcess() { stop(SIGTERM); }
  NetdistChildProcess(const NetdistChildProcess&) = delete;
  NetdistChildProcess& operator=(const NetdistChildProcess&) = delete;

  // Sends `sig` (to the process group too when it has one), then SIGCONT (a stopped process would never
  // act on it), and reaps the child. Idempotent.
  void stop(int sig) {
    if (pid_ > 0) {
      if (own_group_) {
        kill(-pid_, sig);
        kill(-pid_, SIGCONT);
      }
      kill(pid_, sig);
      kill(pid_, SIGCONT);
      waitpid(pid_, nullptr, 0);
    }
    pid_ = 0;
    if (stdout_) std::fclose(stdout_);
    stdout_ = nullptr;
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
