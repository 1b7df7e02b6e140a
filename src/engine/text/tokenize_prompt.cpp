#include "engine/text/tokenize_prompt.h"

#include <algorithm>
#include <functional>
#include <optional>

#include "core/log.h"
#include "engine/text/prompt_weights.h"
#include "engine/text/unicode.h"

namespace netdist::text {
namespace {

constexpr size_t kMaxWordLength = 8;

struct WeightedToken {
  int id;
  float weight;
  int embedding = -1;  // index into the call's embedding vectors, or -1 for a token
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

// An embedding word split as SDTokenizer._try_get_embedding does: the name (first whitespace-separated
// word after "embedding:", newlines stripped), the rest, and the whole text after the prefix.
struct EmbeddingWord {
  std::u32string name, leftover, full;
};

EmbeddingWord split_embedding_word(std::string_view word) {
  EmbeddingWord w;
  w.full = strip_char(unicode::decode_utf8(word.substr(kEmbeddingPrefix.size())), U'\n');
  std::vector<std::u32string> split = python_split(w.full);
  w.name = split.empty() ? std::u32string() : split[0];
  for (size_t i = 1; i < split.size(); ++i) {
    if (i > 1) w.leftover.push_back(' ');
    w.leftover += split[i];
  }
  return w;
}

struct ResolvedEmbedding {
  std::optional<EmbeddingVectors> vectors;
  std::string leftover;  // text to tokenize after it
};

// SDTokenizer._try_get_embedding: the name, else the name without its commas (which then lead the leftover).
Result<ResolvedEmbedding> resolve_embedding(std::string_view word, const TokenizeOptions& options,
                                            TokenizeReport* report) {
  const EmbeddingWord w = split_embedding_word(word);
  ResolvedEmbedding out;
  std::u32string leftover = w.leftover;
  if (!w.name.empty()) {
    ND_ASSIGN_OR_RETURN(out.vectors, options.embedding_lookup(unicode::encode_utf8(w.name)));
  }
  if (!out.vectors) {
    const std::u32string stripped = strip_char(w.name, U',');
    if (stripped.size() < w.name.size()) {
      if (!stripped.empty()) {
        ND_ASSIGN_OR_RETURN(out.vectors, options.embedding_lookup(unicode::encode_utf8(stripped)));
      }
      leftover = w.name.substr(stripped.size()) + U" " + w.leftover;
    }
  }
  if (!out.vectors) {
    log::warn("warning, embedding:{} does not exist, ignoring", unicode::encode_utf8(w.full));
    if (report != nullptr) report->missing_embeddings.push_back(unicode::encode_utf8(w.name));
  }
  out.leftover = unicode::encode_utf8(leftover);
  return out;
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

std::vector<std::string> embedding_names_in(std::string_view prompt) {
  std::vector<std::string> names;
  for (const WeightedSegment& segment : parse_prompt_weights(prompt)) {
    for (const std::string& word : split_embedding_words(segment.text)) {
      if (!word.starts_with(kEmbeddingPrefix)) continue;
      const EmbeddingWord w = split_embedding_word(word);
      if (w.name.empty()) continue;
      names.push_back(unicode::encode_utf8(w.name));
      const std::u32string stripped = strip_char(w.name, U',');
      if (!stripped.empty() && stripped.size() < w.name.size()) names.push_back(unicode::encode_utf8(stripped));
    }
  }
  return names;
}

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

// The weighted token groups of a prompt: one per word piece, one per embedding (its vectors go to `vectors`).
Result<std::vector<TokenGroup>> token_groups(const WordEncoder& encoder, std::string_view prompt,
                                             const TokenizeOptions& options, TokenizeReport* report,
                                             std::vector<std::vector<float>>& vectors) {
  std::vector<TokenGroup> groups;
  for (const WeightedSegment& segment : parse_prompt_weights(prompt)) {
    const float weight = static_cast<float>(segment.weight);
    for (std::string word : split_embedding_words(segment.text)) {
      if (options.embedding_lookup && word.starts_with(kEmbeddingPrefix)) {
        ND_ASSIGN_OR_RETURN(ResolvedEmbedding e, resolve_embedding(word, options, report));
        if (e.vectors) {
          TokenGroup group;
          for (int64_t r = 0; r < e.vectors->rows; ++r) {
            const auto begin = e.vectors->data.begin() + static_cast<std::ptrdiff_t>(r * e.vectors->dim);
            vectors.emplace_back(begin, begin + static_cast<std::ptrdiff_t>(e.vectors->dim));
            group.push_back({0, weight, static_cast<int>(vectors.size() - 1)});
          }
          groups.push_back(std::move(group));
        }
        if (e.leftover.empty()) continue;
        word = std::move(e.leftover);
      }
      TokenGroup group;
      for (int id : encoder.encode(word)) group.push_back({id, weight});
      groups.push_back(std::move(group));
    }
  }
  return groups;
}

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

  std::vector<std::vector<float>> vectors;
  ND_ASSIGN_OR_RETURN(std::vector<TokenGroup> groups, token_groups(encoder, prompt, options, report, vectors));

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
      if (token.embedding >= 0) out[w].embeddings[out[w].ids.size()] = vectors[static_cast<size_t>(token.embedding)];
      out[w].ids.push_back(token.id);
      out[w].weights.push_back(token.weight);
    }
  }
  return out;
}

}  // namespace

}  // namespace netdist::text
