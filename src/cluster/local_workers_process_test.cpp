// Local worker processes started and restarted while the coordinator computes. A coordinator used to fork()
// its local workers; a fork while another thread was inside an OpenBLAS call ran OpenBLAS's atfork handler,
// which shut the BLAS thread pool down under that call, and the prompt never finished (local_workers.h,
// core/spawn.h). These tests post split batches at the moments children start: at start-up, 50 times in a
// row (NETDIST_STARTUP_RACE_ITERATIONS overrides the count), and while a killed worker is restarted.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/process_test_util.h"

// Not in netdist::cluster: in a unity build cluster_process_test.cpp's helpers share that namespace's
// anonymous namespace.
namespace netdist::local_workers_process_test {
namespace {

using namespace cluster::test;  // NOLINT(google-build-using-namespace): the process-test scaffolding

int race_iterations() {
  const char* env = std::getenv("NETDIST_STARTUP_RACE_ITERATIONS");
  return env && std::atoi(env) > 0 ? std::atoi(env) : 50;
}

// The command line: `serve --enable-distributed --local-workers N --data-dir D`, folders under dir,
// libtorch's default thread count (so BLAS runs its thread pool, as in the report).
std::vector<std::string> coordinator_with_local_workers(const fs::path& dir, int workers) {
  return {"serve",
          "--port",
          "0",
          "--enable-distributed",
          "--local-workers",
          std::to_string(workers),
          "--data-dir",
          (dir / "data").string(),
          "--output-directory",
          (dir / "out").string(),
          "--temp-directory",
          (dir / "temp").string(),
          "--input-directory",
          (dir / "in").string(),
          "--models-dir",
          (dir / "models").string()};
}

// The worker processes that `pid` started (children of any of its threads).
std::vector<pid_t> local_worker_pids(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream f(task.path() / "children");
    for (pid_t c; f >> c;) out.push_back(c);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The reported hang: a batch of 6 posted the moment the coordinator answers, while it starts 3 local workers.
TEST(LocalWorkersProcess, SplitBatchPostedAtStartFinishes50TimesInARow) {
  const fs::path root = scratch("local_workers_process_test", "race");
  const int n = race_iterations();
  for (int i = 0; i < n; ++i) {
    const fs::path dir = root / std::to_string(i % 2);
    fs::remove_all(dir);
    fs::create_directories(dir);
    Proc coord(coordinator_with_local_workers(dir, 3), dir / "c.log");
    ASSERT_FALSE(coord.url().empty()) << "iteration " << i;
    const std::string id = submit(coord.url(), prompt(6, 100 + i));
    const nlohmann::json h = wait_history(coord.url(), id, {}, std::chrono::seconds(60));
    ASSERT_EQ(h.is_object() ? h["status"]["status_str"] : nlohmann::json("none"), "success")
        << "iteration " << i << " of " << n << ": the batch posted at start-up did not finish; see "
        << dir / "c.log";
    EXPECT_EQ(h["outputs"]["9"]["images"].size(), 6u);
  }
}

// Split batches posted while a killed local worker is restarted (the coordinator's monitor thread starts the
// new child about a second later, while the coordinator encodes and renders its share).
TEST(LocalWorkersProcess, SplitBatchesFinishWhileAKilledLocalWorkerIsRestarted) {
  const fs::path dir = scratch("local_workers_process_test", "restart");
  Proc coord(coordinator_with_local_workers(dir, 2), dir / "c.log");
  ASSERT_FALSE(coord.url().empty());
  ASSERT_TRUE(wait_alive(coord.url(), 3));  // its own runner and two children
  std::vector<pid_t> children = local_worker_pids(coord.pid());
  ASSERT_EQ(children.size(), 2u);
  for (int round = 0; round < 4; ++round) {
    const pid_t victim = children[size_t(round) % children.size()];
    ASSERT_EQ(kill(victim, SIGKILL), 0);
    std::vector<std::string> ids;
    for (int k = 0; k < 3; ++k) ids.push_back(submit(coord.url(), prompt(4, 1000 + round * 10 + k)));
    for (const std::string& id : ids) {
      const nlohmann::json h = wait_history(coord.url(), id, {}, std::chrono::seconds(90));
      ASSERT_EQ(h.is_object() ? h["status"]["status_str"] : nlohmann::json("none"), "success")
          << "round " << round << ": " << h.dump() << "; see " << dir / "c.log";
    }
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    std::vector<pid_t> now;
    while (Clock::now() < deadline) {
      now = local_worker_pids(coord.pid());
      if (now.size() == 2 && std::find(now.begin(), now.end(), victim) == now.end()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_EQ(now.size(), 2u) << "round " << round << ": the killed worker was not restarted";
    ASSERT_EQ(std::find(now.begin(), now.end(), victim), now.end());
    children = now;
  }
  const std::string log = read_file(dir / "c.log");
  EXPECT_NE(log.find("exited; restarting it"), std::string::npos) << log;
}

}  // namespace
}  // namespace netdist::local_workers_process_test
