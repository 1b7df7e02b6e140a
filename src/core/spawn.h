// Child processes without fork(): every netdist process that starts another (a coordinator's local workers,
// `netdist demo`, the process tests and benchmarks) goes through spawn_process, and waits on one with a bound.
//
// Why not fork(): fork() runs the pthread_atfork handlers in the calling thread while other threads keep
// running. OpenBLAS (libtorch's BLAS on Debian) registers one that shuts its thread pool down, so a fork
// while another thread is inside sgemm leaves that call spinning forever in exec_blas_async_wait (a
// coordinator that started a local worker while it encoded a prompt hung that way). posix_spawn in glibc
// (Debian 12: glibc 2.36, sysdeps/unix/sysv/linux/spawni.c) starts the child with
// clone(CLONE_VM | CLONE_VFORK) on a stack of its own and calls exec at once; it never runs the atfork
// handlers (only fork() calls __run_fork_handlers), so no library state of this process is touched.
// Checked on Debian 12 (glibc 2.36-9+deb12u14): a pthread_atfork prepare handler runs for fork() and not
// for posix_spawn, and strace shows clone3({flags=CLONE_VM|CLONE_VFORK}); spawn_test.cpp keeps the first.
// Thread-safety: every function may be called from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace netdist {

struct SpawnSpec {
  std::string program;            // a path; with search_path, a name without '/' is looked up on PATH
  std::vector<std::string> args;  // argv, argv[0] included (empty: {program})
  bool search_path = false;
  // Set in the child's environment (added, or replacing this process's value); the rest is inherited.
  std::vector<std::pair<std::string, std::string>> env;
  int stdout_fd = -1;        // becomes the child's stdout; < 0: inherited
  std::string stderr_path;   // created or truncated as the child's stderr; empty: inherited
  bool new_process_group = false;  // the child leads a process group of its own
};

// Starts `spec` with posix_spawn(p). Descriptors 3 and up are closed in the child (only stdin, stdout and
// stderr cross). io_error naming the program when it cannot be started (no such file, not executable).
Result<pid_t> spawn_process(const SpawnSpec& spec);

// Reads lines from `fd` (a child's stdout pipe) until one matches `pattern` (std::regex_search) and returns
// that match's first group (the whole match without one). unavailable naming `what` when the other end
// closes first or `timeout` passes; bytes after the matching line stay unread in the pipe only up to the
// end of what was read.
Result<std::string> read_matching_line(int fd, const std::string& pattern, std::chrono::milliseconds timeout,
                                       const std::string& what);

// Waits up to `timeout` for child `pid` to exit and reaps it: its wait status, or nullopt while it runs.
std::optional<int> wait_child(pid_t pid, std::chrono::milliseconds timeout);

// Sends `sig` to `pid` (and SIGCONT, so a stopped child acts on it), waits up to `grace`, then SIGKILLs it;
// always reaps it. With `group`, both signals go to its process group too. Returns the wait status.
int stop_child(pid_t pid, int sig, std::chrono::milliseconds grace, bool group = false);

}  // namespace netdist
