#include "core/spawn.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace netdist {
namespace {

std::atomic<int> g_prepare_calls{0};

SpawnSpec command(std::string program, std::vector<std::string> args = {}) {
  SpawnSpec spec;
  spec.program = std::move(program);
  spec.args = std::move(args);
  return spec;
}

// Reads `fd` to its end.
std::string read_all(int fd) {
  std::string out;
  char buf[256];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
  return out;
}

// The reason children are spawned: fork() runs pthread_atfork handlers (OpenBLAS shuts its thread pool down
// in one, under a running sgemm of another thread); posix_spawn does not.
TEST(Spawn, RunsNoForkHandlers) {
  static bool registered = false;
  if (!registered) pthread_atfork([] { ++g_prepare_calls; }, nullptr, nullptr);
  registered = true;
  const int before = g_prepare_calls;
  auto pid = spawn_process(command("/bin/true"));
  ASSERT_TRUE(pid.is_ok()) << pid.status().to_string();
  auto status = wait_child(*pid, std::chrono::seconds(20));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_EQ(g_prepare_calls, before) << "posix_spawn ran a pthread_atfork handler";
  // The handler is live: fork() runs it (so the check above can fail).
  const pid_t forked = fork();
  if (forked == 0) _exit(0);
  ASSERT_GT(forked, 0);
  waitpid(forked, nullptr, 0);
  EXPECT_EQ(g_prepare_calls, before + 1);
}

TEST(Spawn, PassesArgumentsEnvironmentAndStdoutAndClosesOtherDescriptors) {
  int out[2], extra[2];
  ASSERT_EQ(pipe(out), 0);
  ASSERT_EQ(pipe(extra), 0);  // not close-on-exec: the child must still not see it
  SpawnSpec spec;
  spec.program = "sh";
  spec.search_path = true;
  spec.args = {"sh", "-c", "echo \"$1 $NETDIST_SPAWN_TEST\"; ls /proc/self/fd", "sh", "arg"};
  spec.env = {{"NETDIST_SPAWN_TEST", "env"}};
  spec.stdout_fd = out[1];
  auto pid = spawn_process(spec);
  close(out[1]);
  ASSERT_TRUE(pid.is_ok()) << pid.status().to_string();
  const std::string text = read_all(out[0]);
  close(out[0]);
  ASSERT_TRUE(wait_child(*pid, std::chrono::seconds(20)).has_value());
  EXPECT_EQ(text.substr(0, text.find('\n')), "arg env");
  EXPECT_EQ(text.find("\n" + std::to_string(extra[0]) + "\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("\n" + std::to_string(extra[1]) + "\n"), std::string::npos) << text;
  close(extra[0]);
  close(extra[1]);
}

TEST(Spawn, AMissingProgramIsAnErrorNamingIt) {
  auto pid = spawn_process(command("/nonexistent/netdist-spawn-test"));
  ASSERT_FALSE(pid.is_ok());
  EXPECT_EQ(pid.status().code(), StatusCode::kIoError);
  EXPECT_NE(pid.status().message().find("/nonexistent/netdist-spawn-test"), std::string::npos);
}

TEST(Spawn, StopChildKillsAChildThatIgnoresTheSignalAfterTheGrace) {
  // The child blocks SIGTERM itself (spawn_process starts it with every signal at its default).
  SpawnSpec spec = command("/bin/sh", {"sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"});
  spec.new_process_group = true;
  auto pid = spawn_process(spec);
  ASSERT_TRUE(pid.is_ok());
  EXPECT_EQ(getpgid(*pid), *pid) << "the child leads its own process group";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // its trap is set
  EXPECT_FALSE(wait_child(*pid, std::chrono::milliseconds(50)).has_value());
  const int status = stop_child(*pid, SIGTERM, std::chrono::milliseconds(300), true);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_NE(kill(*pid, 0), 0) << "reaped";
}

TEST(Spawn, StopChildEndsAChildThatObeysWithItsSignal) {
  auto pid = spawn_process(command("/bin/sleep", {"sleep", "30"}));
  ASSERT_TRUE(pid.is_ok());
  const int status = stop_child(*pid, SIGTERM, std::chrono::seconds(20));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << status;
}

}  // namespace
}  // namespace netdist
