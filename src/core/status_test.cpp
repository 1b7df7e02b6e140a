#include "core/status.h"

#include <gtest/gtest.h>

namespace netdist {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return Status::invalid_argument("value " + std::to_string(v) + " is not positive");
  return v;
}

Result<int> doubled(int v) {
  ND_ASSIGN_OR_RETURN(int x, parse_positive(v));
  return 2 * x;
}

Status check_both(int a, int b) {
  ND_RETURN_IF_ERROR(parse_positive(a).status());
  ND_RETURN_IF_ERROR(parse_positive(b).status());
  return Status::ok();
}

TEST(Status, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.is_ok());
  EXPECT_EQ(s.to_string(), "ok");
}

TEST(Status, MessageAndCodeName) {
  Status s = Status::corruption("model.safetensors: truncated");
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_EQ(s.to_string(), "corruption: model.safetensors: truncated");
}

TEST(Status, WithContextPrefixesOnlyErrors) {
  EXPECT_TRUE(Status::ok().with_context("loading").is_ok());
  EXPECT_EQ(Status::not_found("x").with_context("loading model").message(), "loading model: x");
}

TEST(Result, ValueAndPropagation) {
  EXPECT_EQ(doubled(4).value(), 8);
  Result<int> bad = doubled(-1);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "value -1 is not positive");
  EXPECT_TRUE(check_both(1, 2).is_ok());
  EXPECT_EQ(check_both(1, 0).message(), "value 0 is not positive");
}

TEST(ResultDeathTest, ValueOfErrorAborts) {
  Result<int> bad = Status::internal("boom");
  EXPECT_DEATH((void)bad.value(), "boom");
}

TEST(StatusDeathTest, AssertNamesTheInvariant) {
  EXPECT_DEATH(ND_ASSERT(1 + 1 == 3, "arithmetic"), "1 \\+ 1 == 3.*arithmetic");
}

}  // namespace
}  // namespace netdist
