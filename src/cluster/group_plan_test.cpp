// The step-group planner (group_plan.h), the coordinator's group store (group_kv.h) and the group wire forms
// (group_protocol.h), without processes.
#include "cluster/group_plan.h"

#include <gtest/gtest.h>

#include <thread>

#include "cluster/cost_model.h"
#include "cluster/group_kv.h"
#include "cluster/group_protocol.h"
#include "cluster/process_test_util.h"

namespace netdist::cluster {
namespace {

using OJson = nlohmann::ordered_json;

OJson group_plan_prompt(double cfg) {
  OJson p = test::prompt<OJson>(1, 3);
  p["3"]["inputs"]["cfg"] = cfg;
  return p;
}

TEST(GroupPlan, RequestedParallelIsThePromptsElseTheServersAndNamesABadValue) {
  EXPECT_EQ(requested_parallel(OJson::object(), "auto").value(), "auto");
  EXPECT_EQ(requested_parallel(OJson{{"netdist", {{"parallel", "cfg"}}}}, "off").value(), "cfg");
  auto bad = requested_parallel(OJson{{"netdist", {{"parallel", "fast"}}}}, "auto");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("extra_data.netdist.parallel 'fast'"), std::string::npos);
  EXPECT_FALSE(requested_parallel(OJson{{"netdist", {{"parallel", 2}}}}, "auto").is_ok());
}

TEST(GroupPlan, ExplicitCfgNeedsTwoIdleWorkersAndACfgOtherThanOne) {
  EXPECT_EQ(choose_parallel(group_plan_prompt(5), "cfg", 2, std::nullopt).mode, "cfg");
  EXPECT_EQ(choose_parallel(group_plan_prompt(5), "cfg", 2, std::nullopt).size, 2);
  EXPECT_EQ(choose_parallel(group_plan_prompt(5), "cfg", 1, std::nullopt).mode, "whole");
  EXPECT_EQ(choose_parallel(group_plan_prompt(1), "cfg", 3, std::nullopt).mode, "whole")
      << "nothing to split";
  EXPECT_EQ(choose_parallel(group_plan_prompt(5), "off", 3, 1.0).mode, "whole");
  EXPECT_EQ(choose_parallel(group_plan_prompt(5), "tiles", 3, 1.0).mode, "whole") << "no TiledDiffusion node";
}

TEST(GroupPlan, AutoTakesCfgSplitOnlyWhenTheCostModelPredictsAGain) {
  // 3 steps of one 64² image = 3 units. At 1 s/unit: whole 3 s, split 1.5 + 0.5 + 3 × (0.002 + 1 KiB / 125
  // MB/s).
  const ParallelChoice slow = choose_parallel(group_plan_prompt(5), "auto", 2, 1.0);
  EXPECT_EQ(slow.mode, "cfg");
  EXPECT_NEAR(slow.predicted_s, predict_group_seconds(3.0, 2, 3, 4.0 * 8 * 8 * 4), 1e-9);
  EXPECT_LT(slow.predicted_s, 3.0);
  // At 0.1 s/unit the set-up alone is more than the half saved.
  EXPECT_EQ(choose_parallel(group_plan_prompt(5), "auto", 2, 0.1).mode, "whole");
  EXPECT_EQ(choose_parallel(group_plan_prompt(5), "auto", 2, std::nullopt).mode, "whole") << "speed unknown";
}

TEST(GroupPlan, MultiGpuWorkUnitsAsksForCfgSplitCappedByMaxGpus) {
  OJson p = group_plan_prompt(5);
  p["20"] = {{"class_type", "MultiGPU_WorkUnits"},
             {"inputs", {{"model", OJson::array({"4", 0})}, {"max_gpus", 2}}}};
  p["3"]["inputs"]["model"] = OJson::array({"20", 0});
  EXPECT_EQ(choose_parallel(p, "auto", 3, 0.001).mode, "cfg") << "taken whatever the cost model says";
  p["20"]["inputs"]["max_gpus"] = 1;
  EXPECT_EQ(choose_parallel(p, "auto", 3, 0.001).mode, "whole");
}

TEST(GroupPlan, TiledDiffusionRunsTileParallel) {
  OJson p = group_plan_prompt(1);
  p["21"] = {{"class_type", "TiledDiffusion"}, {"inputs", {{"model", OJson::array({"4", 0})}}}};
  const ParallelChoice c = choose_parallel(p, "tiles", 3, 1.0);
  EXPECT_EQ(c.mode, "tiles");
  EXPECT_EQ(c.size, 2) << "max_gpus defaults to 2";
}

OJson group_plan_tiled(double cfg) {
  OJson p = group_plan_prompt(cfg);
  p["21"] = {{"class_type", "TiledDiffusion"}, {"inputs", {{"model", OJson::array({"4", 0})}}}};
  p["3"]["inputs"]["model"] = OJson::array({"21", 0});
  return p;
}

OJson group_plan_batch(int batch, double cfg) {
  OJson p = test::prompt<OJson>(batch, 3);
  p["3"]["inputs"]["cfg"] = cfg;
  return p;
}

TEST(GroupPlan, CfgTimesTilesNeedsFourIdleWorkersAndFallsBackToWhatApplies) {
  const ParallelChoice four = choose_parallel(group_plan_tiled(5), "cfg+tiles", 4, 1.0);
  EXPECT_EQ(four.mode, "cfg+tiles");
  EXPECT_EQ(four.size, 4);
  EXPECT_EQ(choose_parallel(group_plan_tiled(5), "cfg+tiles", 3, 1.0).mode, "tiles") << "3 idle: tiles only";
  EXPECT_EQ(choose_parallel(group_plan_tiled(1), "cfg+tiles", 4, 1.0).mode, "tiles") << "cfg 1: no CFG pairs";
  EXPECT_EQ(choose_parallel(group_plan_prompt(5), "cfg+tiles", 4, 1.0).mode, "cfg") << "no TiledDiffusion";
  EXPECT_TRUE(requested_parallel(OJson{{"netdist", {{"parallel", "cfg+tiles"}}}}, "off").is_ok());
  EXPECT_TRUE(requested_parallel(OJson{{"netdist", {{"parallel", "rows"}}}}, "off").is_ok());
}

TEST(GroupPlan, RowsTimesCfgTakesOnePairPerRowUpToTheIdleWorkers) {
  const ParallelChoice two = choose_parallel(group_plan_batch(2, 5), "rows", 4, 1.0);
  EXPECT_EQ(two.mode, "rows+cfg");
  EXPECT_EQ(two.size, 4);
  EXPECT_EQ(plan_mode_name(two.mode), "rows");
  EXPECT_EQ(choose_parallel(group_plan_batch(3, 5), "rows", 7, 1.0).size, 6) << "3 rows, 3 pairs";
  EXPECT_EQ(choose_parallel(group_plan_batch(2, 5), "rows", 3, 1.0).mode, "whole") << "one pair only";
  EXPECT_EQ(choose_parallel(group_plan_batch(2, 1), "rows", 4, 1.0).mode, "whole") << "cfg 1: nothing to pair";
  EXPECT_TRUE(plans_rows_group(group_plan_batch(2, 5), "rows", 4, std::nullopt, std::nullopt));
  EXPECT_FALSE(plans_rows_group(group_plan_batch(2, 5), "off", 4, 1.0, std::nullopt));
  EXPECT_FALSE(plans_rows_group(group_plan_batch(2, 5), "cfg", 4, 1.0, std::nullopt));
  // auto: against the 2 row shards the batch would be cut into (3 s each at 1 s/unit): 6 × 1/4 + 0.5 + ...
  EXPECT_TRUE(plans_rows_group(group_plan_batch(2, 5), "auto", 4, 1.0, std::nullopt));
  EXPECT_FALSE(plans_rows_group(group_plan_batch(2, 5), "auto", 4, 0.01, std::nullopt)) << "set-up dominates";
}

// The cost model's choice among the modes, with and without a measured per-link cost.
TEST(GroupPlan, AutoPicksTheCheapestModeByTheMeasuredLinkCost) {
  // A TiledDiffusion prompt at cfg 5, 3 steps of one 64² image at 1 s/unit (whole: 3 s).
  const OJson p = group_plan_tiled(5);
  EXPECT_EQ(choose_parallel(p, "auto", 4, 1.0).mode, "cfg+tiles") << "fast links: the most members win";
  EXPECT_EQ(choose_parallel(p, "auto", 2, 1.0).mode, "tiles");
  // Measured links of 0.3 s per collective: cfg+tiles pays 2 per step (0.75 + 0.5 + 1.8 s), tiles 1 (1.5 +
  // 0.5 + 0.9 s), whole 3 s.
  const ParallelChoice slow_links = choose_parallel(p, "auto", 4, 1.0, 0.3);
  EXPECT_EQ(slow_links.mode, "tiles");
  EXPECT_NEAR(slow_links.predicted_s, 3.0 / 2 + kGroupSetupSeconds + 3 * 0.3, 1e-9);
  EXPECT_EQ(choose_parallel(p, "auto", 4, 1.0, 0.1).mode, "cfg+tiles") << "0.1 s: 1.85 s against 2.3 s";
  // 0.5 s per collective: every group loses to one worker.
  EXPECT_EQ(choose_parallel(p, "auto", 4, 1.0, 0.5).mode, "whole");
  // Unmeasured links: the assumed latency and bandwidth, per collective.
  const GroupModeCost combo = group_mode_cost("cfg+tiles", 4, 1024, true);
  EXPECT_EQ(combo.collectives_per_step, 2);
  EXPECT_NEAR(predict_group_seconds(4.0, 10, combo, std::nullopt),
              1.0 + kGroupSetupSeconds + 10 * 2 * (kGroupStepLatencySeconds + 768 / kGroupBytesPerSecond), 1e-12);
  EXPECT_NEAR(predict_group_seconds(4.0, 10, combo, 0.01), 1.0 + kGroupSetupSeconds + 10 * 2 * 0.01, 1e-12);
  EXPECT_NEAR(group_mode_cost("rows+cfg", 6, 3000, true).bytes_per_step, 1000, 1e-9) << "3 pairs";
  EXPECT_NEAR(group_mode_cost("tiles", 2, 1000, true).bytes_per_step, 1000, 1e-9) << "both passes, half the tiles";
}

TEST(GroupPlan, ExchangeCostIsAMovingAverageOfSecondsPerCollective) {
  ExchangeCost x;
  EXPECT_FALSE(x.seconds_per_exchange());
  x.observe(0, 5);
  x.observe(1.0, 0);
  EXPECT_FALSE(x.seconds_per_exchange()) << "nothing measured";
  x.observe(1.0, 10);
  EXPECT_DOUBLE_EQ(*x.seconds_per_exchange(), 0.1);
  x.observe(2.0, 10);
  EXPECT_DOUBLE_EQ(*x.seconds_per_exchange(), 0.7 * 0.1 + 0.3 * 0.2);
}

TEST(GroupPlan, ThePlanRecordNamesTheCfgPairsAndTheirCrossGroups) {
  protocol::GroupSpec s{"g", 0, 4, "cfg+tiles", "", 1000, {"a", "b", "c", "d"}, {4, 3, 2, 1}};
  const Plan plan = group_plan_record(s, 2.5);
  EXPECT_EQ(plan.mode, "cfg+tiles");
  EXPECT_EQ(plan.detail["cfg_pairs"], OJson::parse(R"([["a","b"],["c","d"]])"));
  EXPECT_EQ(plan.detail["tile_groups"], OJson::parse(R"([["a","c"],["b","d"]])"));
  EXPECT_EQ(plan.detail["speeds"].size(), 4u);
  s.mode = "rows+cfg";
  const Plan rows = group_plan_record(s, 1);
  EXPECT_EQ(rows.mode, "rows");
  EXPECT_TRUE(rows.detail.contains("row_groups"));
  EXPECT_FALSE(rows.detail.contains("speeds")) << "rows are shared evenly";
}

TEST(GroupKvStore, KeysLiveWhileTheGroupIsOpenAndAWaiterWakes) {
  GroupKv kv;
  protocol::GroupKvRequest get{"g1", "get", "k", "", {}, 0, 1000};
  EXPECT_EQ(kv.apply(get).status().code(), StatusCode::kNotFound) << "not open";
  kv.open("g1");
  std::thread setter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(kv.apply(protocol::GroupKvRequest{"g1", "set", "k", "v\\x01", {}, 0, 0}).is_ok());
  });
  auto got = kv.apply(get);
  setter.join();
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  EXPECT_TRUE(got->contains("value"));
  EXPECT_EQ(kv.apply(protocol::GroupKvRequest{"g1", "add", "n", "", {}, 3, 0}).value()["count"], 3);
  EXPECT_EQ(kv.apply(protocol::GroupKvRequest{"g1", "add", "n", "", {}, 2, 0}).value()["count"], 5);
  auto wait = kv.apply(protocol::GroupKvRequest{"g1", "wait", "", "", {"k", "missing"}, 0, 30});
  EXPECT_EQ((*wait)["ready"], false);
  kv.close("g1");
  EXPECT_EQ(kv.apply(get).status().code(), StatusCode::kNotFound) << "closed: its keys are gone";
}

TEST(GroupWire, SpecRoundTripsAndBadFieldsAreNamed) {
  protocol::GroupSpec s{"g-7", 1, 2, "cfg", "http://127.0.0.1:1", 5000, {"http://a", "http://b"}, {}};
  auto back = protocol::group_spec_from_json(protocol::to_json(s));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->rank, 1);
  EXPECT_EQ(back->names.size(), 2u);
  auto j = protocol::to_json(s);
  j["rank"] = 2;
  EXPECT_NE(protocol::group_spec_from_json(j).status().message().find("\"rank\""), std::string::npos);
  j = protocol::to_json(s);
  j["mode"] = "rows";
  EXPECT_NE(protocol::group_spec_from_json(j).status().message().find("\"mode\""), std::string::npos);
  j = protocol::to_json(s);
  j["mode"] = "cfg+tiles";
  j["size"] = 3;
  EXPECT_NE(protocol::group_spec_from_json(j).status().message().find("even"), std::string::npos);
  j = protocol::to_json(s);
  j["speeds"] = {1.0};
  EXPECT_NE(protocol::group_spec_from_json(j).status().message().find("\"speeds\""), std::string::npos);
  j["speeds"] = {1.0, -2.0};
  EXPECT_NE(protocol::group_spec_from_json(j).status().message().find("\"speeds\""), std::string::npos);
  s.mode = "rows+cfg";
  s.speeds = {2.0, 1.0};
  auto combo = protocol::group_spec_from_json(protocol::to_json(s));
  ASSERT_TRUE(combo.is_ok()) << combo.status().to_string();
  EXPECT_EQ(combo->speeds, (std::vector<double>{2.0, 1.0}));
  auto kv = protocol::group_kv_request_from_json(protocol::Json{{"group_id", "g"}, {"op", "drop"}});
  EXPECT_NE(kv.status().message().find("\"drop\""), std::string::npos);
  protocol::GroupKvRequest set{"g", "set", "k", std::string("\0\xff", 2), {}, 0, 0};
  auto set_back = protocol::group_kv_request_from_json(protocol::to_json(set));
  ASSERT_TRUE(set_back.is_ok());
  EXPECT_EQ(set_back->value, set.value) << "bytes travel as base64";
}

}  // namespace
}  // namespace netdist::cluster
