// Combined step-group modes end to end (issue #17): a coordinator and four `netdist worker` processes on
// loopback (Gloo over loopback on the CPU, the embedded tiny model at 64×64, 3 steps, cfg 5), shared by the
// cases of one suite. Through POST /prompt:
//  - CFG split × tiles on 4 workers renders the bytes of CFG split on 2 workers of the same tiled prompt
//    (docs/ARCHITECTURE.md "Exactness contract": tile shares never change a tile's bytes), plan "cfg+tiles"
//    with its CFG pairs and tile groups;
//  - rows × CFG, a batch of 2 on 4 workers (2 CFG pairs, a row each): plan "rows" with its pairs, both
//    images within CFG split's few levels of the row shards' (no CFG split);
//  - a member killed mid-prompt (its own cluster, throttled steps): the prompt still finishes, re-planned.
#include <signal.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>

#include "cluster/process_test_util.h"
#include "io/png.h"

namespace netdist::cluster {
namespace {

using namespace test;  // NOLINT(google-build-using-namespace): the process-test scaffolding

// prompt(batch, seed) with a TiledDiffusion node (32² pixel tiles, one tile per batch: a 2 × 2 grid).
nlohmann::json combo_tiled_prompt(int seed) {
  nlohmann::json p = prompt(1, seed);
  p["21"] = {{"class_type", "TiledDiffusion"},
             {"inputs",
              {{"model", nlohmann::json::array({"4", 0})},
               {"method", "Mixture of Diffusers"},
               {"tile_width", 32},
               {"tile_height", 32},
               {"tile_overlap", 8},
               {"tile_batch_size", 1}}}};
  p["3"]["inputs"]["model"] = nlohmann::json::array({"21", 0});
  return p;
}

std::string combo_submit(const std::string& url, const std::string& parallel, const nlohmann::json& p) {
  const nlohmann::json body = {
      {"prompt", p}, {"client_id", "combo"}, {"extra_data", {{"netdist", {{"parallel", parallel}}}}}};
  HttpReply r = call(url, "POST", "/prompt", body.dump());
  EXPECT_EQ(r.status, 200) << r.body;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  return j.is_object() ? j.value("prompt_id", "") : "";
}

// The largest difference of one channel of one pixel between two PNGs (256 when they do not compare).
int combo_max_level_diff(const std::string& a, const std::string& b) {
  auto x = io::decode_png(a, "a"), y = io::decode_png(b, "b");
  if (!x.is_ok() || !y.is_ok()) return 256;
  const io::Image8 &p = x->first, &q = y->first;
  if (p.width != q.width || p.height != q.height || p.channels != q.channels) return 256;
  int worst = 0;
  for (size_t i = 0; i < p.pixels.size(); ++i)
    worst = std::max(worst, std::abs(int(p.pixels[i]) - int(q.pixels[i])));
  return worst;
}

class GroupComboProcess : public ::testing::Test {
 protected:
  struct Cluster4 {
    fs::path dir = scratch("group_combo");
    std::vector<std::unique_ptr<Proc>> workers;
    std::unique_ptr<Proc> coord;
  };
  static void SetUpTestSuite() {
    c_ = new Cluster4;
    std::string urls;
    for (int i = 0; i < 4; ++i) {
      const std::string name = "w" + std::to_string(i);
      c_->workers.push_back(std::make_unique<Proc>(worker_args(c_->dir / name), c_->dir / (name + ".log")));
      urls += (i ? "," : "") + c_->workers.back()->url();
    }
    c_->coord = std::make_unique<Proc>(
        coordinator_args(c_->dir / "c", {"--enable-distributed", "--no-local", "--workers", urls}),
        c_->dir / "c.log");
  }
  static void TearDownTestSuite() {
    delete c_;
    c_ = nullptr;
  }
  static nlohmann::json run(const std::string& parallel, const nlohmann::json& p) {
    return wait_history(c_->coord->url(), combo_submit(c_->coord->url(), parallel, p));
  }
  static Cluster4* c_;
};
GroupComboProcess::Cluster4* GroupComboProcess::c_ = nullptr;

TEST_F(GroupComboProcess, CfgTimesTilesOnFourWorkersRendersTheCfgSplitBytes) {
  ASSERT_TRUE(wait_alive(c_->coord->url(), 4));
  auto h = run("cfg+tiles", combo_tiled_prompt(21));
  ASSERT_EQ(h["status"]["status_str"], "success") << h.dump();
  const auto& plan = h["netdist"]["plan"];
  EXPECT_EQ(plan["mode"], "cfg+tiles") << plan.dump();
  ASSERT_EQ(plan["workers"].size(), 4u) << plan.dump();
  EXPECT_EQ(plan["cfg_pairs"], nlohmann::json::array({nlohmann::json::array({plan["workers"][0], plan["workers"][1]}),
                                                      nlohmann::json::array({plan["workers"][2], plan["workers"][3]})}))
      << plan.dump();
  EXPECT_EQ(plan["tile_groups"][0], nlohmann::json::array({plan["workers"][0], plan["workers"][2]})) << plan.dump();
  const auto png = images(h, c_->dir / "c" / "out");
  ASSERT_EQ(png.size(), 1u);
  for (int i = 0; i < 4; ++i) {
    const std::string log = read_file(c_->dir / ("w" + std::to_string(i) + ".log"));
    EXPECT_NE(log.find("sampler: CFG split as rank"), std::string::npos) << "w" << i << " did not split CFG";
    EXPECT_NE(log.find("in the tile group)"), std::string::npos) << "w" << i << " did not share tiles";
  }
  // The reference: CFG split on 2 workers, each rendering every tile.
  auto ref = run("cfg", combo_tiled_prompt(21));
  ASSERT_EQ(ref["status"]["status_str"], "success") << ref.dump();
  EXPECT_EQ(ref["netdist"]["plan"]["mode"], "cfg") << ref.dump();
  EXPECT_TRUE(images(ref, c_->dir / "c" / "out") == png) << "cfg+tiles bytes differ from CFG split's";
}

TEST_F(GroupComboProcess, RowsTimesCfgSamplesABatchOfTwoOnFourWorkers) {
  ASSERT_TRUE(wait_alive(c_->coord->url(), 4));
  auto h = run("rows", prompt(2, 31));
  ASSERT_EQ(h["status"]["status_str"], "success") << h.dump();
  const auto& plan = h["netdist"]["plan"];
  EXPECT_EQ(plan["mode"], "rows") << plan.dump();
  ASSERT_EQ(plan["workers"].size(), 4u) << plan.dump();
  EXPECT_EQ(plan["row_groups"].size(), 2u) << plan.dump();
  EXPECT_EQ(plan["cfg_pairs"].size(), 2u) << plan.dump();
  const auto png = images(h, c_->dir / "c" / "out");
  ASSERT_EQ(png.size(), 2u);
  int rows_logged = 0;
  for (int i = 0; i < 4; ++i) {
    const std::string log = read_file(c_->dir / ("w" + std::to_string(i) + ".log"));
    rows_logged += log.find("in the row group)") != std::string::npos;
  }
  EXPECT_EQ(rows_logged, 4) << "every member shares the rows";
  // Row shards on 2 workers without CFG split: the same images within CFG split's rounding.
  auto ref = run("off", prompt(2, 31));
  ASSERT_EQ(ref["status"]["status_str"], "success") << ref.dump();
  const auto ref_png = images(ref, c_->dir / "c" / "out");
  ASSERT_EQ(ref_png.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_LE(combo_max_level_diff(png[i], ref_png[i]), 3) << "image " << i;
  EXPECT_GT(combo_max_level_diff(png[0], png[1]), 0) << "both rows rendered the same image";
}

TEST(GroupComboKill, AMemberOfACfgTilesGroupKilledMidPromptLosesNothing) {
  fs::path dir = scratch("group_combo_kill");
  std::vector<std::unique_ptr<Proc>> w;
  std::string urls;
  for (int i = 0; i < 4; ++i) {
    const std::string name = "w" + std::to_string(i);
    w.push_back(std::make_unique<Proc>(worker_args(dir / name, {"--test-step-delay-ms", "400"}),
                                       dir / (name + ".log")));
    urls += (i ? "," : "") + w.back()->url();
  }
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--workers", urls}), dir / "c.log");
  ASSERT_TRUE(wait_alive(coord.url(), 4));
  const std::string id = combo_submit(coord.url(), "cfg+tiles", combo_tiled_prompt(41));
  ASSERT_TRUE(wait_running(w[3]->url(), Clock::now() + std::chrono::seconds(60))) << "the group never ran";
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // inside the sampler's steps
  const std::string victim = w[3]->url();
  w[3]->stop(SIGKILL);
  auto h = wait_history(coord.url(), id);
  ASSERT_EQ(h["status"]["status_str"], "success") << h.dump();
  const auto& plan = h["netdist"]["plan"];
  EXPECT_NE(plan["mode"], "cfg+tiles") << "re-planned after the loss: " << plan.dump();
  for (const auto& url : plan["workers"]) EXPECT_NE(url, victim) << plan.dump();
  EXPECT_EQ(images(h, dir / "c" / "out").size(), 1u);
}

}  // namespace
}  // namespace netdist::cluster
