// Multi-process cluster tests: real `netdist` coordinator and worker processes on loopback, the embedded
// tiny model, 64×64 images, 3 steps. Each checks a contract of cluster.h end to end: split = unsplit
// (PNG bytes equal to one plain server rendering the whole batch), nothing lost and nothing duplicated
// when a worker is killed mid-shard, capability matching, auth, dial-in without connect-back, speed-aware
// pulling, interrupt, img2img inputs shipped with shards.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cluster/comfy_worker.h"
#include "cluster/http_client.h"
#include "cluster/process_test_util.h"

namespace netdist::cluster {
namespace {

using namespace test;  // NOLINT(google-build-using-namespace): the process-test scaffolding

// One plain `netdist serve` rendering the whole batch of 8 in one sampler call: the reference bytes.
const std::vector<std::string>& unsplit_reference() {
  static const std::vector<std::string> ref = reference_images(scratch("reference"), 8)[7];
  return ref;
}

std::string join_urls(const std::vector<const Proc*>& procs) {
  std::string s;
  for (const Proc* p : procs) s += (s.empty() ? "" : ",") + p->url();
  return s;
}

TEST(ClusterProcess, ThreeWorkersRenderTheUnsplitBytes) {
  const auto& ref = unsplit_reference();
  ASSERT_EQ(ref.size(), 8u);
  fs::path dir = scratch("three");
  Proc w1(worker_args(dir / "w1"), dir / "w1.log"), w2(worker_args(dir / "w2"), dir / "w2.log"),
      w3(worker_args(dir / "w3"), dir / "w3.log");
  Proc coord(coordinator_args(
                 dir / "c", {"--enable-distributed", "--no-local", "--workers", join_urls({&w1, &w2, &w3})}),
             dir / "c.log");
  wait_alive(coord.url(), 3);
  auto h = wait_history(coord.url(), submit(coord.url(), prompt(8)));
  EXPECT_EQ(h["status"]["status_str"], "success");
  EXPECT_TRUE(images(h, dir / "c" / "out") == ref) << "split images differ from the unsplit batch";
  int64_t total = 0;
  for (const auto& [url, rows] : rows_by_worker(coord.url())) total += rows;
  EXPECT_EQ(total, 8) << "every row rendered exactly once";
  // The history entry names the plan (plan.h): rows over the workers that rendered shards.
  const auto& plan = h["netdist"]["plan"];
  EXPECT_EQ(plan["mode"], "rows") << h.dump();
  EXPECT_GE(plan["workers"].size(), 1u) << h.dump();
  auto rows = rows_by_worker(coord.url());
  for (const auto& w : plan["workers"]) EXPECT_GT(rows[w.get<std::string>()], 0) << w;
  EXPECT_GT(plan["predicted_s"].get<double>(), 0.0);
}

TEST(ClusterProcess, KilledWorkerMidShardLosesNothing) {
  const auto& ref = unsplit_reference();
  fs::path dir = scratch("kill");
  // Equally throttled workers: the earliest-finish choice gives both shards, and a shard lasts long enough
  // to be caught running.
  Proc survivor(worker_args(dir / "survivor", {"--test-step-delay-ms", "200"}), dir / "survivor.log");
  Proc victim(worker_args(dir / "victim", {"--test-step-delay-ms", "200"}), dir / "victim.log");
  Proc coord(coordinator_args(dir / "c",
                              {"--enable-distributed", "--no-local", "--workers", join_urls({&survivor, &victim})}),
             dir / "c.log");
  wait_alive(coord.url(), 2);
  const std::string id = submit(coord.url(), prompt(8));
  ASSERT_TRUE(wait_running(victim.url(), Clock::now() + std::chrono::seconds(30)))
      << "the victim worker never started a shard";
  const std::string victim_url = victim.url();
  victim.stop(SIGKILL);
  auto h = wait_history(coord.url(), id);
  EXPECT_EQ(h["status"]["status_str"], "success");
  EXPECT_TRUE(images(h, dir / "c" / "out") == ref);
  auto rows = rows_by_worker(coord.url());
  EXPECT_EQ(rows[survivor.url()] + rows[victim_url], 8);
}

// A worker the coordinator cannot reach is listed as not alive with the reason, so a misconfigured URL is
// visible in GET /netdist/v1/cluster (and the log) instead of silently absent.
TEST(ClusterProcess, AnUnreachableWorkerSaysWhy) {
  fs::path dir = scratch("unreachable");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--workers", "http://127.0.0.1:1"}),
             dir / "c.log");
  nlohmann::json worker;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline) {
    auto j = nlohmann::json::parse(call(coord.url(), "GET", "/netdist/v1/cluster").body, nullptr, false);
    if (j.is_object() && !j["workers"].empty() && j["workers"][0]["error"].is_string()) {
      worker = j["workers"][0];
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(worker.is_object()) << "no probe error reported";
  EXPECT_EQ(worker["alive"], false);
  EXPECT_NE(worker["error"].get<std::string>().find("127.0.0.1:1"), std::string::npos) << worker.dump();
  EXPECT_NE(worker["error"].get<std::string>().find("cannot connect"), std::string::npos) << worker.dump();
}

TEST(ClusterProcess, MissingCheckpointIs400NamingItAndTheWorker) {
  fs::path dir = scratch("missing");
  fs::create_directories(dir / "c" / "models");
  fs::copy_file(tiny_model(), dir / "c" / "models" / "other.safetensors");
  Proc w(worker_args(dir / "w"), dir / "w.log");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--workers", w.url()}),
             dir / "c.log");
  wait_alive(coord.url(), 1);
  HttpReply r =
      call(coord.url(), "POST", "/prompt", nlohmann::json{{"prompt", prompt(2, 7, "other.safetensors")}}.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("other.safetensors"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(w.url()), std::string::npos) << r.body;
  EXPECT_EQ(call(coord.url(), "POST", "/prompt", nlohmann::json{{"prompt", prompt(2)}}.dump()).status, 200);
}

// A checkpoint that only a worker has: the coordinator lists it; a batch that would be split is refused
// (its merged rows are decoded on the coordinator), naming the checkpoint; a batch-1 prompt runs whole there.
TEST(ClusterProcess, CheckpointOnlyOnAWorkerRunsWholeThereAndIsNotSplit) {
  fs::path dir = scratch("remote_only");
  fs::create_directories(dir / "w" / "models");
  fs::copy_file(tiny_model(), dir / "w" / "models" / "remote.safetensors");
  Proc w(worker_args(dir / "w"), dir / "w.log");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--workers", w.url()}), dir / "c.log");
  wait_alive(coord.url(), 1);
  auto info = nlohmann::json::parse(call(coord.url(), "GET", "/object_info/CheckpointLoaderSimple").body, nullptr, false);
  EXPECT_EQ(info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0],
            nlohmann::json({"tiny-emoji.safetensors", "remote.safetensors"}))
      << "the coordinator's own checkpoints, then the workers' others";
  HttpReply r = call(coord.url(), "POST", "/prompt", nlohmann::json{{"prompt", prompt(2, 1, "remote.safetensors")}}.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("prompt_checkpoint_not_on_coordinator"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("checkpoint 'remote.safetensors' is only on the workers"), std::string::npos) << r.body;
  auto h = wait_history(coord.url(), submit(coord.url(), prompt(1, 1, "remote.safetensors")));
  EXPECT_EQ(h["status"]["status_str"], "success") << h.dump();
  EXPECT_EQ(images(h, dir / "c" / "out").size(), 1u);
  EXPECT_EQ(worker_field(coord.url(), "prompts_done")[w.url()], 1);
}

TEST(ClusterProcess, CapabilityMatchingKeepsShardsOffWorkersWithoutTheModel) {
  fs::path dir = scratch("capable");
  fs::create_directories(dir / "c" / "models");
  fs::create_directories(dir / "has" / "models");
  fs::copy_file(tiny_model(), dir / "c" / "models" / "other.safetensors");
  fs::copy_file(tiny_model(), dir / "has" / "models" / "other.safetensors");
  Proc lacks(worker_args(dir / "lacks"), dir / "lacks.log"), has(worker_args(dir / "has"), dir / "has.log");
  Proc coord(coordinator_args(dir / "c",
                              {"--enable-distributed", "--no-local", "--workers", join_urls({&lacks, &has})}),
             dir / "c.log");
  wait_alive(coord.url(), 2);
  auto h = wait_history(coord.url(), submit(coord.url(), prompt(4, 7, "other.safetensors")));
  EXPECT_EQ(h["status"]["status_str"], "success");
  auto rows = rows_by_worker(coord.url());
  EXPECT_EQ(rows[lacks.url()], 0);
  EXPECT_EQ(rows[has.url()], 4);
  // A batch-1 prompt goes whole to a worker that has every checkpoint of it.
  for (int seed = 1; seed <= 2; ++seed) {
    auto whole = wait_history(coord.url(), submit(coord.url(), prompt(1, seed, "other.safetensors")));
    EXPECT_EQ(whole["status"]["status_str"], "success");
  }
  auto prompts = worker_field(coord.url(), "prompts_done");
  EXPECT_EQ(prompts[lacks.url()], 0);
  EXPECT_EQ(prompts[has.url()], 2);
}

TEST(ClusterProcess, AuthTokenIsRequiredAndForwarded) {
  fs::path dir = scratch("auth");
  Proc w(worker_args(dir / "w", {"--auth-token", "s3cret"}), dir / "w.log");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--workers", w.url(),
                                          "--auth-token", "s3cret"}),
             dir / "c.log");
  EXPECT_EQ(call(w.url(), "GET", "/netdist/v1/capabilities").status, 401);
  EXPECT_EQ(call(coord.url(), "POST", "/prompt", nlohmann::json{{"prompt", prompt(2)}}.dump()).status, 401);
  EXPECT_EQ(
      call(coord.url(), "POST", "/prompt", nlohmann::json{{"prompt", prompt(2)}}.dump(), "wrong").status,
      401);
  EXPECT_EQ(call(coord.url(), "GET", "/queue", "", "wrong").status, 401);
  wait_alive(coord.url(), 1, "s3cret");
  auto h = wait_history(coord.url(), submit(coord.url(), prompt(2), "s3cret"), "s3cret");
  EXPECT_EQ(h["status"]["status_str"], "success");
  EXPECT_EQ(rows_by_worker(coord.url(), "s3cret")[w.url()], 2);
}

TEST(ClusterProcess, DialInWorkerJoinsAndRenders) {
  const auto& ref = unsplit_reference();
  fs::path dir = scratch("join");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--local-workers", "0"}),
             dir / "c.log");
  Proc w(worker_args(dir / "w", {"--join", coord.url()}), dir / "w.log");
  wait_alive(coord.url(), 1);
  auto h = wait_history(coord.url(), submit(coord.url(), prompt(8)));
  EXPECT_TRUE(images(h, dir / "c" / "out") == ref);
  EXPECT_EQ(rows_by_worker(coord.url())[w.url()], 8);
  auto info = workers_by_url(coord.url())[w.url()];
  EXPECT_EQ(info["dial_in"], true);
  EXPECT_TRUE(info["worker_id"].is_string());
}

// Dial-in workers that the coordinator cannot reach (they advertise a closed port) render everything: the
// coordinator never connects back. With a token, the dial-in routes refuse a request without it.
TEST(ClusterProcess, DialInWorkersAreNeverConnectedTo) {
  const auto& ref = unsplit_reference();
  fs::path dir = scratch("nat");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--local-workers", "0",
                                          "--auth-token", "s3cret"}),
             dir / "c.log");
  Proc a(worker_args(dir / "a", {"--join", coord.url(), "--advertise", "http://127.0.0.1:1/a", "--auth-token",
                                 "s3cret"}),
         dir / "a.log");
  Proc b(worker_args(dir / "b", {"--join", coord.url(), "--advertise", "http://127.0.0.1:1/b", "--auth-token",
                                 "s3cret"}),
         dir / "b.log");
  EXPECT_EQ(call(coord.url(), "POST", "/netdist/v1/pull", R"({"worker_id": "x"})").status, 401);
  EXPECT_EQ(call(coord.url(), "POST", "/netdist/v1/result?worker_id=x&ticket=1&status=200", "", "wrong").status,
            401);
  wait_alive(coord.url(), 2, "s3cret");
  auto h = wait_history(coord.url(), submit(coord.url(), prompt(8), "s3cret"), "s3cret");
  EXPECT_EQ(h["status"]["status_str"], "success");
  EXPECT_TRUE(images(h, dir / "c" / "out") == ref) << "dial-in images differ from the unsplit batch";
  auto rows = rows_by_worker(coord.url(), "s3cret");
  EXPECT_EQ(rows["http://127.0.0.1:1/a"] + rows["http://127.0.0.1:1/b"], 8);
  EXPECT_EQ(rows.size(), 2u);
}

TEST(ClusterProcess, KilledDialInWorkerMidShardLosesNothing) {
  const auto& ref = unsplit_reference();
  fs::path dir = scratch("killdial");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--local-workers", "0",
                                          "--test-heartbeat-ms", "1000"}),
             dir / "c.log");
  Proc fast(worker_args(dir / "fast", {"--join", coord.url()}), dir / "fast.log");
  Proc slow(worker_args(dir / "slow", {"--join", coord.url(), "--test-step-delay-ms", "400"}), dir / "slow.log");
  wait_alive(coord.url(), 2);
  const std::string id = submit(coord.url(), prompt(8));
  ASSERT_TRUE(wait_running(slow.url(), Clock::now() + std::chrono::seconds(30)))
      << "the slow worker never started a shard";
  const std::string slow_url = slow.url();
  slow.stop(SIGKILL);
  auto h = wait_history(coord.url(), id);
  EXPECT_EQ(h["status"]["status_str"], "success");
  EXPECT_TRUE(images(h, dir / "c" / "out") == ref);
  auto rows = rows_by_worker(coord.url());
  EXPECT_EQ(rows[fast.url()] + rows[slow_url], 8);
  EXPECT_EQ(workers_by_url(coord.url())[slow_url]["alive"], false) << "the killed worker lost its lease";
}

TEST(ClusterProcess, SlowWorkerPullsFewerImages) {
  fs::path dir = scratch("slow");
  Proc fast(worker_args(dir / "fast"), dir / "fast.log");
  // 400 ms a step: the slow worker's benchmark seed reads it well over twice as slow even when the machine is
  // loaded (a batch's shards are sized by those seeds, so a seed that reads both alike splits evenly).
  Proc slow(worker_args(dir / "slow", {"--test-step-delay-ms", "400"}), dir / "slow.log");
  Proc coord(coordinator_args(dir / "c",
                              {"--enable-distributed", "--no-local", "--workers", join_urls({&fast, &slow})}),
             dir / "c.log");
  wait_alive(coord.url(), 2);
  auto h = wait_history(coord.url(), submit(coord.url(), prompt(8)));
  EXPECT_EQ(h["status"]["status_str"], "success");
  auto rows = rows_by_worker(coord.url());
  EXPECT_EQ(rows[fast.url()] + rows[slow.url()], 8);
  EXPECT_GT(rows[fast.url()], rows[slow.url()]);
}

TEST(ClusterProcess, InterruptReachesTheWorkers) {
  fs::path dir = scratch("interrupt");
  Proc w(worker_args(dir / "w", {"--test-step-delay-ms", "1000"}), dir / "w.log");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--workers", w.url()}),
             dir / "c.log");
  wait_alive(coord.url(), 1);
  const std::string id = submit(coord.url(), prompt(8));
  ASSERT_TRUE(wait_running(w.url(), Clock::now() + std::chrono::seconds(30)));
  const auto t0 = Clock::now();
  EXPECT_EQ(call(coord.url(), "POST", "/interrupt").status, 200);
  auto h = wait_history(coord.url(), id);
  EXPECT_EQ(h["status"]["status_str"], "error");
  // The worker stopped its shard at the next step instead of finishing the batch (8 shards × 3 s).
  EXPECT_TRUE(wait_idle(w.url(), t0 + std::chrono::seconds(5)));
  auto s = nlohmann::json::parse(call(w.url(), "GET", "/netdist/v1/status").body, nullptr, false);
  EXPECT_LT(s["shards_done"].get<int64_t>(), 8);
}

// Batch-1 prompts with seeds 1..4, rendered one after another by one plain `netdist serve`: the reference
// bytes for whole-prompt tasks.
const std::vector<std::string>& batch_one_reference() {
  static const std::vector<std::string> ref = [] {
    std::vector<std::string> out;
    for (const auto& [seed, png] : reference_images(scratch("reference_batch1"), 1, {1, 2, 3, 4}))
      out.insert(out.end(), png.begin(), png.end());
    return out;
  }();
  return ref;
}

// Polls GET /queue until queue_running lists `n` prompts at once (30 s guard).
bool saw_running(const std::string& coordinator, size_t n) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    auto q = nlohmann::json::parse(call(coordinator, "GET", "/queue").body, nullptr, false);
    if (q.is_object() && q["queue_running"].size() >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(ClusterProcess, BatchOnePromptsRunWholeOnWorkersAtOnceWithLocalBytes) {
  const auto& ref = batch_one_reference();
  ASSERT_EQ(ref.size(), 4u);
  fs::path dir = scratch("whole");
  Proc w1(worker_args(dir / "w1", {"--test-step-delay-ms", "100"}), dir / "w1.log");
  Proc w2(worker_args(dir / "w2", {"--test-step-delay-ms", "100"}), dir / "w2.log");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--workers", join_urls({&w1, &w2})}),
             dir / "c.log");
  wait_alive(coord.url(), 2);
  std::vector<std::string> ids;
  for (int seed = 1; seed <= 4; ++seed) ids.push_back(submit(coord.url(), prompt(1, seed)));
  EXPECT_TRUE(saw_running(coord.url(), 2)) << "two whole prompts never ran at once";
  std::vector<std::string> got;
  std::set<std::string> names;
  for (const std::string& id : ids) {
    auto h = wait_history(coord.url(), id);
    EXPECT_EQ(h["status"]["status_str"], "success");
    auto png = images(h, dir / "c" / "out");
    got.insert(got.end(), png.begin(), png.end());
    for (const auto& img : h["outputs"]["9"]["images"]) names.insert(img["filename"].get<std::string>());
    const auto& plan = h["netdist"]["plan"];
    EXPECT_EQ(plan["mode"], "whole") << h.dump();
    ASSERT_EQ(plan["workers"].size(), 1u) << h.dump();
    EXPECT_TRUE(plan["workers"][0] == w1.url() || plan["workers"][0] == w2.url()) << plan.dump();
    EXPECT_GT(plan["predicted_s"].get<double>(), 0.0);
  }
  EXPECT_TRUE(got == ref) << "whole-prompt images differ from a local server's";
  EXPECT_EQ(names, std::set<std::string>({"split_00001_.png", "split_00002_.png", "split_00003_.png",
                                          "split_00004_.png"}))
      << "the coordinator's own counter names, each once";
  auto prompts = worker_field(coord.url(), "prompts_done");
  auto shards = worker_field(coord.url(), "shards_done");
  EXPECT_EQ(prompts[w1.url()] + prompts[w2.url()], 4);
  // Which worker runs which prompt is the earliest-finish choice over the workers' speeds, and on a loaded
  // 2-core CI machine one benchmark seed can read twice the other: then one worker rightly runs all four.
  // So only the total is asserted here.
  EXPECT_EQ(shards[w1.url()] + shards[w2.url()], 4);
  EXPECT_EQ(worker_field(coord.url(), "rows_done")[w1.url()], 0) << "no row shards for batch-1 prompts";
  // Each whole prompt was measured by its sampler's time on the worker: 3 throttled steps of a 64² image
  // (1 unit each) are at least 0.1 s per unit, whatever the CPU.
  auto cluster = nlohmann::json::parse(call(coord.url(), "GET", "/netdist/v1/cluster").body, nullptr, false);
  ASSERT_TRUE(cluster.is_object());
  for (const auto& w : cluster["workers"]) {
    EXPECT_EQ(w["samples"], w["prompts_done"]) << "a whole prompt was not measured: " << w.dump();
    if (w["prompts_done"].get<int64_t>() > 0) {
      EXPECT_GE(w["seconds_per_unit"].get<double>(), 0.1) << "the throttled steps are not in the measure: " << w.dump();
    }
  }
}

TEST(ClusterProcess, KilledWorkerMidWholePromptIsRetriedElsewhereOnce) {
  const auto& ref = batch_one_reference();
  fs::path dir = scratch("whole_kill");
  // Equal speeds: the earliest-finish pick (cost_model.h) gives each worker one of the two prompts; a
  // faster "fast" would be predicted to finish both before "slow" finished one, and "slow" would get none.
  Proc fast(worker_args(dir / "fast", {"--test-step-delay-ms", "400"}), dir / "fast.log");
  Proc slow(worker_args(dir / "slow", {"--test-step-delay-ms", "400"}), dir / "slow.log");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--workers", join_urls({&fast, &slow})}),
             dir / "c.log");
  wait_alive(coord.url(), 2);
  const std::string id1 = submit(coord.url(), prompt(1, 1));
  const std::string id2 = submit(coord.url(), prompt(1, 2));
  ASSERT_TRUE(wait_running(slow.url(), Clock::now() + std::chrono::seconds(30)))
      << "the slow worker never started a prompt";
  slow.stop(SIGKILL);
  auto h1 = wait_history(coord.url(), id1), h2 = wait_history(coord.url(), id2);
  EXPECT_EQ(h1["status"]["status_str"], "success");
  EXPECT_EQ(h2["status"]["status_str"], "success");
  auto png = images(h1, dir / "c" / "out"), png2 = images(h2, dir / "c" / "out");
  png.insert(png.end(), png2.begin(), png2.end());
  EXPECT_TRUE(png == std::vector<std::string>(ref.begin(), ref.begin() + 2));
  EXPECT_EQ(worker_field(coord.url(), "prompts_done")[fast.url()], 2) << "the killed worker's prompt ran on the other";
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir / "c" / "out")) files += e.path().extension() == ".png";
  EXPECT_EQ(files, 2u) << "each prompt's image written once";
  auto history = nlohmann::json::parse(call(coord.url(), "GET", "/history").body, nullptr, false);
  EXPECT_EQ(history.size(), 2u);
}

// Batch-1 prompts reach dial-in workers as tasks of kind "prompt" in their mailboxes: with only a
// --local-workers child and a --join worker (neither is ever connected to), both run whole there and return
// the local server's bytes.
TEST(ClusterProcess, WholePromptsRunOnDialInWorkers) {
  const auto& ref = batch_one_reference();
  ASSERT_EQ(ref.size(), 4u);
  fs::path dir = scratch("whole_dialin");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--local-workers", "1"}),
             dir / "c.log");
  Proc w(worker_args(dir / "w", {"--join", coord.url()}), dir / "w.log");
  wait_alive(coord.url(), 2);
  const std::string id1 = submit(coord.url(), prompt(1, 1));
  const std::string id2 = submit(coord.url(), prompt(1, 2));
  auto h1 = wait_history(coord.url(), id1), h2 = wait_history(coord.url(), id2);
  EXPECT_EQ(h1["status"]["status_str"], "success") << h1.dump();
  EXPECT_EQ(h2["status"]["status_str"], "success") << h2.dump();
  auto png = images(h1, dir / "c" / "out"), png2 = images(h2, dir / "c" / "out");
  png.insert(png.end(), png2.begin(), png2.end());
  EXPECT_TRUE(png == std::vector<std::string>(ref.begin(), ref.begin() + 2))
      << "whole prompts on dial-in workers differ from a local server's";
  auto cluster = nlohmann::json::parse(call(coord.url(), "GET", "/netdist/v1/cluster").body, nullptr, false);
  ASSERT_TRUE(cluster.is_object());
  ASSERT_EQ(cluster["workers"].size(), 2u);
  int64_t prompts = 0;
  for (const auto& worker : cluster["workers"]) {
    EXPECT_TRUE(worker["dial_in"].get<bool>()) << worker.dump();
    prompts += worker["prompts_done"].get<int64_t>();
    EXPECT_EQ(worker["rows_done"], 0) << worker.dump();
  }
  EXPECT_EQ(prompts, 2) << "both prompts ran whole on the dial-in workers (which one is the cost model's pick)";
}

// A whole prompt on a netdist worker streams its events to the client while it runs: the first progress
// event arrives while the worker still runs the prompt (a 300 ms throttle per step keeps it running), each
// step's progress comes once (the reply's copy is not replayed), and `executed` carries the coordinator's
// file name. Connect-out (GET /netdist/v1/status?events_from) and dial-in (progress reports) workers alike.
void expect_whole_prompt_events_live(bool dial_in) {
  fs::path dir = scratch(dial_in ? "live_dialin" : "live_static");
  const std::vector<std::string> slow = {"--test-step-delay-ms", "300"};
  std::unique_ptr<Proc> w, coord;
  if (dial_in) {
    coord = std::make_unique<Proc>(
        coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--local-workers", "0"}), dir / "c.log");
    std::vector<std::string> extra = {"--join", coord->url()};
    extra.insert(extra.end(), slow.begin(), slow.end());
    w = std::make_unique<Proc>(worker_args(dir / "w", extra), dir / "w.log");
  } else {
    w = std::make_unique<Proc>(worker_args(dir / "w", slow), dir / "w.log");
    coord = std::make_unique<Proc>(
        coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--workers", w->url()}), dir / "c.log");
  }
  ASSERT_TRUE(wait_alive(coord->url(), 1));
  auto ws = ComfyEventStream::open(coord->url(), "live", "", std::chrono::seconds(10));
  ASSERT_TRUE(ws.is_ok()) << ws.status().to_string();
  const std::string id = submit(coord->url(), prompt(1, 3), {}, "live");
  std::vector<int64_t> steps;
  std::vector<std::string> types;
  bool first_progress_while_running = false;
  Json executed;
  bool done = false;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (!done && Clock::now() < deadline) {
    auto m = (*ws)->next(std::chrono::milliseconds(200));
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    if (!m->has_value() || (*m)->is_binary) continue;
    const ComfyMessage& msg = **m;
    if (!msg.data.is_object() || msg.data.value("prompt_id", Json()) != Json(id)) continue;
    types.push_back(msg.type);
    if (msg.type == "progress") {
      if (steps.empty()) {
        auto st = get_json(w->url(), "/netdist/v1/status");
        first_progress_while_running = st.is_object() && !st["running"].is_null();
      }
      steps.push_back(msg.data.value("value", int64_t(0)));
      EXPECT_EQ(msg.data.value("node", Json()), Json("3")) << msg.data.dump();
    }
    if (msg.type == "executed") executed = msg.data;
    done = msg.type == "executing" && msg.data.value("node", Json()).is_null();
  }
  ASSERT_TRUE(done) << "the coordinator never sent executing(null) for " << id;
  EXPECT_TRUE(first_progress_while_running) << "progress reached the client only after the worker finished";
  EXPECT_EQ(steps, std::vector<int64_t>({1, 2, 3})) << "each step's progress once";
  EXPECT_EQ(std::count(types.begin(), types.end(), "execution_start"), 1);
  EXPECT_EQ(std::count(types.begin(), types.end(), "executed"), 1);
  EXPECT_EQ(executed.value("node", Json()), Json("9"));
  EXPECT_EQ(executed["output"]["images"][0]["filename"], "split_00001_.png") << executed.dump();
  EXPECT_EQ(wait_history(coord->url(), id)["status"]["status_str"], "success");
  HttpReply bad = call(w->url(), "GET", "/netdist/v1/status?events_from=-2");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("events_from must be a count"), std::string::npos) << bad.body;
}

TEST(ClusterProcess, WholePromptEventsReachTheClientLive) { expect_whole_prompt_events_live(false); }
TEST(ClusterProcess, WholePromptEventsReachTheClientLiveFromADialInWorker) { expect_whole_prompt_events_live(true); }

// The dial-in wire protocol for a whole prompt, with the test as the worker: the pull carries kind "prompt"
// and the /netdist/v1/prompt body; a result of another kind is refused naming both; /interrupt with the
// prompt id reaches the worker in its progress reply; the ticket is stale once its result came.
TEST(ClusterProcess, DialInPullCarriesAWholePromptTaskOfKindPrompt) {
  fs::path dir = scratch("whole_protocol");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--local-workers", "0"}), dir / "c.log");
  auto caps = nlohmann::json::parse(call(coord.url(), "GET", "/netdist/v1/capabilities").body, nullptr, false);
  ASSERT_TRUE(caps.is_object());
  HttpReply pulled;
  std::thread puller([&] {
    pulled = call(coord.url(), "POST", "/netdist/v1/pull",
                  nlohmann::json{{"worker_id", "fake"}, {"url", "fake"}, {"capabilities", caps}}.dump());
  });
  wait_alive(coord.url(), 2);  // this process's runner and the fake worker
  const std::string id = submit(coord.url(), prompt(1, 1));
  puller.join();
  ASSERT_EQ(pulled.status, 200) << pulled.body;
  auto task = nlohmann::json::parse(pulled.body, nullptr, false);
  ASSERT_TRUE(task.is_object());
  EXPECT_EQ(task["kind"], "prompt");
  EXPECT_EQ(task["prompt_id"], id);
  EXPECT_TRUE(task["prompt"].is_object() && task["outputs_to_execute"].is_array()) << task.dump();
  EXPECT_FALSE(task.contains("workflow"));
  ASSERT_TRUE(task["ticket"].is_number_unsigned());
  const std::string ticket = std::to_string(task["ticket"].get<uint64_t>());
  const std::string result = "/netdist/v1/result?worker_id=fake&ticket=" + ticket;

  HttpReply wrong = call(coord.url(), "POST", result + "&status=200&kind=shard", "x");
  EXPECT_EQ(wrong.status, 400);
  EXPECT_NE(wrong.body.find("is a prompt task, not a shard task"), std::string::npos) << wrong.body;
  HttpReply unknown = call(coord.url(), "POST", result + "&status=200&kind=mosaic", "x");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.body.find("result kind 'mosaic'"), std::string::npos) << unknown.body;

  HttpReply bad_events = call(coord.url(), "POST", "/netdist/v1/progress",
                              nlohmann::json{{"worker_id", "fake"}, {"ticket", task["ticket"]}, {"events_from", -1},
                                             {"events", nlohmann::json::array()}}
                                  .dump());
  EXPECT_EQ(bad_events.status, 400);
  EXPECT_NE(bad_events.body.find("events_from"), std::string::npos) << bad_events.body;
  EXPECT_EQ(call(coord.url(), "POST", "/interrupt", nlohmann::json{{"prompt_id", id}}.dump()).status, 200);
  const std::string progress =
      nlohmann::json{{"worker_id", "fake"}, {"ticket", task["ticket"]}, {"step", 1}, {"steps", 3}}.dump();
  bool interrupt = false;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!interrupt && Clock::now() < deadline) {
    auto r = nlohmann::json::parse(call(coord.url(), "POST", "/netdist/v1/progress", progress).body, nullptr, false);
    interrupt = r.is_object() && r.value("interrupt", false);
    if (!interrupt) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(interrupt) << "the prompt's interrupt never reached the dial-in worker";
  EXPECT_EQ(call(coord.url(), "POST", result + "&status=409&kind=prompt", R"({"error": {}})").status, 200);
  EXPECT_EQ(call(coord.url(), "POST", result + "&status=409&kind=prompt", R"({"error": {}})").status, 409)
      << "the ticket is stale once its result came";
  auto h = wait_history(coord.url(), id);
  EXPECT_EQ(h["status"]["status_str"], "error");
  EXPECT_EQ(h["status"]["messages"].back()[0], "execution_interrupted");
}

// Starts a whole prompt on one slow worker (connect-out, or dial-in through --join), interrupts another
// prompt id (nothing happens) and then its own: the prompt ends interrupted and the worker stops it.
// protocol.h: the capability probe states the protocol version; a dial-in worker of another version is
// refused at its first pull with both versions named, and never listed as a worker.
TEST(ClusterProcess, AWorkerOfAnotherProtocolVersionIsRefusedNamingBoth) {
  fs::path dir = scratch("protocol_version");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--local-workers", "0"}), dir / "c.log");
  auto caps = nlohmann::json::parse(call(coord.url(), "GET", "/netdist/v1/capabilities").body, nullptr, false);
  ASSERT_TRUE(caps.is_object());
  EXPECT_EQ(caps["protocol_version"], 1) << caps.dump();
  caps["protocol_version"] = 999;
  HttpReply refused = call(coord.url(), "POST", "/netdist/v1/pull",
                           nlohmann::json{{"worker_id", "future"}, {"url", "future"}, {"capabilities", caps}}.dump());
  EXPECT_EQ(refused.status, 400) << refused.body;
  EXPECT_NE(refused.body.find("protocol_version_mismatch"), std::string::npos) << refused.body;
  EXPECT_NE(refused.body.find("version 999"), std::string::npos) << refused.body;
  EXPECT_NE(refused.body.find("version 1"), std::string::npos) << refused.body;
  caps.erase("protocol_version");
  HttpReply none = call(coord.url(), "POST", "/netdist/v1/pull",
                        nlohmann::json{{"worker_id", "old"}, {"url", "old"}, {"capabilities", caps}}.dump());
  EXPECT_EQ(none.status, 400) << none.body;
  EXPECT_NE(none.body.find("version none"), std::string::npos) << none.body;
  const auto cluster = nlohmann::json::parse(call(coord.url(), "GET", "/netdist/v1/cluster").body, nullptr, false);
  for (const auto& w : cluster["workers"]) EXPECT_NE(w["worker_id"], "future") << cluster.dump();
}

void interrupt_whole_prompt(const std::string& name, bool dial_in) {
  fs::path dir = scratch(name);
  std::unique_ptr<Proc> coord_out, w_out;
  if (dial_in) {
    coord_out = std::make_unique<Proc>(
        coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--local-workers", "0"}), dir / "c.log");
    w_out = std::make_unique<Proc>(worker_args(dir / "w", {"--join", coord_out->url(), "--test-step-delay-ms", "1000"}),
                                   dir / "w.log");
  } else {
    w_out = std::make_unique<Proc>(worker_args(dir / "w", {"--test-step-delay-ms", "1000"}), dir / "w.log");
    coord_out = std::make_unique<Proc>(
        coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--workers", w_out->url()}), dir / "c.log");
  }
  Proc& coord = *coord_out;
  Proc& w = *w_out;
  wait_alive(coord.url(), 1);
  const std::string id = submit(coord.url(), prompt(1, 1));
  ASSERT_TRUE(wait_running(w.url(), Clock::now() + std::chrono::seconds(30)));
  EXPECT_EQ(call(coord.url(), "POST", "/interrupt", nlohmann::json{{"prompt_id", "someone-else"}}.dump()).status, 200);
  EXPECT_EQ(call(coord.url(), "POST", "/interrupt", nlohmann::json{{"prompt_id", id}}.dump()).status, 200);
  auto h = wait_history(coord.url(), id);
  EXPECT_EQ(h["status"]["status_str"], "error");
  EXPECT_EQ(h["status"]["messages"].back()[0], "execution_interrupted");
  // The worker stops at its next step instead of finishing the prompt (3 steps of 1 s each).
  EXPECT_TRUE(wait_idle(w.url(), Clock::now() + std::chrono::seconds(5))) << "the worker stopped the prompt";
  EXPECT_EQ(worker_field(coord.url(), "prompts_done")[w.url()], 0);
}

TEST(ClusterProcess, InterruptByPromptIdStopsAWholePromptOnItsWorker) {
  interrupt_whole_prompt("whole_interrupt", false);
}

// The interrupt rides on the reply to the dial-in worker's next progress post.
TEST(ClusterProcess, InterruptByPromptIdStopsAWholePromptOnADialInWorker) {
  interrupt_whole_prompt("whole_interrupt_dialin", true);
}

// A free loopback port (bound, read and closed: a restarted coordinator can take the same one).
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  close(fd);
  return ntohs(addr.sin_port);
}

// A coordinator that restarts (same address, no memory of its workers) gets its dial-in worker back: the
// worker's next pull is answered 409 (unknown id) and it registers again with its capabilities.
TEST(ClusterProcess, DialInWorkerRejoinsARestartedCoordinator) {
  fs::path dir = scratch("restart");
  auto args = coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--local-workers", "0"});
  *std::next(std::find(args.begin(), args.end(), "--port")) = std::to_string(free_port());
  auto coord = std::make_unique<Proc>(args, dir / "c1.log");
  Proc w(worker_args(dir / "w", {"--join", coord->url()}), dir / "w.log");
  wait_alive(coord->url(), 1);
  EXPECT_EQ(wait_history(coord->url(), submit(coord->url(), prompt(2)))["status"]["status_str"], "success");
  coord->stop(SIGKILL);
  coord = std::make_unique<Proc>(args, dir / "c2.log");
  wait_alive(coord->url(), 1);
  auto h = wait_history(coord->url(), submit(coord->url(), prompt(2)));
  EXPECT_EQ(h["status"]["status_str"], "success");
  EXPECT_EQ(rows_by_worker(coord->url())[w.url()], 2);
}

// LoadImage → VAEEncode → RepeatLatentBatch(amount) → KSampler(denoise 0.6) → decode → save, reading `image`.
nlohmann::json img2img_prompt(const std::string& image, int amount = 4, int seed = 11) {
  return nlohmann::json::parse(R"({
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-emoji.safetensors"}},
    "1": {"class_type": "LoadImage", "inputs": {"image": ")" +
                               image + R"("}},
    "2": {"class_type": "VAEEncode", "inputs": {"pixels": ["1", 0], "vae": ["4", 2]}},
    "5": {"class_type": "RepeatLatentBatch", "inputs": {"samples": ["2", 0], "amount": )" +
                               std::to_string(amount) + R"(}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "red heart", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "3": {"class_type": "KSampler", "inputs": {"seed": )" +
                               std::to_string(seed) + R"(, "steps": 3, "cfg": 5.0, "sampler_name": "euler_ancestral",
          "scheduler": "normal", "denoise": 0.6, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
          "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "img2img", "images": ["8", 0]}}
  })");
}

// The input image exists only on the coordinator: the shards of a batch of 4, and two batch-1 prompts sent
// whole, carry it to two dial-in workers, which render the bytes one machine renders (PNG metadata
// included: it names the file as the client did). A shard naming an input outside the worker's input
// folder is refused.
TEST(ClusterProcess, Img2ImgInputTravelsWithTheShards) {
  const fs::path emoji = fs::path(NETDIST_SOURCE_DIR) / "tests" / "data" / "emoji" / "google_1f301.png";
  fs::path dir = scratch("img2img");
  fs::create_directories(dir / "one" / "in" / "photos");
  fs::create_directories(dir / "c" / "in" / "photos");
  fs::copy_file(emoji, dir / "one" / "in" / "photos" / "night.png");
  fs::copy_file(emoji, dir / "c" / "in" / "photos" / "night.png");
  std::vector<std::string> reference, reference_whole;
  {
    Proc one(process_args("serve", dir / "one", {}), dir / "one.log");
    auto h = wait_history(one.url(), submit(one.url(), img2img_prompt("photos/night.png")));
    EXPECT_EQ(h["status"]["status_str"], "success") << h.dump();
    reference = images(h, dir / "one" / "out");
    for (int seed : {21, 22}) {
      auto w = wait_history(one.url(), submit(one.url(), img2img_prompt("photos/night.png", 1, seed)));
      EXPECT_EQ(w["status"]["status_str"], "success") << w.dump();
      auto png = images(w, dir / "one" / "out");
      reference_whole.insert(reference_whole.end(), png.begin(), png.end());
    }
  }
  ASSERT_EQ(reference.size(), 4u);
  ASSERT_EQ(reference_whole.size(), 2u);
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--local-workers", "0"}),
             dir / "c.log");
  Proc a(worker_args(dir / "a", {"--join", coord.url()}), dir / "a.log");
  Proc b(worker_args(dir / "b", {"--join", coord.url()}), dir / "b.log");
  wait_alive(coord.url(), 2);
  auto h = wait_history(coord.url(), submit(coord.url(), img2img_prompt("photos/night.png")));
  EXPECT_EQ(h["status"]["status_str"], "success") << h.dump();
  EXPECT_TRUE(images(h, dir / "c" / "out") == reference) << "img2img on 2 workers differs from one machine";
  auto rows = rows_by_worker(coord.url());
  EXPECT_EQ(rows[a.url()] + rows[b.url()], 4);
  std::vector<std::string> whole_ids, whole;
  for (int seed : {21, 22}) whole_ids.push_back(submit(coord.url(), img2img_prompt("photos/night.png", 1, seed)));
  for (const std::string& id : whole_ids) {
    auto w = wait_history(coord.url(), id);
    EXPECT_EQ(w["status"]["status_str"], "success") << w.dump();
    auto png = images(w, dir / "c" / "out");
    whole.insert(whole.end(), png.begin(), png.end());
  }
  EXPECT_TRUE(whole == reference_whole) << "batch-1 img2img sent whole differs from one machine";
  auto prompts = worker_field(coord.url(), "prompts_done");
  EXPECT_EQ(prompts[a.url()] + prompts[b.url()], 2) << "batch-1 img2img prompts run whole on the workers";
  EXPECT_EQ(rows_by_worker(coord.url()), rows) << "and never as row shards";
  EXPECT_FALSE(fs::exists(dir / "a" / "in" / "photos")) << "the worker's input folder keeps only shard files";
  for (const auto& [name, url] : {std::pair{"a", a.url()}, std::pair{"b", b.url()}}) {
    size_t files = 0;  // one content-addressed copy on each worker that rendered a row or a prompt
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir / name / "in" / "netdist-inputs", ec);
         !ec && it != fs::directory_iterator(); it.increment(ec))
      ++files;
    EXPECT_EQ(files, rows[url] + prompts[url] > 0 ? 1u : 0u) << name;
  }

  HttpReply bad = call(coord.url(), "POST", "/prompt", nlohmann::json{{"prompt", img2img_prompt("../c.log")}}.dump());
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("Invalid image file: ../c.log"), std::string::npos) << bad.body;
  nlohmann::json shard = {{"shard_id", "evil"},
                          {"workflow", {{"1", {{"class_type", "LoadImage"}, {"inputs", {{"image", "../evil.png"}}}}}}},
                          {"inputs", {{"../evil.png", {{"sha256", "00"}, {"data", ""}}}}}};
  HttpReply refused = call(a.url(), "POST", "/netdist/v1/shard", shard.dump());
  EXPECT_EQ(refused.status, 400);
  EXPECT_NE(refused.body.find("'../evil.png' leaves the input folder"), std::string::npos) << refused.body;
  EXPECT_FALSE(fs::exists(dir / "a" / "evil.png"));
}

TEST(ClusterProcess, InterruptReachesDialInWorkers) {
  fs::path dir = scratch("interruptdial");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--local-workers", "0",
                                          "--test-heartbeat-ms", "500"}),
             dir / "c.log");
  Proc w(worker_args(dir / "w", {"--join", coord.url(), "--test-step-delay-ms", "1000"}), dir / "w.log");
  wait_alive(coord.url(), 1);
  const std::string id = submit(coord.url(), prompt(8));
  ASSERT_TRUE(wait_running(w.url(), Clock::now() + std::chrono::seconds(30)));
  EXPECT_EQ(call(coord.url(), "POST", "/interrupt").status, 200);
  auto h = wait_history(coord.url(), id);
  EXPECT_EQ(h["status"]["status_str"], "error");
  // The interrupt rode on the reply to a progress post: the worker stopped its shard instead of finishing
  // the batch (8 shards × 3 s).
  EXPECT_TRUE(wait_idle(w.url(), Clock::now() + std::chrono::seconds(10)));
  auto s = nlohmann::json::parse(call(w.url(), "GET", "/netdist/v1/status").body, nullptr, false);
  EXPECT_LT(s["shards_done"].get<int64_t>(), 8);
}

// Children of every thread of `pid` (a restarted worker is forked by the coordinator's monitor thread).
std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream f(task.path() / "children");
    for (pid_t c; f >> c;) out.push_back(c);
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ClusterProcess, LocalWorkersAreRestartedAfterACrashAndStoppedWithTheCoordinator) {
  const auto& ref = unsplit_reference();
  fs::path dir = scratch("local");
  auto coord = std::make_unique<Proc>(
      coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--local-workers", "2"}),
      dir / "c.log");
  wait_alive(coord->url(), 2);
  std::vector<pid_t> before = children_of(coord->pid());
  ASSERT_EQ(before.size(), 2u);
  kill(before[0], SIGKILL);
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  std::vector<pid_t> after;
  while (Clock::now() < deadline) {
    after = children_of(coord->pid());
    if (after.size() == 2 && after != before) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(after.size(), 2u);
  EXPECT_NE(after, before) << "the crashed worker was not restarted";
  // The restarted worker joins with a new port (a third entry); the dead one loses its lease.
  while (rows_by_worker(coord->url()).size() < 3 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(rows_by_worker(coord->url()).size(), 3u);
  wait_alive(coord->url(), 2);
  auto h = wait_history(coord->url(), submit(coord->url(), prompt(8)));
  EXPECT_TRUE(images(h, dir / "c" / "out") == ref);
  coord->stop(SIGTERM);
  for (pid_t c : after) EXPECT_NE(kill(c, 0), 0) << "worker " << c << " outlived the coordinator";
}

}  // namespace
}  // namespace netdist::cluster
