// The T5 tokenizer against golden ids from Hugging Face `tokenizers` (tests/data/tokenizer/golden_t5.json,
// made by tools/parity/t5_tokenizer_golden.js), hand-checked segmentations, ComfyUI's T5XXLTokenizer padding
// and weights, and malformed tokenizer.json files.
#include "engine/text/t5_tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/text/test_data.h"
#include "engine/text/tokenize_prompt.h"
#include "engine/text/unigram_model.h"
#include "netdist/source_dir.h"

namespace netdist::text {
namespace {

std::string shipped_tokenizer() {
  return (std::filesystem::path(NETDIST_SOURCE_DIR) / "models" / "t5_tokenizer" / "tokenizer.json").string();
}

const T5Tokenizer& shipped(T5Tokenizer::Pipeline pipeline = T5Tokenizer::Pipeline::kTransformers) {
  static const T5Tokenizer transformers = T5Tokenizer::load(shipped_tokenizer()).value();
  static const T5Tokenizer file =
      T5Tokenizer::load(shipped_tokenizer(), T5Tokenizer::Pipeline::kTokenizerJson).value();
  return pipeline == T5Tokenizer::Pipeline::kTransformers ? transformers : file;
}

std::vector<int> with_end(std::vector<int> ids) {
  ids.push_back(1);
  return ids;
}

TEST(T5Tokenizer, LoadsTheShippedVocabulary) {
  const T5Tokenizer& tokenizer = shipped();
  EXPECT_EQ(tokenizer.vocab_size(), 32100u);
  EXPECT_EQ(tokenizer.end_id(), 1);
  EXPECT_EQ(tokenizer.unk_id(), 2);
  EXPECT_EQ(tokenizer.token_text(1712),
            "\xE2\x96\x81"
            "cat");
  EXPECT_EQ(tokenizer.token_text(32099), "<extra_id_0>");
  EXPECT_EQ(tokenizer.token_text(-1), "");
  EXPECT_EQ(tokenizer.token_text(32100), "");
}

TEST(T5Tokenizer, HandCheckedSegmentations) {
  const T5Tokenizer& t = shipped();
  // "▁a" scores below "▁" + "a" in T5's vocabulary, so a lone "a" is two pieces.
  EXPECT_EQ(t.encode("a photo of a cat"), (std::vector<int>{3, 9, 1202, 13, 3, 9, 1712}));
  EXPECT_EQ(t.encode("hello world"), (std::vector<int>{21820, 296}));
  EXPECT_EQ(t.encode("red"), (std::vector<int>{1131}));
  EXPECT_EQ(t.encode("Straße"), (std::vector<int>{5438, 5202, 15}));  // ▁Stra ß e
  EXPECT_EQ(t.encode("  multiple   spaces  "), t.encode("multiple spaces"));
  EXPECT_EQ(t.encode("tab\tand\nnewline"), t.encode("tab and newline"));
}

TEST(T5Tokenizer, UnicodeGoesThroughTheCharsmap) {
  const T5Tokenizer& t = shipped();
  EXPECT_EQ(t.encode("ｆｕｌｌ…"), (std::vector<int>{423, 233}));  // NFKC: "▁full" "..."
  EXPECT_EQ(t.encode("e\u0301"), t.encode("\u00e9"));              // composed as NFKC does
  EXPECT_EQ(t.encode("x\uff21\u0301y"),
            (std::vector<int>{3, 226, 188, 63}));           // `tokenizers` drops the accent
  EXPECT_EQ(t.encode("日本語"), (std::vector<int>{3, 2}));  // unknown characters fuse into one unk
  EXPECT_EQ(t.pre_tokenize("ｆｕｌｌ  text"), (std::vector<std::string>{"\xE2\x96\x81"
                                                                        "full",
                                                                        "\xE2\x96\x81"
                                                                        "text"}));
}

TEST(T5Tokenizer, AddedTokensAndTheTwoPipelines) {
  EXPECT_EQ(shipped().encode("<extra_id_0> </s>x"), (std::vector<int>{32099, 1, 3, 226}));
  EXPECT_EQ(shipped(T5Tokenizer::Pipeline::kTokenizerJson).encode("<extra_id_0> </s>x"),
            (std::vector<int>{32099, 1, 226}));
  EXPECT_EQ(shipped().encode("<pad><unk>"), (std::vector<int>{0, 2}));
  EXPECT_NE(shipped().encode("<extra_id_1")[0], 32098);  // no closing '>': plain text
  EXPECT_TRUE(shipped().encode("").empty());
  EXPECT_TRUE(shipped().encode(" \t\n").empty());
}

TEST(T5Tokenizer, MatchesHuggingFaceTokenizersOnGoldenPrompts) {
  const std::string path = testing::test_data_dir() + "/tokenizer/golden_t5.json";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path << " is missing (committed; tools/parity/t5_tokenizer_golden.js makes it)";
  const nlohmann::json golden = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(golden.is_discarded()) << path;
  const nlohmann::json& prompts = golden.at("prompts");
  ASSERT_GE(prompts.size(), 600u);
  for (auto [key, pipeline] : {std::pair{"transformers", T5Tokenizer::Pipeline::kTransformers},
                               std::pair{"tokenizer_json", T5Tokenizer::Pipeline::kTokenizerJson}}) {
    const nlohmann::json& ids = golden.at(key);
    ASSERT_EQ(ids.size(), prompts.size());
    size_t mismatches = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      const std::vector<int> got = with_end(shipped(pipeline).encode(prompts[i].get<std::string>()));
      if (got != ids[i].get<std::vector<int>>()) {
        ++mismatches;
        ADD_FAILURE() << key << " prompt " << i << " " << nlohmann::json(prompts[i]).dump() << ": got "
                      << nlohmann::json(got).dump() << ", tokenizers gave " << ids[i].dump();
      }
      if (mismatches > 10) break;
    }
  }
}

TEST(T5Tokenizer, ComfyUIPaddingForSD3AndFlux) {
  auto sd3 = tokenize_with_weights(shipped(), "", TokenizeOptions::t5xxl_sd3());
  ASSERT_TRUE(sd3.is_ok()) << sd3.status().to_string();
  ASSERT_EQ(sd3->size(), 1u);
  std::vector<int> expected(77, 0);
  expected[0] = 1;  // empty prompt: "</s>" then pad 0
  EXPECT_EQ((*sd3)[0].ids, expected);
  EXPECT_EQ((*sd3)[0].weights, std::vector<float>(77, 1.0f));

  auto flux = tokenize_with_weights(shipped(), "a cat", TokenizeOptions::t5xxl_flux());
  ASSERT_TRUE(flux.is_ok());
  ASSERT_EQ((*flux)[0].ids.size(), 256u);
  EXPECT_EQ(std::vector<int>((*flux)[0].ids.begin(), (*flux)[0].ids.begin() + 5),
            (std::vector<int>{3, 9, 1712, 1, 0}));
}

TEST(T5Tokenizer, PromptWeightsFollowEachSegment) {
  auto windows = tokenize_with_weights(shipped(), "(red:1.5) cat, (dog)", TokenizeOptions::t5xxl_sd3());
  ASSERT_TRUE(windows.is_ok());
  const TokenWindow& w = (*windows)[0];
  // segments: "red" 1.5 | " cat, " 1.0 | "dog" 1.1, each tokenized alone (so each starts with "▁").
  std::vector<int> ids = {1131};
  for (int id : shipped().encode(" cat, ")) ids.push_back(id);
  for (int id : shipped().encode("dog")) ids.push_back(id);
  ids.push_back(1);
  ASSERT_GE(w.ids.size(), ids.size());
  EXPECT_EQ(std::vector<int>(w.ids.begin(), w.ids.begin() + static_cast<std::ptrdiff_t>(ids.size())), ids);
  EXPECT_EQ(w.weights[0], 1.5f);
  EXPECT_EQ(w.weights[1], 1.0f);
  EXPECT_FLOAT_EQ(w.weights[ids.size() - 2], 1.1f);
  EXPECT_EQ(w.weights[ids.size() - 1], 1.0f);  // the end token
}

TEST(T5Tokenizer, VeryLongPromptStaysOneWindow) {
  std::string prompt;
  for (int i = 0; i < 600; ++i) prompt += "a red cat on a blue mat, ";
  auto windows = tokenize_with_weights(shipped(), prompt, TokenizeOptions::t5xxl_sd3());
  ASSERT_TRUE(windows.is_ok());
  ASSERT_EQ(windows->size(), 1u);  // ComfyUI's max_length is 99999999: no window split, no truncation
  const std::vector<int>& ids = (*windows)[0].ids;
  EXPECT_GT(ids.size(), 5000u);
  EXPECT_EQ(ids.back(), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 0), 0);
}

TEST(UnigramModel, ViterbiScoresTiesAndUnknowns) {
  auto model = UnigramModel::create(
      {{"<unk>", 0.0}, {"a", -1.0}, {"b", -1.0}, {"ab", -2.0}, {"abc", -10.0}, {"c", -2.5}, {"bc", -1.0}}, 0,
      "test");
  ASSERT_TRUE(model.is_ok());
  auto encode = [&](std::string_view s) {
    std::vector<int> ids;
    model->encode(s, ids);
    return ids;
  };
  EXPECT_EQ(encode("ab"), (std::vector<int>{3}));      // a+b == ab: the path found first (ab) wins
  EXPECT_EQ(encode("abc"), (std::vector<int>{1, 6}));  // a + bc (-2) beats ab + c (-4.5) and abc (-10)
  EXPECT_EQ(encode("xyz"), (std::vector<int>{0}));     // unknown run -> one unk
  EXPECT_EQ(encode("axyb"), (std::vector<int>{1, 0, 2}));
  EXPECT_EQ(encode("\xC3\xA9"), (std::vector<int>{0}));  // a two-byte character is one unk
  EXPECT_TRUE(encode("").empty());
  EXPECT_FALSE(UnigramModel::create({}, 0, "v.json").is_ok());
  auto bad_unk = UnigramModel::create({{"a", -1.0}}, 3, "v.json");
  ASSERT_FALSE(bad_unk.is_ok());
  EXPECT_NE(bad_unk.status().to_string().find("v.json"), std::string::npos);
}

}  // namespace
}  // namespace netdist::text
