#include "engine/text/prompt_weights.h"

#include <gtest/gtest.h>

#include <cmath>

namespace netdist::text {
namespace {

using Segments = std::vector<WeightedSegment>;

TEST(PromptWeights, PlainTextIsOneSegment) {
  EXPECT_EQ(parse_prompt_weights("a cat, 4k"), (Segments{{"a cat, 4k", 1.0}}));
  EXPECT_TRUE(parse_prompt_weights("").empty());
}

TEST(PromptWeights, ParenthesesMultiplyByOnePointOne) {
  EXPECT_EQ(parse_prompt_weights("a (cat) b"), (Segments{{"a ", 1.0}, {"cat", 1.0 * 1.1}, {" b", 1.0}}));
  auto nested = parse_prompt_weights("((a)) (((b)))");
  ASSERT_EQ(nested.size(), 3u);
  EXPECT_EQ(nested[0].weight, 1.0 * 1.1 * 1.1);
  EXPECT_EQ(nested[1], (WeightedSegment{" ", 1.0}));
  EXPECT_EQ(nested[2].weight, 1.0 * 1.1 * 1.1 * 1.1);
}

TEST(PromptWeights, ExplicitWeightReplacesAndInnerGroupsMultiply) {
  EXPECT_EQ(parse_prompt_weights("(cat:1.3)"), (Segments{{"cat", 1.3}}));
  EXPECT_EQ(parse_prompt_weights("((cat:1.5))"), (Segments{{"cat", 1.5}}));
  EXPECT_EQ(parse_prompt_weights("((cat):1.5)"), (Segments{{"cat", 1.5 * 1.1}}));
  EXPECT_EQ(parse_prompt_weights("(a (b:0.5) c)"),
            (Segments{{"a ", 1.1}, {"b", 0.5}, {" c", 1.1}}));
  EXPECT_EQ(parse_prompt_weights("(e:2:3)"), (Segments{{"e:2", 3.0}}));
  EXPECT_EQ(parse_prompt_weights("(a: 1.5 )"), (Segments{{"a", 1.5}}));
  EXPECT_EQ(parse_prompt_weights("(b:1_0)"), (Segments{{"b", 10.0}}));
}

TEST(PromptWeights, UnparsableWeightStaysText) {
  EXPECT_EQ(parse_prompt_weights("(x:abc)"), (Segments{{"x:abc", 1.1}}));
  EXPECT_EQ(parse_prompt_weights("(:1.3)"), (Segments{{":1.3", 1.1}}));
  EXPECT_TRUE(parse_prompt_weights("()").empty());
}

TEST(PromptWeights, EscapesAndBracketsAreLiteral) {
  EXPECT_EQ(parse_prompt_weights("\\(not weighted\\)"), (Segments{{"(not weighted)", 1.0}}));
  EXPECT_EQ(parse_prompt_weights("\\(a:1.5\\) (b)"), (Segments{{"(a:1.5) ", 1.0}, {"b", 1.1}}));
  EXPECT_EQ(parse_prompt_weights("[a] {b}"), (Segments{{"[a] {b}", 1.0}}));
}

TEST(PromptWeights, UnbalancedParenthesesFollowComfyUI) {
  EXPECT_EQ(parse_prompt_weights("a (b"), (Segments{{"a ", 1.0}, {"(b", 1.0}}));
  EXPECT_EQ(parse_prompt_weights("a) b (c)"), (Segments{{"a) b (c)", 1.0}}));
  EXPECT_EQ(parse_prompt_weights("(a (b) c"), (Segments{{"(a (b) c", 1.0}}));
}

TEST(PromptWeights, PythonFloat) {
  EXPECT_EQ(parse_python_float(" 1.5 "), 1.5);
  EXPECT_EQ(parse_python_float("+.5"), 0.5);
  EXPECT_EQ(parse_python_float("-2"), -2.0);
  EXPECT_EQ(parse_python_float("1."), 1.0);
  EXPECT_EQ(parse_python_float("1e0"), 1.0);
  EXPECT_EQ(parse_python_float("2.5E-1"), 0.25);
  EXPECT_EQ(parse_python_float("1_000.0_1"), 1000.01);
  EXPECT_EQ(parse_python_float("-Infinity"), -HUGE_VAL);
  EXPECT_EQ(parse_python_float("inf"), HUGE_VAL);
  EXPECT_TRUE(std::isnan(parse_python_float("NaN").value()));
  for (const char* bad : {"", " ", ".", "1__0", "_1", "1_", "1e", "0x10", "abc", "1.5x", "1 5", "--1"}) {
    EXPECT_FALSE(parse_python_float(bad).has_value()) << bad;
  }
}

TEST(PromptWeights, SplitEmbeddingWords) {
  using Words = std::vector<std::string>;
  EXPECT_EQ(split_embedding_words("a embedding:x b"), (Words{"a", "embedding:x b"}));
  EXPECT_EQ(split_embedding_words("embedding:x"), (Words{"embedding:x"}));
  EXPECT_EQ(split_embedding_words(" embedding:y"), (Words{"embedding:y"}));
  EXPECT_EQ(split_embedding_words("a\nembedding:z, c"), (Words{"a", "embedding:z, c"}));
  EXPECT_EQ(split_embedding_words("aembedding:x"), (Words{"aembedding:x"}));
  EXPECT_TRUE(split_embedding_words("").empty());
}

}  // namespace
}  // namespace netdist::text
