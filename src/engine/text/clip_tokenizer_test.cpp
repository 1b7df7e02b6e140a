#include "engine/text/clip_tokenizer.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "engine/text/test_data.h"

namespace netdist::text {
namespace {

namespace fs = std::filesystem;

const ClipTokenizer& clip_l() {
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

constexpr const char* kTinyVocab =
    R"({"a": 0, "b": 1, "a</w>": 2, "b</w>": 3, "ab</w>": 4, "<|startoftext|>": 5, "<|endoftext|>": 6})";

void write_file(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

class TokenizerTempDir {
 public:
  TokenizerTempDir() {
    path_ = fs::temp_directory_path() / ("netdist_clip_test_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TokenizerTempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

TEST(ClipTokenizer, LoadsClipLVocab) {
  EXPECT_EQ(clip_l().vocab_size(), 49408u);
  EXPECT_EQ(clip_l().merge_count(), 48894u);
  EXPECT_EQ(clip_l().bos_id(), 49406);
  EXPECT_EQ(clip_l().eos_id(), 49407);
  EXPECT_EQ(clip_l().token_text(1125), "photo</w>");
}

TEST(ClipTokenizer, EncodesPlainWords) {
  EXPECT_EQ(clip_l().encode("a photo of a cat"), (std::vector<int>{320, 1125, 539, 320, 2368}));
  EXPECT_EQ(clip_l().encode("A Photo\tOf  A CAT \n"), (std::vector<int>{320, 1125, 539, 320, 2368}));
  EXPECT_TRUE(clip_l().encode("").empty());
  EXPECT_TRUE(clip_l().encode(" \t\n").empty());
}

TEST(ClipTokenizer, SplitsContractionsDigitsAndPunctuation) {
  EXPECT_EQ(clip_l().encode("it's we're"), (std::vector<int>{585, 568, 649, 982}));
  EXPECT_EQ(clip_l().encode("1024"), (std::vector<int>{272, 271, 273, 275}));
  EXPECT_EQ(clip_l().encode("!!!"), (std::vector<int>{995}));
  EXPECT_EQ(clip_l().encode("( ! )"), (std::vector<int>{263, 256, 264}));
  EXPECT_EQ(clip_l().encode("masterpiece, best quality"), (std::vector<int>{12066, 267, 949, 3027}));
}

TEST(ClipTokenizer, HandlesUnicode) {
  EXPECT_EQ(clip_l().encode("café"), (std::vector<int>{15304}));
  EXPECT_EQ(clip_l().encode("e\xCC\x81" "cole"), (std::vector<int>{3459, 8166}));  // NFC: é + cole
  EXPECT_EQ(clip_l().encode("\xF0\x9F\x90\xB1"), (std::vector<int>{22979}));      // cat emoji
  EXPECT_EQ(clip_l().encode("\xC4\xB0stanbul"), (std::vector<int>{328, 16384, 11231}));  // İ -> i + U+0307
  EXPECT_EQ(clip_l().encode("non\xC2\xA0" "breaking"), clip_l().encode("non breaking"));
}

TEST(ClipTokenizer, SpecialTokensMatchOnlyExactly) {
  EXPECT_EQ(clip_l().encode("<|endoftext|>"), (std::vector<int>{49407}));
  EXPECT_EQ(clip_l().encode("a<|startoftext|>"), (std::vector<int>{320, 49406}));
  EXPECT_EQ(clip_l().encode("!<|endoftext|>"), (std::vector<int>{256, 49407}));
  EXPECT_EQ(clip_l().encode("<|ENDOFTEXT|>"), (std::vector<int>{27, 347, 40786, 4160, 91, 285}));
}

TEST(ClipTokenizer, InvalidUtf8DoesNotCrash) {
  std::vector<int> ids = clip_l().encode(std::string("a\xFF\xC3", 3));
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 320);
}

TEST(ClipTokenizer, ConcurrentEncodeAgrees) {
  const std::string prompt = "a highly detailed photograph of an old lighthouse, dramatic clouds, 4k";
  const std::vector<int> expected = clip_l().encode(prompt);
  std::vector<std::thread> threads;
  std::vector<bool> ok(4, false);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      bool same = true;
      for (int i = 0; i < 50; ++i) same = same && clip_l().encode(prompt + " " + std::to_string(i % 7)).size() > 0;
      ok[static_cast<size_t>(t)] = same && clip_l().encode(prompt) == expected;
    });
  }
  for (auto& thread : threads) thread.join();
  for (bool b : ok) EXPECT_TRUE(b);
}

TEST(ClipTokenizer, SmallCustomVocab) {
  auto tokenizer = ClipTokenizer::from_strings(kTinyVocab, "#version: 0.2\na b</w>\n");
  ASSERT_TRUE(tokenizer.is_ok()) << tokenizer.status().to_string();
  EXPECT_EQ(tokenizer->bos_id(), 5);
  EXPECT_EQ(tokenizer->eos_id(), 6);
  EXPECT_EQ(tokenizer->encode("ab"), (std::vector<int>{4}));
  EXPECT_EQ(tokenizer->encode("ba"), (std::vector<int>{1, 2}));
  EXPECT_EQ(tokenizer->encode("c"), (std::vector<int>{6}));
}

TEST(ClipTokenizer, MalformedMergesNameTheLine) {
  auto three = ClipTokenizer::from_strings(kTinyVocab, "#version: 0.2\na b</w>\na b c\n");
  ASSERT_FALSE(three.is_ok());
  EXPECT_EQ(three.status().code(), StatusCode::kCorruption);
  EXPECT_NE(three.status().message().find("merges.txt: line 3"), std::string::npos) << three.status().message();

  auto blank = ClipTokenizer::from_strings(kTinyVocab, "a b</w>\n\na b</w>\n");
  ASSERT_FALSE(blank.is_ok());
  EXPECT_NE(blank.status().message().find("line 2"), std::string::npos) << blank.status().message();

  auto unknown = ClipTokenizer::from_strings(kTinyVocab, "#version: 0.2\nb a</w>\n");
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_NE(unknown.status().message().find("'b' + 'a</w>'"), std::string::npos) << unknown.status().message();
}

TEST(ClipTokenizer, MalformedVocabNamesTheFile) {
  auto not_json = ClipTokenizer::from_strings("{\"a\": 1,", "");
  ASSERT_FALSE(not_json.is_ok());
  EXPECT_EQ(not_json.status().code(), StatusCode::kCorruption);
  EXPECT_NE(not_json.status().message().find("vocab.json"), std::string::npos);

  auto bad_id = ClipTokenizer::from_strings(R"({"a": "x"})", "");
  ASSERT_FALSE(bad_id.is_ok());
  EXPECT_NE(bad_id.status().message().find("'a'"), std::string::npos) << bad_id.status().message();

  auto no_special = ClipTokenizer::from_strings(R"({"a": 0, "<|endoftext|>": 1})", "");
  ASSERT_FALSE(no_special.is_ok());
  EXPECT_NE(no_special.status().message().find("<|startoftext|>"), std::string::npos);
}

TEST(ClipTokenizer, LoadMissingFileNamesIt) {
  TokenizerTempDir dir;
  write_file(dir.path() / "vocab.json", kTinyVocab);
  auto loaded = ClipTokenizer::load(dir.path().string());
  ASSERT_FALSE(loaded.is_ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kNotFound);
  EXPECT_NE(loaded.status().message().find((dir.path() / "merges.txt").string()), std::string::npos);
}

TEST(ClipTokenizer, FindVocabDirSearchOrder) {
  TokenizerTempDir root;
  ScopedEnv home("HOME", (root.path() / "home").string());
  ScopedEnv hf_home("HF_HOME", (root.path() / "hf").string());
  ScopedEnv hub("HF_HUB_CACHE", (root.path() / "hub").string());
  ScopedEnv xdg("XDG_CACHE_HOME", (root.path() / "xdg").string());
  ScopedEnv comfy("COMFYUI_PATH", (root.path() / "comfy").string());
  const fs::path model = root.path() / "models" / "sd15";
  write_file(model / "model.safetensors", "x");

  auto missing = ClipTokenizer::find_vocab_dir(model.string(), "");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  const std::string& message = missing.status().message();
  for (const fs::path& searched :
       {model, model / "tokenizer", root.path() / "comfy" / "comfy" / "sd1_tokenizer",
        root.path() / "hub" / "models--openai--clip-vit-large-patch14" / "snapshots",
        root.path() / "hf" / "hub" / "models--openai--clip-vit-large-patch14" / "snapshots",
        root.path() / "xdg" / "huggingface" / "hub", root.path() / "home" / ".cache" / "huggingface" / "hub"}) {
    EXPECT_NE(message.find(searched.string()), std::string::npos) << searched << " not in: " << message;
  }

  const fs::path snapshot = root.path() / "hf" / "hub" / "models--openai--clip-vit-large-patch14" / "snapshots" / "abc";
  write_file(snapshot / "vocab.json", "{}");
  write_file(snapshot / "merges.txt", "");
  EXPECT_EQ(ClipTokenizer::find_vocab_dir(model.string(), "").value(), snapshot.string());

  write_file(model / "tokenizer" / "vocab.json", "{}");
  write_file(model / "tokenizer" / "merges.txt", "");
  EXPECT_EQ(ClipTokenizer::find_vocab_dir((model / "model.safetensors").string(), "").value(),
            (model / "tokenizer").string());

  auto explicit_missing = ClipTokenizer::find_vocab_dir(model.string(), (root.path() / "nope").string());
  ASSERT_FALSE(explicit_missing.is_ok());
  EXPECT_NE(explicit_missing.status().message().find((root.path() / "nope").string()), std::string::npos);
  EXPECT_EQ(explicit_missing.status().message().find("sd1_tokenizer"), std::string::npos);
  EXPECT_EQ(ClipTokenizer::find_vocab_dir("", testing::clip_vocab_dir()).value(), testing::clip_vocab_dir());
}

}  // namespace
}  // namespace netdist::text
