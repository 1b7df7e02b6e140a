#include "cluster/cost_model.h"

#include <gtest/gtest.h>

namespace netdist::cluster {
namespace {

using Json = nlohmann::ordered_json;

TEST(CostModel, SeedsFromTheBenchmarkThenFitsMeasuredShards) {
  CostModel m;
  EXPECT_FALSE(m.seconds_per_unit());
  EXPECT_FALSE(m.seed_from_capabilities(nullptr));
  EXPECT_FALSE(m.seed_from_capabilities(Json{{"benchmark", nullptr}}));
  EXPECT_FALSE(m.seed_from_capabilities(Json{{"benchmark", {{"steps_per_second", 0}, {"width", 64}, {"height", 64}}}}));
  EXPECT_FALSE(m.seconds_per_unit());
  // 20 steps/s at 128×128 = 4 units per step: 80 units/s.
  ASSERT_TRUE(m.seed_from_capabilities(
      Json{{"benchmark", {{"steps_per_second", 20.0}, {"width", 128}, {"height", 128}, {"steps", 4}}}}));
  EXPECT_DOUBLE_EQ(*m.seconds_per_unit(), 1.0 / 80);
  EXPECT_EQ(m.samples(), 0);
  m.observe(10, 2.0);  // the first measurement replaces the seed
  EXPECT_DOUBLE_EQ(*m.seconds_per_unit(), 0.2);
  m.observe(10, 4.0);  // EWMA: 0.7 × 0.2 + 0.3 × 0.4
  EXPECT_DOUBLE_EQ(*m.seconds_per_unit(), 0.7 * 0.2 + 0.3 * 0.4);
  m.observe(0, 1.0);
  m.observe(5, -1.0);
  EXPECT_EQ(m.samples(), 2);
  // A later benchmark does not override measurements.
  EXPECT_TRUE(m.seed_from_capabilities(Json{{"benchmark", {{"steps_per_second", 1000.0}, {"width", 64}, {"height", 64}}}}));
  EXPECT_DOUBLE_EQ(*m.seconds_per_unit(), 0.7 * 0.2 + 0.3 * 0.4);
}

TEST(CostModel, TheTestThrottleSlowsTheSeed) {
  CostModel m;
  // 10 steps/s at 64×64 plus 100 ms per step: 0.2 s per unit.
  ASSERT_TRUE(m.seed_from_capabilities(
      Json{{"benchmark", {{"steps_per_second", 10.0}, {"width", 64}, {"height", 64}}}, {"test_step_delay_ms", 100}}));
  EXPECT_DOUBLE_EQ(*m.seconds_per_unit(), 0.2);
}

TEST(CostModel, ASlowWorkerLeavesTheLastShardToAFastWorkerAboutToBeFree) {
  const double now = 100;
  // Worker 0 fast (1 s/unit), busy for 1 more second; worker 1 at half speed, idle. Shard: 4 units.
  std::vector<WorkerForecast> w = {{now + 1, 1.0}, {now, 2.0}};
  EXPECT_FALSE(shard_to_take(w, 1, {4}, now));  // fast: 1 + 4 = 5 s; slow: 8 s
  w[0].free_at = now + 10;
  EXPECT_TRUE(shard_to_take(w, 1, {4}, now));  // fast: 14 s; slow: 8 s
}

TEST(CostModel, AnIdleFastWorkerAlwaysTakesAndTiesGoToTheDecider) {
  const double now = 0;
  std::vector<WorkerForecast> w = {{now, 1.0}, {now, 2.0}};
  EXPECT_TRUE(shard_to_take(w, 0, {4}, now));
  EXPECT_FALSE(shard_to_take(w, 1, {4}, now));
  std::vector<WorkerForecast> equal = {{now, 1.0}, {now, 1.0}};
  EXPECT_TRUE(shard_to_take(equal, 0, {4}, now));
  EXPECT_TRUE(shard_to_take(equal, 1, {4}, now));
  // A past free_at counts as now.
  std::vector<WorkerForecast> stale = {{now - 50, 1.0}, {now, 1.5}};
  EXPECT_FALSE(shard_to_take(stale, 1, {4}, now));
}

TEST(CostModel, TheSlowWorkerTakesWhenThereIsEnoughWorkForBoth) {
  const double now = 0;
  std::vector<WorkerForecast> w = {{now, 1.0}, {now, 2.0}};
  // Three 4-unit shards: fast gets the first (4 s) and second (8 s); the third finishes at 12 s on the fast
  // worker and at 8 s on the slow one, so the slow one should start now.
  EXPECT_EQ(shard_to_take(w, 1, {4, 4, 4}, now), std::optional<size_t>(1));
  EXPECT_EQ(shard_to_take(w, 1, {4, 4}, now), std::optional<size_t>(1));  // 8 s either way: ties go to the decider
  // A 10× slower worker never helps with two shards.
  std::vector<WorkerForecast> slow = {{now, 1.0}, {now, 10.0}};
  EXPECT_FALSE(shard_to_take(slow, 1, {4, 4}, now));
}

TEST(CostModel, EachWorkerTakesTheShardMeantForIt) {
  const double now = 0;
  std::vector<WorkerForecast> w = {{now, 1.0}, {now, 2.0}};
  // A 7-unit and a 3-unit shard (a batch cut by speed): fast ends the big one at 7 s (slow: 14 s); the small
  // one ends at 6 s on the slow worker, 10 s after the big one on the fast worker.
  EXPECT_EQ(shard_to_take(w, 0, {7, 3}, now), std::optional<size_t>(0));
  EXPECT_EQ(shard_to_take(w, 1, {7, 3}, now), std::optional<size_t>(1));
}

TEST(CostModel, UnknownSpeedsCountAsTheFastestKnown) {
  const double now = 0;
  std::vector<WorkerForecast> w = {{now, 1.0}, {now, std::nullopt}};
  EXPECT_TRUE(shard_to_take(w, 1, {4}, now));  // tie with the fastest: the decider tries it
  std::vector<WorkerForecast> none = {{now, std::nullopt}, {now, std::nullopt}};
  EXPECT_TRUE(shard_to_take(none, 0, {1}, now));
  EXPECT_TRUE(shard_to_take(none, 1, {1}, now));
}

// Every idle worker deciding on the same state: exactly the expected one takes, so work never stalls.
TEST(CostModel, SomeIdleWorkerAlwaysTakesWhenNoBusyOneIsSooner) {
  const double now = 0;
  const std::vector<std::vector<double>> speeds = {{1, 2, 3}, {3, 2, 1}, {2, 2, 5}, {0.5, 0.5, 0.5}};
  for (const auto& s : speeds) {
    std::vector<WorkerForecast> w;
    for (double x : s) w.push_back({now, x});
    int takers = 0;
    for (size_t i = 0; i < w.size(); ++i) takers += shard_to_take(w, i, {3}, now).has_value();
    EXPECT_GE(takers, 1) << s[0] << "," << s[1] << "," << s[2];
  }
}

}  // namespace
}  // namespace netdist::cluster
