// `netdist serve --data-dir` as real processes on loopback with the embedded tiny model (64×64, 3 steps):
// kill -9 in the middle of a queue and restart with the same folder (every prompt finishes exactly once,
// with complete PNGs and no stray or duplicate files), history across a clean restart, and startup errors
// for a corrupt database and an unwritable folder. Built into the cluster test program (NETDIST_BINARY).
#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/process_test_util.h"
#include "io/png.h"
#include "store/store.h"

namespace netdist::store {
namespace {

using namespace cluster::test;  // NOLINT(google-build-using-namespace): the process-test scaffolding

constexpr const char* kSuite = "netdist_store_process_test";  // scratch folders: <temp>/<kSuite>_<pid>/...

// The store tests' HTTP calls give up after 30 s.
CallOptions http_options() {
  CallOptions o;
  o.timeout = std::chrono::seconds(30);
  return o;
}

// `netdist serve` on port 0 with its folders and --data-dir under `dir`.
std::vector<std::string> serve_args(const fs::path& dir, const std::vector<std::string>& extra) {
  std::vector<std::string> a = process_args("serve", dir, {"--data-dir", (dir / "data").string()});
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// Runs `netdist args` to its end (60 s guard); returns the exit code (-1 if it did not end) and its stderr.
std::pair<int, std::string> run_to_exit(const std::vector<std::string>& args, const fs::path& log) {
  const pid_t pid = spawn_netdist(NETDIST_BINARY, args, log);
  int status = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return {-1, "did not exit"};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), read_file(log)};
}

// GET as JSON, with the store tests' 30 s call timeout.
nlohmann::json get_json(const std::string& url, const std::string& target) {
  return cluster::test::get_json(url, target, http_options());
}

// prompt(batch, seed) with the euler sampler, saving as "durable".
nlohmann::json tiny_prompt(int seed, int batch) {
  nlohmann::json p = prompt(batch, seed);
  p["3"]["inputs"]["sampler_name"] = "euler";
  p["9"]["inputs"]["filename_prefix"] = "durable";
  return p;
}

std::string submit_prompt(const std::string& url, const nlohmann::json& p) {
  return submit(url, p, http_options(), "durable-test");
}

// Waits until GET /history holds every id (120 s guard); returns /history.
nlohmann::json wait_all(const std::string& url, const std::vector<std::string>& ids) {
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  nlohmann::json h;
  while (Clock::now() < deadline) {
    h = get_json(url, "/history");
    size_t found = 0;
    for (const std::string& id : ids) found += h.is_object() && h.contains(id);
    if (found == ids.size()) return h;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "not every prompt finished; history: " << h.dump();
  return h;
}

TEST(StoreProcess, KillNineMidQueueThenRestartFinishesEveryPromptExactlyOnce) {
  const fs::path dir = scratch(kSuite, "kill9");
  // The coordinator renders the shards itself, 100 ms a step: each prompt (2 shards of 3 steps) takes over half a
  // second, so the kill lands while the queue is busy.
  const std::vector<std::string> args =
      serve_args(dir, {"--enable-distributed", "--local-workers", "0", "--test-step-delay-ms", "100"});
  std::vector<std::string> ids;
  nlohmann::json first_entry;
  {
    Proc server(args, dir / "serve1.log");
    for (int i = 0; i < 4; ++i) ids.push_back(submit_prompt(server.url(), tiny_prompt(100 + i, 2)));
    // Until the first prompt is done and the next one runs.
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < deadline) {
      const nlohmann::json h = get_json(server.url(), "/history/" + ids[0]);
      const nlohmann::json q = get_json(server.url(), "/queue");
      if (h.is_object() && h.contains(ids[0]) && q.is_object() && !q["queue_running"].empty()) {
        first_entry = h[ids[0]];
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_FALSE(first_entry.is_null()) << "the first prompt did not finish; see " << dir / "serve1.log";
    server.stop(SIGKILL);
  }
  Proc server(args, dir / "serve2.log");
  // The queue is read before the history: a prompt missing from both finished in between and would be in both.
  const nlohmann::json queue = get_json(server.url(), "/queue");
  const nlohmann::json early = get_json(server.url(), "/history");
  std::set<std::string> queued;
  for (const char* part : {"queue_running", "queue_pending"})
    for (const auto& item : queue[part]) queued.insert(item[1].get<std::string>());
  for (size_t i = 1; i < ids.size(); ++i)
    EXPECT_TRUE(queued.count(ids[i]) || early.contains(ids[i])) << ids[i] << " was neither re-queued nor done";
  EXPECT_EQ(early[ids[0]], first_entry) << "the history entry committed before the kill changed";
  for (const auto& item : queue["queue_pending"]) {
    for (size_t i = 0; i < ids.size(); ++i)
      if (item[1] == ids[i]) {
        EXPECT_EQ(item[0], int(i)) << "a re-queued prompt lost its number";
      }
  }

  const nlohmann::json history = wait_all(server.url(), ids);
  EXPECT_EQ(history.size(), ids.size()) << history.dump();
  std::set<std::string> named;
  for (const std::string& id : ids) {
    const nlohmann::json& entry = history[id];
    EXPECT_EQ(entry["status"]["status_str"], "success") << id;
    const nlohmann::json& images = entry["outputs"]["9"]["images"];
    EXPECT_EQ(images.size(), 2u) << id;
    for (const auto& img : images) {
      const std::string name = img["filename"].get<std::string>();
      EXPECT_TRUE(named.insert(name).second) << name << " named by two history entries";
      auto png = io::decode_png(read_file(dir / "out" / name), name);
      ASSERT_TRUE(png.is_ok()) << png.status().to_string();
      EXPECT_EQ(png->first.width, 64);
      EXPECT_EQ(png->first.height, 64);
    }
  }
  // Exactly the files history names: no leftover of the killed run, no temporary file, no duplicate.
  std::set<std::string> on_disk;
  for (const auto& e : fs::directory_iterator(dir / "out")) on_disk.insert(e.path().filename().string());
  EXPECT_EQ(on_disk, named);
}

TEST(StoreProcess, HistorySurvivesACleanRestart) {
  const fs::path dir = scratch(kSuite, "clean");
  const std::vector<std::string> args = serve_args(dir, {});
  std::vector<std::string> ids;
  nlohmann::json before;
  {
    Proc server(args, dir / "serve1.log");
    for (int i = 0; i < 2; ++i) ids.push_back(submit_prompt(server.url(), tiny_prompt(7 + i, 1)));
    before = wait_all(server.url(), ids);
  }
  Proc server(args, dir / "serve2.log");
  const nlohmann::json after = get_json(server.url(), "/history");
  EXPECT_EQ(after, before);
  for (const std::string& id : ids) {
    const nlohmann::json one = get_json(server.url(), "/history/" + id);
    EXPECT_EQ(one[id], before[id]) << id;
  }
  const nlohmann::json queue = get_json(server.url(), "/queue");
  EXPECT_TRUE(queue["queue_pending"].empty() && queue["queue_running"].empty()) << "a finished prompt was re-queued";
  // The queue numbers continue after the stored ones.
  const std::string next = submit_prompt(server.url(), tiny_prompt(9, 1));
  const nlohmann::json h = wait_all(server.url(), {next});
  EXPECT_EQ(h[next]["prompt"][0], 2);
}

TEST(StoreProcess, CorruptDatabaseOrUnwritableDataDirStopsServeWithTheReason) {
  const fs::path dir = scratch(kSuite, "corrupt");
  fs::create_directories(dir / "data");
  const fs::path db = dir / "data" / kDatabaseFileName;
  const std::string garbage(4096, '\x5a');
  std::ofstream(db, std::ios::binary) << garbage;
  auto [code, err] = run_to_exit(serve_args(dir, {}), dir / "corrupt.log");
  EXPECT_NE(code, 0) << err;
  EXPECT_NE(err.find(db.string()), std::string::npos) << err;
  EXPECT_NE(err.find("not a database"), std::string::npos) << err;
  EXPECT_EQ(read_file(db), garbage) << "the corrupt database was modified";

  std::ofstream(dir / "plain_file") << "x";
  std::vector<std::string> args = serve_args(dir, {});
  args.back() = (dir / "plain_file" / "data").string();  // the value of --data-dir
  auto [code2, err2] = run_to_exit(args, dir / "unwritable.log");
  EXPECT_NE(code2, 0) << err2;
  EXPECT_NE(err2.find((dir / "plain_file" / "data").string()), std::string::npos) << err2;
}

}  // namespace
}  // namespace netdist::store
