// Step groups end to end (issue #17): real `netdist` coordinator and worker processes on loopback, Gloo
// over loopback on the CPU, the embedded tiny model at 64×64, 3 steps, cfg 5. Through POST /prompt: CFG
// split on two workers renders the one-worker image within a few levels and records plan "cfg";
// TiledDiffusion on two workers renders one worker's bytes (plan "tiles"); a worker without the cluster token
// cannot join (the prompt still finishes, whole); a member killed mid-prompt loses nothing (re-planned whole
// on the survivor); dial-in workers form a group too.
#include <signal.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "cluster/process_test_util.h"
#include "io/png.h"

namespace netdist::cluster {
namespace {

using namespace test;  // NOLINT(google-build-using-namespace): the process-test scaffolding

// One plain server's image of prompt(1, 11): what one worker renders.
const std::string& group_reference() {
  static const std::string ref = [] {
    auto by_seed = reference_images(scratch("group_reference"), 1, {11});
    return by_seed[11].empty() ? std::string() : by_seed[11][0];
  }();
  return ref;
}

// prompt(1, 11) with a TiledDiffusion node (32² pixel tiles, overlap 8, one tile per batch: 9 tile batches).
nlohmann::json group_tiled_prompt() {
  nlohmann::json p = prompt(1, 11);
  p["21"] = {{"class_type", "TiledDiffusion"},
             {"inputs",
              {{"model", nlohmann::json::array({"4", 0})},
               {"method", "MultiDiffusion"},
               {"tile_width", 32},
               {"tile_height", 32},
               {"tile_overlap", 8},
               {"tile_batch_size", 1}}}};
  p["3"]["inputs"]["model"] = nlohmann::json::array({"21", 0});
  return p;
}

// POST /prompt of `p` (default prompt(1, 11)) with extra_data.netdist.parallel = `parallel`.
std::string submit_parallel(const std::string& url, const std::string& parallel, const CallOptions& o = {},
                            const nlohmann::json& p = prompt(1, 11)) {
  const nlohmann::json body = {
      {"prompt", p}, {"client_id", "g"}, {"extra_data", {{"netdist", {{"parallel", parallel}}}}}};
  HttpReply r = call(url, "POST", "/prompt", body.dump(), o);
  EXPECT_EQ(r.status, 200) << r.body;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  return j.is_object() ? j.value("prompt_id", "") : "";
}

// The largest difference of one channel of one pixel between two PNGs (256 when they do not compare).
int group_max_level_diff(const std::string& a, const std::string& b) {
  auto x = io::decode_png(a, "a"), y = io::decode_png(b, "b");
  if (!x.is_ok() || !y.is_ok()) return 256;
  const io::Image8 &p = x->first, &q = y->first;
  if (p.width != q.width || p.height != q.height || p.channels != q.channels) return 256;
  int worst = 0;
  for (size_t i = 0; i < p.pixels.size(); ++i)
    worst = std::max(worst, std::abs(int(p.pixels[i]) - int(q.pixels[i])));
  return worst;
}

TEST(GroupProcess, CfgSplitOnTwoWorkersMatchesOneWorkerAndRecordsThePlan) {
  const std::string& ref = group_reference();
  ASSERT_FALSE(ref.empty());
  fs::path dir = scratch("group_cfg");
  Proc w1(worker_args(dir / "w1"), dir / "w1.log"), w2(worker_args(dir / "w2"), dir / "w2.log");
  Proc coord(coordinator_args(dir / "c",
                              {"--enable-distributed", "--no-local", "--workers", w1.url() + "," + w2.url()}),
             dir / "c.log");
  ASSERT_TRUE(wait_alive(coord.url(), 2));
  auto h = wait_history(coord.url(), submit_parallel(coord.url(), "cfg"));
  ASSERT_EQ(h["status"]["status_str"], "success") << h.dump();
  const auto& plan = h["netdist"]["plan"];
  EXPECT_EQ(plan["mode"], "cfg") << h.dump();
  EXPECT_EQ(plan["workers"].size(), 2u) << plan.dump();
  const auto png = images(h, dir / "c" / "out");
  ASSERT_EQ(png.size(), 1u);
  // docs/ARCHITECTURE.md "Step groups": CFG split equals one worker within fp32 reduction-order noise
  // (≤ 6.9e-4 on latents); after VAE decode and 8-bit rounding, a few levels.
  EXPECT_LE(group_max_level_diff(png[0], ref), 3) << "the CFG-split image differs from one worker's";
  for (const char* w : {"w1.log", "w2.log"}) {
    EXPECT_NE(read_file(dir / w).find("sampler: CFG split as rank"), std::string::npos)
        << w << " sampled alone";
  }
  // Both workers ran their rank: the rank-1 member counted a task, only rank 0 a prompt.
  auto shards = worker_field(coord.url(), "shards_done");
  EXPECT_EQ(shards[w1.url()], 1);
  EXPECT_EQ(shards[w2.url()], 1);
}

// Dial-in workers get their ranks as pulled tasks of kind "group" and meet at their --join coordinator.
TEST(GroupProcess, CfgSplitOnTwoDialInWorkers) {
  const std::string& ref = group_reference();
  ASSERT_FALSE(ref.empty());
  fs::path dir = scratch("group_dial_in");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local"}), dir / "c.log");
  Proc w1(worker_args(dir / "w1", {"--join", coord.url()}), dir / "w1.log");
  Proc w2(worker_args(dir / "w2", {"--join", coord.url()}), dir / "w2.log");
  ASSERT_TRUE(wait_alive(coord.url(), 2));
  auto h = wait_history(coord.url(), submit_parallel(coord.url(), "cfg"));
  ASSERT_EQ(h["status"]["status_str"], "success") << h.dump();
  EXPECT_EQ(h["netdist"]["plan"]["mode"], "cfg") << h.dump();
  const auto png = images(h, dir / "c" / "out");
  ASSERT_EQ(png.size(), 1u);
  EXPECT_LE(group_max_level_diff(png[0], ref), 3);
}

TEST(GroupProcess, TiledDiffusionOnTwoWorkersRendersOneWorkersBytes) {
  fs::path dir = scratch("group_tiles");
  std::string ref;
  {
    Proc one(process_args("serve", dir / "one", {}), dir / "one.log");
    auto h = wait_history(one.url(), submit_parallel(one.url(), "off", {}, group_tiled_prompt()));
    const auto png = images(h, dir / "one" / "out");
    ASSERT_EQ(png.size(), 1u) << h.dump();
    ref = png[0];
  }
  Proc w1(worker_args(dir / "w1"), dir / "w1.log"), w2(worker_args(dir / "w2"), dir / "w2.log");
  Proc coord(coordinator_args(dir / "c",
                              {"--enable-distributed", "--no-local", "--workers", w1.url() + "," + w2.url()}),
             dir / "c.log");
  ASSERT_TRUE(wait_alive(coord.url(), 2));
  auto h = wait_history(coord.url(), submit_parallel(coord.url(), "tiles", {}, group_tiled_prompt()));
  ASSERT_EQ(h["status"]["status_str"], "success") << h.dump();
  EXPECT_EQ(h["netdist"]["plan"]["mode"], "tiles") << h.dump();
  EXPECT_EQ(h["netdist"]["plan"]["workers"].size(), 2u);
  for (const char* w : {"w1.log", "w2.log"}) {
    EXPECT_NE(read_file(dir / w).find("sampler: tiles shared as rank"), std::string::npos)
        << w << " sampled alone";
  }
  // Tile seeds and blending do not depend on who renders a tile: the same bytes as one process.
  EXPECT_TRUE(images(h, dir / "c" / "out") == std::vector<std::string>{ref})
      << "tiled bytes differ from one worker's";
}

TEST(GroupProcess, AWorkerWithoutTheClusterTokenCannotJoinAndThePromptStillFinishes) {
  const std::string& ref = group_reference();
  fs::path dir = scratch("group_token");
  Proc holder(worker_args(dir / "holder", {"--auth-token", "s3cret"}), dir / "holder.log");
  Proc tokenless(worker_args(dir / "tokenless"), dir / "tokenless.log");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--auth-token", "s3cret",
                                          "--workers", holder.url() + "," + tokenless.url()}),
             dir / "c.log");
  ASSERT_TRUE(wait_alive(coord.url(), 2, "s3cret"));
  auto h = wait_history(coord.url(), submit_parallel(coord.url(), "cfg", "s3cret"), "s3cret");
  ASSERT_EQ(h["status"]["status_str"], "success") << h.dump();
  EXPECT_EQ(h["netdist"]["plan"]["mode"], "whole")
      << "re-planned after the group could not form: " << h.dump();
  EXPECT_TRUE(images(h, dir / "c" / "out") == std::vector<std::string>{ref}) << "not the one-worker image";
  EXPECT_NE(read_file(dir / "c.log").find("does not hold the cluster token"), std::string::npos)
      << "the coordinator's log names why the tokenless worker could not join";
}

TEST(GroupProcess, AMemberKilledMidPromptLosesNothing) {
  const std::string& ref = group_reference();
  fs::path dir = scratch("group_kill");
  // Throttled steps, so the group is caught sampling.
  Proc survivor(worker_args(dir / "survivor", {"--test-step-delay-ms", "400"}), dir / "survivor.log");
  Proc victim(worker_args(dir / "victim", {"--test-step-delay-ms", "400"}), dir / "victim.log");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--workers",
                                          survivor.url() + "," + victim.url()}),
             dir / "c.log");
  ASSERT_TRUE(wait_alive(coord.url(), 2));
  const std::string id = submit_parallel(coord.url(), "cfg");
  ASSERT_TRUE(wait_running(victim.url(), Clock::now() + std::chrono::seconds(60))) << "the group never ran";
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // inside the sampler's steps
  victim.stop(SIGKILL);
  auto h = wait_history(coord.url(), id);
  ASSERT_EQ(h["status"]["status_str"], "success") << h.dump();
  EXPECT_EQ(h["netdist"]["plan"]["mode"], "whole") << h.dump();
  EXPECT_EQ(h["netdist"]["plan"]["workers"], nlohmann::json::array({survivor.url()}));
  EXPECT_TRUE(images(h, dir / "c" / "out") == std::vector<std::string>{ref}) << "not the one-worker image";
}

}  // namespace
}  // namespace netdist::cluster
