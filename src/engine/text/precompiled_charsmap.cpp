#include "engine/text/precompiled_charsmap.h"

#include "engine/text/grapheme.h"
#include "engine/text/unicode.h"

namespace netdist::text {
namespace {

// Darts double-array unit layout (spm_precompiled's ArrayUnit).
bool charsmap_has_leaf(uint32_t unit) { return ((unit >> 8) & 1U) == 1U; }
uint32_t charsmap_value(uint32_t unit) { return unit & ((1U << 31) - 1U); }
uint32_t charsmap_label(uint32_t unit) { return unit & ((1U << 31) | 0xFFU); }
size_t charsmap_offset(uint32_t unit) { return static_cast<size_t>(unit >> 10) << ((unit & (1U << 9)) >> 6); }

bool charsmap_valid_utf8(std::string_view text) {
  std::string round_trip = unicode::encode_utf8(unicode::decode_utf8(text));
  return round_trip == text;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::optional<std::string> decode_base64(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    int value = base64_value(c);
    if (value < 0) return std::nullopt;
    buffer = (buffer << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFFU));
    }
  }
  return out;
}

Result<PrecompiledCharsmap> PrecompiledCharsmap::parse(std::string_view blob, const std::string& source) {
  auto fail = [&](const std::string& what) {
    return Status::invalid_argument(source + ": precompiled_charsmap " + what);
  };
  if (blob.size() < 4) return fail("is shorter than its 4-byte header");
  auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(blob[i])); };
  const uint32_t trie_bytes = byte(0) | (byte(1) << 8) | (byte(2) << 16) | (byte(3) << 24);
  if (trie_bytes > blob.size() - 4) {
    return fail("trie size " + std::to_string(trie_bytes) + " is larger than the " +
                std::to_string(blob.size() - 4) + " bytes that follow");
  }
  if (trie_bytes < 4) return fail("has an empty trie");
  PrecompiledCharsmap out;
  out.trie_.resize(trie_bytes / 4);
  for (size_t i = 0; i < out.trie_.size(); ++i) {
    const size_t at = 4 + i * 4;
    out.trie_[i] = byte(at) | (byte(at + 1) << 8) | (byte(at + 2) << 16) | (byte(at + 3) << 24);
  }
  out.normalized_ = std::string(blob.substr(4 + trie_bytes));
  if (!charsmap_valid_utf8(out.normalized_)) return fail("replacement strings are not valid UTF-8");
  return out;
}

std::optional<std::string_view> PrecompiledCharsmap::transform(std::string_view chunk) const {
  // common_prefix_search, stopping at the first (shortest) hit; an index outside the trie ends the search
  // (the Rust code would panic there: only a malformed blob gets that far).
  size_t node = charsmap_offset(trie_[0]);
  for (char ch : chunk) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == 0) break;
    node ^= c;
    if (node >= trie_.size()) return std::nullopt;
    const uint32_t unit = trie_[node];
    if (charsmap_label(unit) != c) return std::nullopt;
    node ^= charsmap_offset(unit);
    if (node >= trie_.size()) return std::nullopt;
    if (charsmap_has_leaf(unit)) {
      const size_t start = charsmap_value(trie_[node]);
      if (start > normalized_.size()) return std::nullopt;
      size_t end = normalized_.find('\0', start);
      if (end == std::string::npos) end = normalized_.size();
      return std::string_view(normalized_).substr(start, end - start);
    }
  }
  return std::nullopt;
}

std::string PrecompiledCharsmap::normalize(std::string_view text) const {
  const std::u32string chars = unicode::decode_utf8(text);
  std::string out;
  out.reserve(text.size());
  std::string piece;
  size_t i = 0;
  while (i < chars.size()) {
    const size_t end = grapheme_cluster_end(chars, i);
    piece = unicode::encode_utf8(std::u32string_view(chars).substr(i, end - i));
    if (piece.size() < 6) {
      if (std::optional<std::string_view> norm = transform(piece)) {
        out += *norm;
        i = end;
        continue;
      }
    }
    for (size_t k = i; k < end; ++k) {
      piece.clear();
      unicode::append_utf8(chars[k], piece);
      std::optional<std::string_view> norm = transform(piece);
      out += norm ? *norm : std::string_view(piece);
    }
    i = end;
  }
  return out;
}

}  // namespace netdist::text
