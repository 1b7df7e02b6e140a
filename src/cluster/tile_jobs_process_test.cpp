// Ultimate SD Upscale across workers (tile_jobs.h), end to end with real `netdist` processes on loopback and
// the embedded tiny model: a 256² image rendered by one plain server goes through UltimateSDUpscaleNoUpscale
// (tile 64, padding 16) via LoadImage, on one plain server (the reference), on a coordinator with one worker
// (the prompt runs whole there), with three connect-out workers and with two dial-in workers (tile tasks):
// the same PNG bytes for both redraw modes and every seam-fix mode; a worker killed mid-tile changes
// nothing; `independent` mode gives the same bytes on 1, 2 and 3 workers.
#include <signal.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/process_test_util.h"

// Not in netdist::cluster: in a unity build cluster_process_test.cpp's helpers share that namespace's
// anonymous namespace.
namespace netdist::tile_jobs_process_test {
namespace {

using namespace cluster::test;  // NOLINT(google-build-using-namespace): the process-test scaffolding

struct TileCase {
  std::string redraw, seam_fix, tiles;  // tiles: "exact" or "independent"
  int seed;
};

// The four exact cases cover both redraw modes and every seam-fix mode; one independent case.
const std::vector<TileCase>& tile_cases() {
  static const std::vector<TileCase> cases = {{"Linear", "None", "exact", 11},
                                              {"Chess", "Band Pass", "exact", 12},
                                              {"Linear", "Half Tile", "exact", 13},
                                              {"Chess", "Half Tile + Intersections", "exact", 14},
                                              {"Linear", "Half Tile", "independent", 13}};
  return cases;
}

// A 256² render of the tiny model (its PNG is the USDU source).
nlohmann::json tile_source_prompt() {
  nlohmann::json p = prompt(1, 5);
  p["5"]["inputs"]["width"] = 256;
  p["5"]["inputs"]["height"] = 256;
  p["3"]["inputs"]["steps"] = 2;
  return p;
}

// LoadImage src.png → UltimateSDUpscaleNoUpscale → SaveImage (node 9).
nlohmann::json usdu_prompt(const TileCase& c) {
  nlohmann::json p = prompt(1);
  p.erase("5");
  p.erase("3");
  p.erase("8");
  p["1"] = {{"class_type", "LoadImage"}, {"inputs", {{"image", "src.png"}}}};
  p["10"] = {{"class_type", "UltimateSDUpscaleNoUpscale"},
             {"inputs",
              {{"upscaled_image", {"1", 0}},
               {"model", {"4", 0}},
               {"positive", {"6", 0}},
               {"negative", {"7", 0}},
               {"vae", {"4", 2}},
               {"seed", c.seed},
               {"steps", 2},
               {"cfg", 5.0},
               {"sampler_name", "euler"},
               {"scheduler", "normal"},
               {"denoise", 0.4},
               {"mode_type", c.redraw},
               {"tile_width", 64},
               {"tile_height", 64},
               {"mask_blur", 8},
               {"tile_padding", 16},
               {"seam_fix_mode", c.seam_fix},
               {"seam_fix_denoise", 1.0},
               {"seam_fix_width", 32},
               {"seam_fix_mask_blur", 8},
               {"seam_fix_padding", 16},
               {"force_uniform_tiles", true},
               {"tiled_decode", false},
               {"batch_size", 1}}}};
  p["9"]["inputs"]["images"] = {"10", 0};
  return p;
}

std::string submit_case(const std::string& url, const TileCase& c) {
  nlohmann::json body = {{"prompt", usdu_prompt(c)}, {"client_id", "tiles"}};
  if (c.tiles != "exact") body["extra_data"] = {{"netdist", {{"tiles", c.tiles}}}};
  auto r = call(url, "POST", "/prompt", body.dump());
  EXPECT_EQ(r.status, 200) << r.body;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  return j.is_object() ? j.value("prompt_id", "") : "";
}

// Runs every case on `url` (folders under dir), one after another: the PNG bytes per case (and, if asked,
// the history entries).
std::vector<std::string> run_cases(const std::string& url, const fs::path& dir,
                                   std::vector<nlohmann::json>* histories = nullptr) {
  std::vector<std::string> out;
  for (const TileCase& c : tile_cases()) {
    auto h = wait_history(url, submit_case(url, c), {}, std::chrono::seconds(300));
    if (histories) histories->push_back(h);
    EXPECT_EQ(h["status"]["status_str"], "success") << c.redraw << " / " << c.seam_fix << ": " << h.dump();
    auto png = images(h, dir / "out");
    out.push_back(png.size() == 1 ? png[0] : std::string());
  }
  return out;
}

void put_source(const fs::path& dir, const std::string& png) {
  fs::create_directories(dir / "in");
  std::ofstream(dir / "in" / "src.png", std::ios::binary) << png;
}

struct TileReference {
  std::string source;              // the 256² PNG
  std::vector<std::string> cases;  // per tile_cases() entry, on one plain server
};

const TileReference& tile_reference() {
  static const TileReference ref = [] {
    TileReference r;
    const fs::path dir = scratch("tiles_reference");
    Proc one(process_args("serve", dir, {}), dir / "serve.log");
    auto h = wait_history(one.url(), submit(one.url(), tile_source_prompt()));
    auto png = images(h, dir / "out");
    if (png.size() != 1) return r;
    r.source = png[0];
    put_source(dir, r.source);
    r.cases = run_cases(one.url(), dir);
    return r;
  }();
  return ref;
}

std::string join_procs(const std::vector<const Proc*>& procs) {
  std::string s;
  for (const Proc* p : procs) s += (s.empty() ? "" : ",") + p->url();
  return s;
}

// Tiles (rows_done) each worker redrew, summed.
int64_t tiles_done(const std::string& coordinator, int* workers_used = nullptr) {
  int64_t total = 0;
  for (const auto& [url, n] : rows_by_worker(coordinator)) {
    total += n;
    if (workers_used && n > 0) ++*workers_used;
  }
  return total;
}

TEST(TileJobsProcess, ThreeWorkersRedrawTheOneProcessBytesInEveryMode) {
  const TileReference& ref = tile_reference();
  ASSERT_EQ(ref.cases.size(), tile_cases().size());
  EXPECT_NE(ref.cases[2], ref.cases[4]) << "independent mode is not the sequential picture";
  fs::path dir = scratch("tiles_three");
  put_source(dir / "c", ref.source);
  Proc w1(worker_args(dir / "w1"), dir / "w1.log"), w2(worker_args(dir / "w2"), dir / "w2.log"),
      w3(worker_args(dir / "w3"), dir / "w3.log");
  Proc coord(coordinator_args(
                 dir / "c", {"--enable-distributed", "--no-local", "--workers", join_procs({&w1, &w2, &w3})}),
             dir / "c.log");
  ASSERT_TRUE(wait_alive(coord.url(), 3));
  std::vector<nlohmann::json> histories;
  const std::vector<std::string> got = run_cases(coord.url(), dir / "c", &histories);
  // The history entry names the tile plan (plan.h, tile_jobs.h): the grid, the waves, who redrew each step.
  for (size_t i = 0; i < histories.size(); ++i) {
    const auto& plan = histories[i]["netdist"]["plan"];
    EXPECT_EQ(plan["mode"], "tiles") << histories[i].dump();
    EXPECT_EQ(plan["tiles"], tile_cases()[i].tiles) << plan.dump();
    EXPECT_GE(plan["waves"].get<int64_t>(), 1) << plan.dump();
    EXPECT_EQ(plan["step_workers"].size(), plan["steps"].get<size_t>()) << plan.dump();
    EXPECT_GE(plan["workers"].size(), 1u) << plan.dump();
  }
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_TRUE(got[i] == ref.cases[i])
        << tile_cases()[i].redraw << " / " << tile_cases()[i].seam_fix << " / " << tile_cases()[i].tiles
        << " on 3 workers differs from one process";
  int used = 0;
  EXPECT_GT(tiles_done(coord.url(), &used), 0) << "the tiles ran on the workers";
  EXPECT_GE(used, 2) << "the workers shared the tiles";
  EXPECT_EQ(worker_field(coord.url(), "prompts_done"),
            (std::map<std::string, int64_t>{{w1.url(), 0}, {w2.url(), 0}, {w3.url(), 0}}))
      << "no USDU prompt went whole to one worker";
}

TEST(TileJobsProcess, OneWorkerAndTwoDialInWorkersGiveTheSameBytes) {
  const TileReference& ref = tile_reference();
  ASSERT_EQ(ref.cases.size(), tile_cases().size());
  fs::path dir = scratch("tiles_one_two");
  put_source(dir / "c1", ref.source);
  put_source(dir / "c2", ref.source);
  {
    Proc w(worker_args(dir / "w"), dir / "w.log");
    Proc coord(coordinator_args(dir / "c1", {"--enable-distributed", "--no-local", "--workers", w.url()}),
               dir / "c1.log");
    ASSERT_TRUE(wait_alive(coord.url(), 1));
    EXPECT_TRUE(run_cases(coord.url(), dir / "c1") == ref.cases) << "one worker differs from one process";
  }
  Proc coord(coordinator_args(dir / "c2", {"--enable-distributed", "--no-local", "--local-workers", "0"}),
             dir / "c2.log");
  Proc a(worker_args(dir / "a", {"--join", coord.url()}), dir / "a.log");
  Proc b(worker_args(dir / "b", {"--join", coord.url()}), dir / "b.log");
  ASSERT_TRUE(wait_alive(coord.url(), 2));
  const std::vector<std::string> got = run_cases(coord.url(), dir / "c2");
  EXPECT_TRUE(got == ref.cases) << "two dial-in workers differ from one process";
  EXPECT_GT(tiles_done(coord.url()), 0) << "the dial-in workers pulled tile tasks";
}

TEST(TileJobsProcess, KilledWorkerMidTileChangesNothing) {
  const TileReference& ref = tile_reference();
  ASSERT_EQ(ref.cases.size(), tile_cases().size());
  fs::path dir = scratch("tiles_kill");
  put_source(dir / "c", ref.source);
  // Throttled workers: a tile lasts long enough to be caught running.
  Proc survivor(worker_args(dir / "survivor", {"--test-step-delay-ms", "150"}), dir / "survivor.log");
  Proc victim(worker_args(dir / "victim", {"--test-step-delay-ms", "150"}), dir / "victim.log");
  Proc other(worker_args(dir / "other", {"--test-step-delay-ms", "150"}), dir / "other.log");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--workers",
                                          join_procs({&survivor, &victim, &other})}),
             dir / "c.log");
  ASSERT_TRUE(wait_alive(coord.url(), 3));
  const std::string id = submit_case(coord.url(), tile_cases()[0]);
  ASSERT_TRUE(wait_running(victim.url(), Clock::now() + std::chrono::seconds(60)))
      << "the victim never ran a tile";
  victim.stop(SIGKILL);
  auto h = wait_history(coord.url(), id, {}, std::chrono::seconds(300));
  EXPECT_EQ(h["status"]["status_str"], "success") << h.dump();
  auto png = images(h, dir / "c" / "out");
  ASSERT_EQ(png.size(), 1u);
  EXPECT_TRUE(png[0] == ref.cases[0]) << "a killed worker's tile redone elsewhere changed the picture";
}

}  // namespace
}  // namespace netdist::tile_jobs_process_test
