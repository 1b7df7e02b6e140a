#include "engine/text/prompt_weights.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "engine/text/unicode.h"

namespace netdist::text {
namespace {

constexpr std::string_view kEscapedClose = std::string_view("\0\1", 2);
constexpr std::string_view kEscapedOpen = std::string_view("\0\2", 2);

std::string replace_all_text(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text.substr(i, from.size()) == from) {
      out.append(to);
      i += from.size();
    } else {
      out.push_back(text[i++]);
    }
  }
  return out;
}

std::vector<std::string> parse_parentheses(std::string_view text) {
  std::vector<std::string> result;
  std::string current;
  int nesting = 0;
  for (char c : text) {
    if (c == '(') {
      if (nesting == 0) {
        if (!current.empty()) result.push_back(std::move(current));
        current.assign(1, '(');
      } else {
        current += c;
      }
      ++nesting;
    } else if (c == ')') {
      --nesting;
      if (nesting == 0) {
        current.push_back(')');
        result.push_back(std::move(current));
        current.clear();
      } else {
        current += c;
      }
    } else {
      current += c;
    }
  }
  if (!current.empty()) result.push_back(current);
  return result;
}

void token_weights(std::string_view text, double current_weight, std::vector<WeightedSegment>& out) {
  for (const std::string& item : parse_parentheses(text)) {
    if (item.size() >= 2 && item.front() == '(' && item.back() == ')') {
      std::string_view inner = std::string_view(item).substr(1, item.size() - 2);
      double weight = current_weight * 1.1;
      size_t colon = inner.rfind(':');
      if (colon != std::string_view::npos && colon > 0) {
        if (auto parsed = parse_python_float(inner.substr(colon + 1))) {
          weight = *parsed;
          inner = inner.substr(0, colon);
        }
      }
      token_weights(inner, weight, out);
    } else {
      out.push_back({item, current_weight});
    }
  }
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// digitpart: digit (["_"] digit)*; appends the digits to out and advances i.
bool scan_digits(std::string_view s, size_t& i, std::string& out) {
  if (i >= s.size() || !is_digit(s[i])) return false;
  out.push_back(s[i++]);
  while (i < s.size()) {
    if (is_digit(s[i])) {
      out.push_back(s[i++]);
    } else if (s[i] == '_' && i + 1 < s.size() && is_digit(s[i + 1])) {
      out.push_back(s[i + 1]);
      i += 2;
    } else {
      break;
    }
  }
  return true;
}

bool equals_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != b[i]) return false;
  }
  return true;
}

}  // namespace

std::optional<double> parse_python_float(std::string_view text) {
  std::u32string decoded = unicode::decode_utf8(text);
  size_t first = 0;
  size_t last = decoded.size();
  while (first < last && unicode::is_python_space(decoded[first])) ++first;
  while (last > first && unicode::is_python_space(decoded[last - 1])) --last;
  std::string s = unicode::encode_utf8(std::u32string_view(decoded).substr(first, last - first));

  size_t i = 0;
  double sign = 1.0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) sign = s[i++] == '-' ? -1.0 : 1.0;
  std::string_view rest = std::string_view(s).substr(i);
  if (equals_ignore_case(rest, "inf") || equals_ignore_case(rest, "infinity")) return sign * HUGE_VAL;
  if (equals_ignore_case(rest, "nan")) return std::nan("");

  std::string clean;
  bool has_int = scan_digits(s, i, clean);
  bool has_frac = false;
  if (i < s.size() && s[i] == '.') {
    clean.push_back('.');
    ++i;
    has_frac = scan_digits(s, i, clean);
  }
  if (!has_int && !has_frac) return std::nullopt;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    clean.push_back('e');
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) clean.push_back(s[i++]);
    if (!scan_digits(s, i, clean)) return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  return sign * std::strtod(clean.c_str(), nullptr);
}

std::vector<WeightedSegment> parse_prompt_weights(std::string_view prompt) {
  std::string escaped = replace_all_text(prompt, "\\)", kEscapedClose);
  escaped = replace_all_text(escaped, "\\(", kEscapedOpen);
  std::vector<WeightedSegment> segments;
  token_weights(escaped, 1.0, segments);
  for (WeightedSegment& segment : segments) {
    segment.text = replace_all_text(segment.text, kEscapedClose, ")");
    segment.text = replace_all_text(segment.text, kEscapedOpen, "(");
  }
  return segments;
}

std::vector<std::string> split_embedding_words(std::string_view segment) {
  std::vector<std::string> pieces;
  std::string current;
  size_t i = 0;
  while (i < segment.size()) {
    bool at_separator = (segment[i] == ' ' || segment[i] == '\n') &&
                        segment.substr(i + 1, kEmbeddingPrefix.size()) == kEmbeddingPrefix;
    if (at_separator) {
      pieces.push_back(std::move(current));
      current = std::string(kEmbeddingPrefix);
      i += 1 + kEmbeddingPrefix.size();
    } else {
      current.push_back(segment[i++]);
    }
  }
  pieces.push_back(std::move(current));
  std::vector<std::string> out;
  for (std::string& piece : pieces) {
    if (!piece.empty()) out.push_back(std::move(piece));
  }
  return out;
}

}  // namespace netdist::text
