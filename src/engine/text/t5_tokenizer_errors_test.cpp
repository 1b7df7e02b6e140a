// Malformed and unsupported tokenizer.json files: every one is a Status naming the file (and the field),
// never a crash. Also the charsmap blob checks and the tokenizer file search.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/text/precompiled_charsmap.h"
#include "engine/text/t5_tokenizer.h"

namespace netdist::text {
namespace {

using nlohmann::json;

// A tiny valid tokenizer.json: unigram vocab, no normalizer, "</s>" as end token.
json tiny_tokenizer() {
  return json::parse(R"({
    "added_tokens": [{"id": 1, "content": "</s>", "special": true, "normalized": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first"},
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
      "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}},
    "model": {"type": "Unigram", "unk_id": 2, "byte_fallback": false,
      "vocab": [["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0], ["\u2581", -2.0], ["a", -3.0], ["b", -3.0],
                ["\u2581ab", -1.0]]}
  })");
}

std::string error_of(const json& spec,
                     T5Tokenizer::Pipeline pipeline = T5Tokenizer::Pipeline::kTokenizerJson) {
  auto tokenizer = T5Tokenizer::from_json(spec.dump(), "bad/tokenizer.json", pipeline);
  if (tokenizer.is_ok()) return "";
  return tokenizer.status().to_string();
}

TEST(T5TokenizerErrors, TinyTokenizerWorksInBothPipelines) {
  for (auto pipeline : {T5Tokenizer::Pipeline::kTokenizerJson, T5Tokenizer::Pipeline::kTransformers}) {
    auto tokenizer = T5Tokenizer::from_json(tiny_tokenizer().dump(), "tiny.json", pipeline);
    ASSERT_TRUE(tokenizer.is_ok()) << tokenizer.status().to_string();
    EXPECT_EQ(tokenizer->encode("ab a"), (std::vector<int>{6, 3, 4}));
    EXPECT_EQ(tokenizer->encode("abc</s>"), (std::vector<int>{6, 2, 1}));
  }
}

TEST(T5TokenizerErrors, EachMalformedFieldIsNamed) {
  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    const char* expect;
  };
  const std::vector<Case> cases = {
      {"no model", [](json& j) { j.erase("model"); }, "model"},
      {"BPE model", [](json& j) { j["model"]["type"] = "BPE"; }, "model.type"},
      {"byte fallback", [](json& j) { j["model"]["byte_fallback"] = true; }, "byte_fallback"},
      {"vocab not array", [](json& j) { j["model"]["vocab"] = "x"; }, "model.vocab"},
      {"vocab entry", [](json& j) { j["model"]["vocab"][4] = json::array({"a"}); }, "model.vocab[4]"},
      {"empty vocab", [](json& j) { j["model"]["vocab"] = json::array(); }, "model.vocab"},
      {"unk id", [](json& j) { j["model"]["unk_id"] = 70; }, "unk_id"},
      {"unk id type", [](json& j) { j["model"]["unk_id"] = "2"; }, "unk_id"},
      {"normalizer",
       [](json& j) {
         j["normalizer"] = {{"type", "NFKC"}};
       },
       "normalizer type \"NFKC\""},
      {"regex",
       [](json& j) {
         j["normalizer"] = {{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", " "}};
       },
       "Replace pattern"},
      {"charsmap base64",
       [](json& j) {
         j["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", "!!"}};
       },
       "base64"},
      {"charsmap short",
       [](json& j) {
         j["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", "AAA="}};
       },
       "precompiled_charsmap"},
      {"pre_tokenizer",
       [](json& j) {
         j["pre_tokenizer"] = {{"type", "ByteLevel"}};
       },
       "pre_tokenizer type"},
      {"prepend scheme", [](json& j) { j["pre_tokenizer"]["prepend_scheme"] = "sometimes"; },
       "prepend_scheme"},
      {"added id", [](json& j) { j["added_tokens"][0]["id"] = 99; }, "added_tokens[0]"},
      {"added content", [](json& j) { j["added_tokens"][0]["content"] = ""; }, "added_tokens[0]"},
      {"added lstrip", [](json& j) { j["added_tokens"][0]["lstrip"] = true; }, "added_tokens[0]"},
      {"no post_processor", [](json& j) { j.erase("post_processor"); }, "post_processor"},
      {"end id", [](json& j) { j["post_processor"]["special_tokens"]["</s>"]["ids"] = json::array({500}); },
       "end token id 500"},
  };
  for (const Case& c : cases) {
    json spec = tiny_tokenizer();
    c.edit(spec);
    const std::string error = error_of(spec);
    EXPECT_NE(error.find("bad/tokenizer.json"), std::string::npos) << c.what << ": " << error;
    EXPECT_NE(error.find(c.expect), std::string::npos) << c.what << ": " << error;
  }
}

TEST(T5TokenizerErrors, NotJsonAndMissingFile) {
  auto not_json = T5Tokenizer::from_json("{\"model\": ", "broken.json");
  ASSERT_FALSE(not_json.is_ok());
  EXPECT_NE(not_json.status().to_string().find("broken.json"), std::string::npos);
  auto missing = T5Tokenizer::load("/nonexistent/t5/tokenizer.json");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().to_string().find("/nonexistent/t5/tokenizer.json"), std::string::npos);
}

TEST(T5TokenizerErrors, CharsmapBlobChecks) {
  EXPECT_FALSE(PrecompiledCharsmap::parse("", "c").is_ok());
  EXPECT_FALSE(PrecompiledCharsmap::parse(std::string("\x10\x00\x00\x00\x01\x02", 6), "c").is_ok());
  EXPECT_FALSE(PrecompiledCharsmap::parse(std::string("\x00\x00\x00\x00", 4), "c").is_ok());
  // A one-unit trie whose offsets point outside it: looked-up text is kept, nothing is read out of bounds.
  auto odd = PrecompiledCharsmap::parse(std::string("\x04\x00\x00\x00\xff\xff\xff\xff", 8), "c");
  ASSERT_TRUE(odd.is_ok()) << odd.status().to_string();
  EXPECT_EQ(odd->normalize("abc \xC3\xA9"), "abc \xC3\xA9");
  EXPECT_EQ(decode_base64("aGVsbG8="), std::optional<std::string>("hello"));
  EXPECT_EQ(decode_base64("aGVsbG8"), std::optional<std::string>("hello"));
  EXPECT_FALSE(decode_base64("a$b").has_value());
}

TEST(T5TokenizerErrors, FindTokenizerJson) {
  auto missing = T5Tokenizer::find_tokenizer_json("/nonexistent/tokenizer.json");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().to_string().find("/nonexistent/tokenizer.json"), std::string::npos);
  auto found = T5Tokenizer::find_tokenizer_json("");
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  EXPECT_TRUE(std::filesystem::is_regular_file(*found));
}

}  // namespace
}  // namespace netdist::text
