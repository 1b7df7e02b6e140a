// Extended grapheme clusters (UAX #29), as far as the T5 tokenizer's Precompiled normalizer can tell them
// apart: Rust's unicode-segmentation splits its input into clusters and looks a cluster of fewer than 6 UTF-8
// bytes up whole (precompiled_charsmap.h).
//
// Rules implemented: CR x LF; break around other controls; x (Extend | ZWJ | SpacingMark); Prepend x. Not
// implemented, because every cluster they join is 6 or more bytes long (so it is looked up character by
// character either way): the Hangul syllable rules, emoji ZWJ sequences and regional-indicator pairs.
// Tables: tools/text/gen_grapheme_data.py (Python unicodedata; the Unicode version is in grapheme_data.cpp).
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/text/unicode_data.h"

namespace netdist::text {

// The end (exclusive index) of the cluster that starts at text[start]; start < text.size().
size_t grapheme_cluster_end(std::u32string_view text, size_t start);

namespace grapheme_data {
using unicode_data::CodeRange;
extern const CodeRange kGraphemeExtend[];
extern const size_t kGraphemeExtendSize;
extern const CodeRange kGraphemePrepend[];
extern const size_t kGraphemePrependSize;
extern const CodeRange kGraphemeControl[];
extern const size_t kGraphemeControlSize;
}  // namespace grapheme_data

}  // namespace netdist::text
