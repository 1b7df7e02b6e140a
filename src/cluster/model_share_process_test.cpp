// Models travel to workers (issue #16 item 3), with real `netdist` processes and the tiny model: a coordinator
// started with --share-models has the checkpoint as checkpoints/shared-tiny.safetensors; a dial-in worker
// without it fetches it through a transfer that the coordinator corrupts once and cuts once
// (NETDIST_TEST_MODEL_FAULTS, model_share.h) and renders the shard, images equal to a plain server's; a
// connect-out worker that has the same file under another name links it instead of downloading.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "cluster/process_test_util.h"

namespace netdist::cluster {
namespace {

using namespace test;  // NOLINT(google-build-using-namespace): the process-test scaffolding

constexpr const char* kToken = "s3cret";
constexpr const char* kShared = "shared-tiny.safetensors";

bool log_has(const fs::path& log, const std::string& text) { return read_file(log).find(text) != std::string::npos; }

// Waits until `server` lists `name` with its sha256 (its index hashes in the background).
bool wait_listed(const std::string& server, const std::string& name) {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    auto list = get_json(server, "/netdist/v1/models", kToken);
    for (const auto& m : list.value("models", nlohmann::json::array())) {
      if (m["name"] == name && m["sha256"].is_string()) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << name << " was never listed with its sha256";
  return false;
}

TEST(ModelShareProcess, DialInWorkerFetchesTheCheckpointThroughACorruptAndACutTransferAndRenders) {
  fs::path dir = scratch("model_share_fetch");
  for (const char* who : {"c", "ref"}) {
    fs::create_directories(dir / who / "models" / "checkpoints");
    fs::copy_file(tiny_model(), dir / who / "models" / "checkpoints" / kShared);
  }
  std::vector<std::string> reference;
  {
    Proc ref(process_args("serve", dir / "ref", {}), dir / "ref.log");
    reference = images(wait_history(ref.url(), submit(ref.url(), prompt(2, 7, kShared))), dir / "ref" / "out");
    ASSERT_EQ(reference.size(), 2u);
  }
  // Read by the coordinator only: the first range it serves has a byte flipped, the first range past byte 0
  // is answered 503 (a cut), and ranges are at most 4 MB (the tiny model is about 25 MB).
  setenv("NETDIST_TEST_MODEL_FAULTS", "corrupt-once,cut-once,chunk=4000000", 1);
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--local-workers", "0",
                                          "--auth-token", kToken, "--share-models"}),
             dir / "c.log");
  unsetenv("NETDIST_TEST_MODEL_FAULTS");
  EXPECT_EQ(call(coord.url(), "GET", "/netdist/v1/models").status, 401);
  EXPECT_EQ(call(coord.url(), "GET", "/netdist/v1/models", "", "wrong").status, 401);
  ASSERT_TRUE(wait_listed(coord.url(), kShared));

  Proc w(worker_args(dir / "w", {"--join", coord.url(), "--auth-token", kToken}), dir / "w.log");
  ASSERT_FALSE(fs::exists(dir / "w" / "models" / "checkpoints" / kShared));
  wait_alive(coord.url(), 1, kToken);
  auto h = wait_history(coord.url(), submit(coord.url(), prompt(2, 7, kShared), kToken), kToken);
  EXPECT_EQ(h["status"]["status_str"], "success") << h.dump();
  EXPECT_TRUE(images(h, dir / "c" / "out") == reference) << "images differ from a plain server's";
  EXPECT_EQ(rows_by_worker(coord.url(), kToken)[w.url()], 2);
  EXPECT_EQ(read_file(dir / "w" / "models" / "checkpoints" / kShared), read_file(tiny_model()));

  const fs::path wlog = dir / "w.log", clog = dir / "c.log";
  EXPECT_TRUE(log_has(clog, "test: corrupted byte 0")) << read_file(clog);
  EXPECT_TRUE(log_has(clog, "test: cutting the transfer")) << read_file(clog);
  EXPECT_TRUE(log_has(wlog, "range at byte 4000000: HTTP 503")) << read_file(wlog);
  EXPECT_TRUE(log_has(wlog, "resuming at byte 4000000")) << read_file(wlog);
  EXPECT_TRUE(log_has(wlog, "sha256 mismatch")) << read_file(wlog);
  EXPECT_TRUE(log_has(wlog, "fetched and verified")) << read_file(wlog);
  EXPECT_TRUE(log_has(wlog, "% (")) << "progress lines: " << read_file(wlog);
  auto status = get_json(w.url(), "/netdist/v1/status", kToken);
  EXPECT_TRUE(status.contains("model_fetch") && status["model_fetch"].is_null()) << status.dump();
}

TEST(ModelShareProcess, ConnectOutWorkerWithTheFileUnderAnotherNameLinksItAndSharingIsOffByDefault) {
  fs::path dir = scratch("model_share_renamed");
  fs::create_directories(dir / "c" / "models" / "checkpoints");
  fs::create_directories(dir / "w" / "models" / "checkpoints");
  fs::copy_file(tiny_model(), dir / "c" / "models" / "checkpoints" / kShared);
  fs::copy_file(tiny_model(), dir / "w" / "models" / "checkpoints" / "renamed.safetensors");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--local-workers", "0",
                                          "--auth-token", kToken, "--share-models"}),
             dir / "c.log");
  ASSERT_TRUE(wait_listed(coord.url(), kShared));
  Proc w(worker_args(dir / "w", {"--models-from", coord.url(), "--auth-token", kToken}), dir / "w.log");
  EXPECT_EQ(call(w.url(), "GET", "/netdist/v1/models", "", kToken).status, 403) << "no --share-models here";
  // The worker lists its renamed file by hash (once hashed) and the coordinator's checkpoint as fetchable.
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  nlohmann::json caps;
  bool ready = false;
  while (!ready && Clock::now() < deadline) {
    caps = get_json(w.url(), "/netdist/v1/capabilities", kToken);
    bool renamed = false, fetchable = false;
    for (const auto& m : caps.value("models", nlohmann::json::array())) {
      renamed |= m["name"] == "renamed.safetensors" && m["sha256"].is_string();
      fetchable |= m["name"] == kShared && m.value("fetch", false);
    }
    ready = renamed && fetchable;
    if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(ready) << caps.dump();
  EXPECT_EQ(call(coord.url(), "POST", "/netdist/v1/join", nlohmann::json{{"url", w.url()}}.dump(), kToken).status,
            200);
  wait_alive(coord.url(), 1, kToken);
  auto h = wait_history(coord.url(), submit(coord.url(), prompt(2, 7, kShared), kToken), kToken);
  EXPECT_EQ(h["status"]["status_str"], "success") << h.dump();
  EXPECT_EQ(rows_by_worker(coord.url(), kToken)[w.url()], 2);
  EXPECT_TRUE(log_has(dir / "w.log", "is here as 'renamed.safetensors'; linked")) << read_file(dir / "w.log");
  EXPECT_FALSE(log_has(dir / "w.log", "fetching checkpoint")) << "nothing was downloaded";
  EXPECT_EQ(read_file(dir / "w" / "models" / "checkpoints" / kShared), read_file(tiny_model()));
}

}  // namespace
}  // namespace netdist::cluster
