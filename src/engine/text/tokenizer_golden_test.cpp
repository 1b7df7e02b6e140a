// Compares tokenize_with_weights with ComfyUI's SDTokenizer (clip_l) and SDXLClipGTokenizer (clip_g) on the
// prompts of tests/data/tokenizer/prompts.txt, using tests/data/tokenizer/golden_sd1.json made by
// tools/parity/tokenizer_golden.py.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/text/test_data.h"
#include "engine/text/tokenize_prompt.h"

namespace netdist::text {
namespace {

std::string golden_path() { return testing::test_data_dir() + "/tokenizer/golden_sd1.json"; }

void compare_all(const nlohmann::json& prompts, const TokenizeOptions& options, const std::string& encoder) {
  auto tokenizer = ClipTokenizer::load(testing::clip_vocab_dir());
  ASSERT_TRUE(tokenizer.is_ok()) << tokenizer.status().to_string();
  ASSERT_GE(prompts.size(), 25u);
  for (const auto& [prompt, golden] : prompts.items()) {
    SCOPED_TRACE(encoder + " prompt: \"" + prompt + "\"");
    auto windows = tokenize_with_weights(*tokenizer, prompt, options);
    ASSERT_TRUE(windows.is_ok()) << windows.status().to_string();
    ASSERT_EQ(windows->size(), golden.size());
    for (size_t w = 0; w < golden.size(); ++w) {
      const TokenWindow& window = (*windows)[w];
      ASSERT_EQ(window.ids.size(), golden[w].size()) << "window " << w;
      ASSERT_EQ(window.weights.size(), golden[w].size()) << "window " << w;
      for (size_t t = 0; t < golden[w].size(); ++t) {
        const int id = golden[w][t][0].get<int>();
        const float weight = static_cast<float>(golden[w][t][1].get<double>());
        EXPECT_EQ(window.ids[t], id) << "window " << w << " token " << t << " ("
                                     << tokenizer->token_text(window.ids[t]) << " vs " << tokenizer->token_text(id)
                                     << ")";
        EXPECT_EQ(window.weights[t], weight) << "window " << w << " token " << t;
      }
    }
  }
}

class TokenizerGolden : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(golden_path())) {
      GTEST_FAIL() << golden_path()
                   << " is missing (it is committed; tools/parity/tokenizer_golden.py makes it "
                   << "on a machine with transformers and the ComfyUI source)";
    }
    std::ifstream in(golden_path());
    golden_ = nlohmann::json::parse(in, nullptr, false);
    ASSERT_FALSE(golden_.is_discarded()) << golden_path() << ": not valid JSON";
  }
  nlohmann::json golden_;
};

TEST_F(TokenizerGolden, ClipLMatchesComfyUI) { compare_all(golden_.at("clip_l"), TokenizeOptions::clip_l(), "clip_l"); }

TEST_F(TokenizerGolden, ClipGMatchesComfyUI) {
  compare_all(golden_.at("clip_g"), TokenizeOptions::open_clip(), "clip_g");
}

}  // namespace
}  // namespace netdist::text
