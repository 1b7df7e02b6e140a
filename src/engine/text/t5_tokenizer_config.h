// The parts of a Hugging Face tokenizer.json that the T5 tokenizer (t5_tokenizer.h) runs, parsed and
// checked. Internal to engine/text.
// Thread-safety: values; AddedTokens is immutable after parsing.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace netdist::text::t5 {

struct NormalizerStep {
  enum class Kind { kPrecompiled, kStrip, kReplace };
  Kind kind = Kind::kPrecompiled;
  bool strip_left = false;
  bool strip_right = false;
  // Replace: a literal pattern, or a regex of the form "c{n,}" (a run of at least n of one character).
  std::string pattern;
  size_t min_repeat = 0;  // 0: literal pattern
  std::string content;
};

enum class Prepend { kAlways, kFirst, kNever };

struct MetaspaceStep {
  std::string replacement = "\xE2\x96\x81";
  Prepend prepend = Prepend::kAlways;
  bool split = true;
};

struct PreTokenizerStep {
  bool whitespace_split = false;  // else Metaspace
  MetaspaceStep metaspace;
};

// The added tokens, matched leftmost-longest on the raw text.
class AddedTokens {
 public:
  void add(std::string content, int id);
  // The longest added token that starts at text[pos]: (byte length, id).
  std::optional<std::pair<size_t, int>> longest_at(std::string_view text, size_t pos) const;
  size_t size() const { return tokens_.size(); }

 private:
  std::vector<std::pair<std::string, int>> tokens_;  // longest first
};

struct TokenizerConfig {
  std::vector<std::pair<std::string, double>> vocab;
  int unk_id = -1;
  int end_id = -1;
  std::string charsmap_blob;  // decoded precompiled_charsmap, empty when the file has none
  std::vector<NormalizerStep> normalizers;
  std::vector<PreTokenizerStep> pre_tokenizers;
  AddedTokens added;
};

// transformers_pipeline: keep only the file's Precompiled step and use WhitespaceSplit + Metaspace("always")
// as transformers 5's T5Tokenizer does; otherwise run the file's normalizer and pre_tokenizer as written.
// Errors name source and the field at fault.
Result<TokenizerConfig> parse_tokenizer_config(const nlohmann::json& root, const std::string& source,
                                               bool transformers_pipeline);

// The Strip and Replace normalizers of `tokenizers` (White_Space is Rust's char::is_whitespace).
std::string strip(std::string_view text, bool left, bool right);
std::string replace(std::string_view text, const NormalizerStep& step);

}  // namespace netdist::text::t5
