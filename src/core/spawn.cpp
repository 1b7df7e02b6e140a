#include "core/spawn.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <regex>
#include <thread>

extern char** environ;

namespace netdist {

namespace {

// This process's environment with `set` applied (later entries win).
std::vector<std::string> child_environment(const std::vector<std::pair<std::string, std::string>>& set) {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    const std::string entry(*e);
    bool replaced = false;
    for (const auto& [name, value] : set) replaced = replaced || entry.rfind(name + "=", 0) == 0;
    if (!replaced) out.push_back(entry);
  }
  for (const auto& [name, value] : set) out.push_back(name + "=" + value);
  return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

Result<pid_t> spawn_process(const SpawnSpec& spec) {
  std::vector<std::string> args = spec.args.empty() ? std::vector<std::string>{spec.program} : spec.args;
  std::vector<std::string> env = child_environment(spec.env);
  std::vector<char*> argv = pointers(args), envp = pointers(env);

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  if (spec.stdout_fd >= 0 && spec.stdout_fd != STDOUT_FILENO)
    posix_spawn_file_actions_adddup2(&actions, spec.stdout_fd, STDOUT_FILENO);
  if (!spec.stderr_path.empty())
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, spec.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
  // Only stdin, stdout and stderr cross: no listening socket, pipe end or database of this process stays
  // open in the child (glibc >= 2.34).
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  // The child starts with every signal unblocked and at its default action, whatever this thread blocks
  // or this process ignores (SIGPIPE).
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (spec.new_process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attr, 0);
  }
  posix_spawnattr_setflags(&attr, flags);

  pid_t pid = -1;
  const int rc = spec.search_path ? posix_spawnp(&pid, spec.program.c_str(), &actions, &attr, argv.data(), envp.data())
                                  : posix_spawn(&pid, spec.program.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Status::io_error("cannot start '" + spec.program + "': " + std::strerror(rc));
  return pid;
}

Result<std::string> read_matching_line(int fd, const std::string& pattern, std::chrono::milliseconds timeout,
                                       const std::string& what) {
  const std::regex re(pattern);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string pending;
  for (;;) {
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos; pending.erase(0, nl + 1)) {
      std::smatch m;
      const std::string line = pending.substr(0, nl);
      if (std::regex_search(line, m, re)) return m.size() > 1 ? m[1].str() : m[0].str();
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    const int ready = left.count() > 0 ? poll(&p, 1, int(left.count())) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0)
      return Status::unavailable(what + " printed no line matching '" + pattern + "' within " +
                                 std::to_string(timeout.count()) + " ms");
    char buf[512];
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::unavailable(what + " ended before printing a line matching '" + pattern + "'");
    pending.append(buf, size_t(n));
  }
}

std::optional<int> wait_child(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t got = waitpid(pid, &status, WNOHANG);
    if (got == pid) return status;
    if (got < 0 && errno != EINTR) return 0;  // not our child (any more): nothing to wait for
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

int stop_child(pid_t pid, int sig, std::chrono::milliseconds grace, bool group) {
  if (pid <= 0) return 0;
  auto send = [&](int s) {
    if (group) kill(-pid, s);
    kill(pid, s);
  };
  send(sig);
  send(SIGCONT);
  if (std::optional<int> status = wait_child(pid, grace)) return *status;
  send(SIGKILL);
  // SIGKILL cannot be caught or blocked: the child is gone as soon as the kernel has torn it down.
  return wait_child(pid, std::chrono::seconds(10)).value_or(0);
}

}  // namespace netdist
