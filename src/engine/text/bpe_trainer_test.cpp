#include "engine/text/bpe_trainer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace netdist::text {
namespace {

TEST(BpeTrainer, ByteTableIsClipsMapping) {
  const auto& t = byte_to_unicode();
  ASSERT_EQ(t.size(), 256u);
  EXPECT_EQ(t['a'], "a");
  EXPECT_EQ(t[' '], "\xC4\xA0");  // U+0120 'Ġ'
  EXPECT_EQ(t[0], "\xC4\x80");    // U+0100 'Ā'
}

TEST(BpeTrainer, MergesMostFrequentPairsDeterministically) {
  std::map<std::string, int> words = {{"red", 5}, {"heart", 4}, {"reds", 1}, {"hear", 2}};
  BpeVocab v = train_bpe(words, 10);
  ASSERT_FALSE(v.merges.empty());
  // "r"+"e" occurs 6 times (red, reds) and "e"+"a" 6 (heart, hear): ties go to the smaller pair.
  EXPECT_EQ(v.merges[0], std::make_pair(std::string("e"), std::string("a")));
  EXPECT_EQ(v.tokens.size(), 512 + v.merges.size() + 2);
  EXPECT_EQ(v.tokens[512], "ea");
  EXPECT_EQ(v.tokens.back(), "<|endoftext|>");
  EXPECT_EQ(train_bpe(words, 10).merges, v.merges);
  // Every merge's parts exist before it, and its concatenation is the next token.
  for (size_t i = 0; i < v.merges.size(); ++i) EXPECT_EQ(v.tokens[512 + i], v.merges[i].first + v.merges[i].second);
}

TEST(BpeTrainer, StopsWhenPairsAreRare) {
  BpeVocab v = train_bpe({{"ab", 1}}, 100, 2);
  EXPECT_TRUE(v.merges.empty());
  nlohmann::json j = nlohmann::json::parse(vocab_json(v));
  EXPECT_EQ(j["<|startoftext|>"], 512);
  EXPECT_EQ(j["<|endoftext|>"], 513);
  EXPECT_EQ(merges_txt(v), "#version: 0.2\n");
}

}  // namespace
}  // namespace netdist::text
