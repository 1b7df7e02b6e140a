// SentencePiece's precompiled normalization rules ("precompiled_charsmap", the nmt_nfkc rules of T5's
// spiece.model) as the `tokenizers` Precompiled normalizer applies them (spm_precompiled + tokenizers'
// normalizers/precompiled.rs):
//   * the blob is: u32 little-endian trie size in bytes, the Darts double-array trie (u32 units), then the
//     replacement strings, each ended by '\0';
//   * the text is split into extended grapheme clusters (grapheme.h); a cluster of fewer than 6 UTF-8 bytes
//     is looked up whole: when the trie holds any prefix of it, the SHORTEST such prefix's replacement
//     replaces the whole cluster (so "Ａ\u0301" becomes "A": the accent is dropped, as `tokenizers` does);
//   * otherwise each character is looked up alone and replaced, or kept.
// Thread-safety: immutable after parse(); const methods may be called from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace netdist::text {

class PrecompiledCharsmap {
 public:
  // blob: the decoded bytes (not base64). source names the file in errors. A blob whose trie size does not
  // fit, an empty trie or replacement strings that are not UTF-8 are invalid_argument errors.
  static Result<PrecompiledCharsmap> parse(std::string_view blob, const std::string& source);

  // text: UTF-8 (invalid bytes read as U+FFFD).
  std::string normalize(std::string_view text) const;

  // The replacement of the shortest trie key that is a prefix of chunk, if any.
  std::optional<std::string_view> transform(std::string_view chunk) const;

 private:
  std::vector<uint32_t> trie_;
  std::string normalized_;
};

// Standard base64 (RFC 4648, '=' padding optional); nullopt on a character outside the alphabet.
std::optional<std::string> decode_base64(std::string_view text);

}  // namespace netdist::text
