#include "cluster/plan.h"

#include <gtest/gtest.h>

namespace netdist::cluster {
namespace {

TEST(Plan, JsonShapeIsTheHistoryEntrys) {
  const auto j = plan_to_json(Plan{"cfg", {"http://a", "http://b"}, 2.5});
  EXPECT_EQ(j.dump(), R"({"mode":"cfg","workers":["http://a","http://b"],"predicted_s":2.5})");
}

TEST(Plan, LogMergesThePlansOfOnePromptAndForgetsThemWhenTaken) {
  PlanLog log;
  EXPECT_FALSE(log.take("p1").has_value());
  log.record("p1", Plan{"rows", {"http://a"}, 1.0});
  log.record("p1", Plan{"rows", {"http://b", "http://a"}, 2.0});
  log.record("p1", Plan{"cfg", {"http://c"}, 0.5});
  log.record("p1", Plan{"rows", {}, 0.0});
  log.record("p2", Plan{"whole", {"http://a"}, 3.0});
  const std::optional<Plan> p1 = log.take("p1");
  ASSERT_TRUE(p1.has_value());
  EXPECT_EQ(p1->mode, "rows+cfg");
  EXPECT_EQ(p1->workers, (std::vector<std::string>{"http://a", "http://b", "http://c"}));
  EXPECT_DOUBLE_EQ(p1->predicted_s, 3.5);
  EXPECT_FALSE(log.take("p1").has_value());
  EXPECT_EQ(log.take("p2")->mode, "whole");
}

}  // namespace
}  // namespace netdist::cluster
