#include "engine/text/tokenize_prompt.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "engine/text/test_data.h"

namespace netdist::text {
namespace {

constexpr int kBos = 49406;
constexpr int kEos = 49407;
constexpr int kA = 320;    // "a</w>"
constexpr int kCat = 2368;  // "cat</w>"
constexpr int kB = 321;    // "b</w>"

const ClipTokenizer& clip_l_tokenizer() {
  static const ClipTokenizer tokenizer = [] {
    auto loaded = ClipTokenizer::load(testing::clip_vocab_dir());
    if (!loaded.is_ok()) {
      ADD_FAILURE() << loaded.status().to_string();
      std::abort();
    }
    return std::move(loaded).value();
  }();
  return tokenizer;
}

std::vector<TokenWindow> tokenize(std::string_view prompt, const TokenizeOptions& options = {},
                                  TokenizeReport* report = nullptr) {
  auto windows = tokenize_with_weights(clip_l_tokenizer(), prompt, options, report);
  EXPECT_TRUE(windows.is_ok()) << windows.status().to_string();
  return windows.is_ok() ? std::move(windows).value() : std::vector<TokenWindow>{};
}

std::vector<int> padded(std::vector<int> ids, int pad, size_t length = 77) {
  ids.resize(length, pad);
  return ids;
}

std::string repeat(const std::string& word, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += word + " ";
  return out;
}

TEST(TokenizePrompt, OneWindowWithEndPadding) {
  auto windows = tokenize("a photo of a cat");
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0].ids, padded({kBos, kA, 1125, 539, kA, kCat, kEos}, kEos));
  EXPECT_EQ(windows[0].weights, std::vector<float>(77, 1.0f));
}

TEST(TokenizePrompt, EmptyPromptGivesOneWindow) {
  auto windows = tokenize("");
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0].ids, padded({kBos, kEos}, kEos));
  auto open_clip = tokenize("", TokenizeOptions::open_clip());
  ASSERT_EQ(open_clip.size(), 1u);
  EXPECT_EQ(open_clip[0].ids, padded({kBos, kEos}, 0));
}

TEST(TokenizePrompt, WeightsPerTokenAndOneForSpecials) {
  auto windows = tokenize("a (cat:1.5)");
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0].ids, padded({kBos, kA, kCat, kEos}, kEos));
  std::vector<float> weights(77, 1.0f);
  weights[2] = 1.5f;
  EXPECT_EQ(windows[0].weights, weights);
  auto nested = tokenize("((cat))");
  EXPECT_EQ(nested[0].weights[1], static_cast<float>(1.0 * 1.1 * 1.1));
}

TEST(TokenizePrompt, LargeGroupSplitsAcrossWindows) {
  auto windows = tokenize(repeat("a", 100));
  ASSERT_EQ(windows.size(), 2u);
  std::vector<int> first(75, kA);
  first.insert(first.begin(), kBos);
  first.push_back(kEos);
  EXPECT_EQ(windows[0].ids, first);
  std::vector<int> second(25, kA);
  second.insert(second.begin(), kBos);
  second.push_back(kEos);
  EXPECT_EQ(windows[1].ids, padded(second, kEos));
}

TEST(TokenizePrompt, SmallGroupMovesWholeToNextWindow) {
  auto windows = tokenize(repeat("a", 70) + "(b b b b b b b:1.2)");
  ASSERT_EQ(windows.size(), 2u);
  std::vector<int> first(70, kA);
  first.insert(first.begin(), kBos);
  first.push_back(kEos);
  EXPECT_EQ(windows[0].ids, padded(first, kEos));
  EXPECT_EQ(windows[0].weights, std::vector<float>(77, 1.0f));
  std::vector<int> second(7, kB);
  second.insert(second.begin(), kBos);
  second.push_back(kEos);
  EXPECT_EQ(windows[1].ids, padded(second, kEos));
  EXPECT_EQ(windows[1].weights[1], 1.2f);
  EXPECT_EQ(windows[1].weights[7], 1.2f);
  EXPECT_EQ(windows[1].weights[8], 1.0f);

  auto eight = tokenize(repeat("a", 70) + "(b b b b b b b b:1.2)");
  ASSERT_EQ(eight.size(), 2u);
  EXPECT_EQ(eight[0].ids[71], kB);
  EXPECT_EQ(eight[0].ids[75], kB);
  EXPECT_EQ(eight[0].ids[76], kEos);
  EXPECT_EQ(eight[1].ids[1], kB);
  EXPECT_EQ(eight[1].ids[4], kEos);
}

TEST(TokenizePrompt, NoPaddingAndMinLength) {
  TokenizeOptions options;
  options.pad_to_max_length = false;
  auto windows = tokenize("a cat", options);
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0].ids, (std::vector<int>{kBos, kA, kCat, kEos}));
  options.min_length = 10;
  windows = tokenize("a cat", options);
  EXPECT_EQ(windows[0].ids, padded({kBos, kA, kCat, kEos}, kEos, 10));
  EXPECT_EQ(windows[0].weights.size(), 10u);
}

TEST(TokenizePrompt, RejectsBadOptions) {
  TokenizeOptions options;
  options.max_length = 5;
  auto result = tokenize_with_weights(clip_l_tokenizer(), "a", options);
  ASSERT_FALSE(result.is_ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("max_length"), std::string::npos);
}

TEST(TokenizePrompt, EmbeddingIsTextWithoutEmbeddingDirectory) {
  auto windows = tokenize("embedding:foo");
  EXPECT_EQ(windows[0].ids, padded({kBos, 19703, 796, 281, 23435, kEos}, kEos));
}

TEST(TokenizePrompt, MissingEmbeddingIsDroppedAndReported) {
  TokenizeOptions options;
  options.embedding_lookup = [](const std::string&) -> Result<std::optional<EmbeddingVectors>> {
    return std::optional<EmbeddingVectors>();
  };
  TokenizeReport report;
  auto windows = tokenize("a embedding:foo, cat", options, &report);
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0].ids, padded({kBos, kA, 267, kCat, kEos}, kEos));
  EXPECT_EQ(report.missing_embeddings, (std::vector<std::string>{"foo,"}));

  windows = tokenize("embedding:bar", options, &report);
  EXPECT_EQ(windows[0].ids, padded({kBos, kEos}, kEos));
}

TEST(TokenizePrompt, EmbeddingVectorsTakeTheirPlaces) {
  TokenizeOptions options;
  options.embedding_lookup = [](const std::string& name) -> Result<std::optional<EmbeddingVectors>> {
    if (name != "foo") return std::optional<EmbeddingVectors>();
    return std::optional<EmbeddingVectors>(EmbeddingVectors{2, 3, {1, 2, 3, 4, 5, 6}});
  };
  // "foo," is not found; "foo" is, and the comma leads the leftover text.
  auto windows = tokenize("a (embedding:foo, cat:1.5)", options);
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0].ids, padded({kBos, kA, 0, 0, 267, kCat, kEos}, kEos));
  EXPECT_EQ(windows[0].weights[2], 1.5f);
  EXPECT_EQ(windows[0].weights[5], 1.5f);
  ASSERT_EQ(windows[0].embeddings.size(), 2u);
  EXPECT_EQ(windows[0].embeddings.at(2), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(windows[0].embeddings.at(3), (std::vector<float>{4, 5, 6}));
}

TEST(TokenizePrompt, EmbeddingLookupErrorsFailTheTokenization) {
  TokenizeOptions options;
  options.embedding_lookup = [](const std::string& name) -> Result<std::optional<EmbeddingVectors>> {
    return Status::unsupported("embedding:" + name + " is a pickle");
  };
  auto result = tokenize_with_weights(clip_l_tokenizer(), "a embedding:foo, cat", options);
  ASSERT_FALSE(result.is_ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(result.status().message().find("embedding:foo"), std::string::npos);
}

TEST(TokenizePrompt, EmbeddingNamesInAPrompt) {
  EXPECT_EQ(embedding_names_in("a (embedding:foo,:1.2) embedding:sub/bar.safetensors x\nembedding:baz"),
            (std::vector<std::string>{"foo,", "foo", "sub/bar.safetensors", "baz"}));
  EXPECT_EQ(embedding_names_in("a\nembedding:baz b"), (std::vector<std::string>{"baz"}));
}

}  // namespace
}  // namespace netdist::text
