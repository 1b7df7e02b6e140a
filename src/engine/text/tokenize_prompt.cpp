#include "engine/text/tokenize_prompt.h"

#include <algorithm>
#include <functional>
#include <optional>

#include "engine/text/prompt_weights.h"
#include "engine/text/unicode.h"

namespace netdist::text {
namespace {

constexpr size_t kMaxWordLength = 8;

struct WeightedToken {
  int id;
  float weight;
};

using TokenGroup = std::vector<WeightedToken>;

std::vector<std::u32string> python_split(std::u32string_view text) {
  std::vector<std::u32string> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && unicode::is_python_space(text[i])) ++i;
    size_t start = i;
    while (i < text.size() && !unicode::is_python_space(text[i])) ++i;
    if (i > start) words.emplace_back(text.substr(start, i - start));
  }
  return words;
}

std::u32string strip_char(std::u32string_view text, char32_t c) {
  size_t first = 0;
  size_t last = text.size();
  while (first < last && text[first] == c) ++first;
  while (last > first && text[last - 1] == c) --last;
  return std::u32string(text.substr(first, last - first));
}

// SDTokenizer._try_get_embedding with a missing embedding: returns the leftover text to tokenize.
Result<std::string> resolve_embedding(std::string_view word, const TokenizeOptions& options,
                                      TokenizeReport* report) {
  std::u32string name_part = strip_char(unicode::decode_utf8(word.substr(kEmbeddingPrefix.size())), U'\n');
  std::vector<std::u32string> split = python_split(name_part);
  std::u32string name = split.empty() ? std::u32string() : split[0];
  std::u32string leftover;
  for (size_t i = 1; i < split.size(); ++i) {
    if (i > 1) leftover.push_back(' ');
    leftover += split[i];
  }
  std::vector<std::u32string> tried = {name};
  std::u32string stripped = strip_char(name, U',');
  if (stripped.size() < name.size()) {
    tried.push_back(stripped);
    leftover = name.substr(stripped.size()) + U" " + leftover;
  }
  for (const std::u32string& candidate : tried) {
    std::string utf8 = unicode::encode_utf8(candidate);
    if (!candidate.empty() && options.embedding_exists(utf8)) {
      return Status::unsupported("prompt uses embedding:" + utf8 +
                                 "; textual-inversion embeddings are not supported yet");
    }
  }
  if (report != nullptr) report->missing_embeddings.push_back(unicode::encode_utf8(name));
  return unicode::encode_utf8(leftover);
}

// The tokenizer as SDTokenizer sees it: encode one word without start/end tokens.
struct WordEncoder {
  std::function<std::vector<int>(std::string_view)> encode;
  std::optional<int> start_id;
  int end_id = 0;
  int default_pad_id = 0;
};

Result<std::vector<TokenWindow>> tokenize_words(const WordEncoder& encoder, std::string_view prompt,
                                                const TokenizeOptions& options, TokenizeReport* report);

}  // namespace

Result<std::vector<TokenWindow>> tokenize_with_weights(const ClipTokenizer& tokenizer,
                                                       std::string_view prompt,
                                                       const TokenizeOptions& options,
                                                       TokenizeReport* report) {
  WordEncoder encoder{[&](std::string_view word) { return tokenizer.encode(word); }, tokenizer.bos_id(),
                      tokenizer.eos_id(), tokenizer.eos_id()};
  return tokenize_words(encoder, prompt, options, report);
}

Result<std::vector<TokenWindow>> tokenize_with_weights(const T5Tokenizer& tokenizer, std::string_view prompt,
                                                       const TokenizeOptions& options,
                                                       TokenizeReport* report) {
  WordEncoder encoder{[&](std::string_view word) { return tokenizer.encode(word); }, std::nullopt,
                      tokenizer.end_id(), 0};
  return tokenize_words(encoder, prompt, options, report);
}

namespace {

Result<std::vector<TokenWindow>> tokenize_words(const WordEncoder& encoder, std::string_view prompt,
                                                const TokenizeOptions& options, TokenizeReport* report) {
  if (options.max_length < 10) {
    return Status::invalid_argument("tokenize options: max_length " + std::to_string(options.max_length) +
                                    " is below 10");
  }
  if (options.min_length < 0) {
    return Status::invalid_argument("tokenize options: min_length " + std::to_string(options.min_length) +
                                    " is negative");
  }
  const std::optional<int> start_id = encoder.start_id;
  const int end_id = encoder.end_id;
  const int pad_id = options.pad_id.value_or(encoder.default_pad_id);
  const size_t max_length = static_cast<size_t>(options.max_length);

  std::vector<TokenGroup> groups;
  for (const WeightedSegment& segment : parse_prompt_weights(prompt)) {
    const float weight = static_cast<float>(segment.weight);
    for (std::string word : split_embedding_words(segment.text)) {
      if (options.embedding_exists && word.starts_with(kEmbeddingPrefix)) {
        ND_ASSIGN_OR_RETURN(word, resolve_embedding(word, options, report));
        if (word.empty()) continue;
      }
      TokenGroup group;
      for (int id : encoder.encode(word)) group.push_back({id, weight});
      groups.push_back(std::move(group));
    }
  }

  std::vector<std::vector<WeightedToken>> windows;
  const std::vector<WeightedToken> empty_window =
      start_id ? std::vector<WeightedToken>{{*start_id, 1.0f}} : std::vector<WeightedToken>{};
  windows.push_back(empty_window);
  for (const TokenGroup& whole_group : groups) {
    const bool is_large = whole_group.size() >= kMaxWordLength;
    size_t next = 0;
    while (next < whole_group.size()) {
      std::vector<WeightedToken>& window = windows.back();
      const size_t remaining_tokens = whole_group.size() - next;
      if (remaining_tokens + window.size() > max_length - 1) {
        const size_t room = max_length - window.size() - 1;
        if (is_large) {
          window.insert(window.end(), whole_group.begin() + static_cast<std::ptrdiff_t>(next),
                        whole_group.begin() + static_cast<std::ptrdiff_t>(next + room));
          window.push_back({end_id, 1.0f});
          next += room;
        } else {
          window.push_back({end_id, 1.0f});
          if (options.pad_to_max_length) window.insert(window.end(), room, {pad_id, 1.0f});
        }
        windows.push_back(empty_window);
      } else {
        window.insert(window.end(), whole_group.begin() + static_cast<std::ptrdiff_t>(next),
                      whole_group.end());
        next = whole_group.size();
      }
    }
  }
  std::vector<WeightedToken>& last = windows.back();
  last.push_back({end_id, 1.0f});
  if (options.pad_to_max_length && last.size() < max_length) last.resize(max_length, {pad_id, 1.0f});
  const size_t min_length = static_cast<size_t>(options.min_length);
  if (last.size() < min_length) last.resize(min_length, {pad_id, 1.0f});

  std::vector<TokenWindow> out(windows.size());
  for (size_t w = 0; w < windows.size(); ++w) {
    for (const WeightedToken& token : windows[w]) {
      out[w].ids.push_back(token.id);
      out[w].weights.push_back(token.weight);
    }
  }
  return out;
}

}  // namespace

}  // namespace netdist::text
