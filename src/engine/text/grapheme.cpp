#include "engine/text/grapheme.h"

#include <algorithm>

namespace netdist::text {
namespace {

bool grapheme_in_table(char32_t c, const unicode_data::CodeRange* table, size_t size) {
  const unicode_data::CodeRange* end = table + size;
  const unicode_data::CodeRange* it = std::upper_bound(
      table, end, static_cast<uint32_t>(c),
      [](uint32_t value, const unicode_data::CodeRange& range) { return value < range.first; });
  return it != table && c <= (it - 1)->last;
}

bool grapheme_is_control(char32_t c) {
  return grapheme_in_table(c, grapheme_data::kGraphemeControl, grapheme_data::kGraphemeControlSize);
}
bool grapheme_is_extend(char32_t c) {
  return grapheme_in_table(c, grapheme_data::kGraphemeExtend, grapheme_data::kGraphemeExtendSize);
}
bool grapheme_is_prepend(char32_t c) {
  return grapheme_in_table(c, grapheme_data::kGraphemePrepend, grapheme_data::kGraphemePrependSize);
}

}  // namespace

size_t grapheme_cluster_end(std::u32string_view text, size_t start) {
  size_t i = start;
  if (text[i] == U'\r') return (i + 1 < text.size() && text[i + 1] == U'\n') ? i + 2 : i + 1;  // GB3, GB4
  if (grapheme_is_control(text[i])) return i + 1;                                              // GB4
  // GB9b: Prepend x (anything but a control).
  while (grapheme_is_prepend(text[i]) && i + 1 < text.size() && !grapheme_is_control(text[i + 1]) &&
         text[i + 1] != U'\r') {
    ++i;
  }
  ++i;
  while (i < text.size() && grapheme_is_extend(text[i])) ++i;  // GB9, GB9a
  return i;
}

}  // namespace netdist::text
