// ComfyUI's prompt weighting syntax (comfy/sd1_clip.py: escape_important, parse_parentheses,
// token_weights, unescape_important), reproduced exactly:
//   (text)        weight x1.1 (nesting multiplies: ((text)) = 1.1 * 1.1)
//   (text:1.3)    weight set to 1.3 (the number after the last ':' if it parses as a Python float; the
//                 enclosing weight is replaced, not multiplied; groups nested inside multiply from 1.3)
//   \( \)         literal parentheses
//   [ ] and everything else are literal text. Unbalanced parentheses stay literal text.
// Weights are computed in double precision, as Python does.
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace netdist::text {

struct WeightedSegment {
  std::string text;  // unescaped; may be empty or whitespace only
  double weight = 1.0;

  bool operator==(const WeightedSegment&) const = default;
};

// Splits prompt into consecutive segments with their weights, in prompt order.
std::vector<WeightedSegment> parse_prompt_weights(std::string_view prompt);

// Python float(text): surrounding whitespace, sign, digits with '_' separators, exponent, inf/nan.
std::optional<double> parse_python_float(std::string_view text);

// ComfyUI's split of a segment at " embedding:" / "\nembedding:" (the separator's leading space or newline
// is dropped, "embedding:" is kept); empty pieces are removed. "a embedding:x b" -> {"a", "embedding:x b"}.
std::vector<std::string> split_embedding_words(std::string_view segment);

inline constexpr std::string_view kEmbeddingPrefix = "embedding:";

}  // namespace netdist::text
