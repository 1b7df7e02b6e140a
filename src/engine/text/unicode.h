// Unicode text handling for the CLIP tokenizer: UTF-8 <-> code points, the character classes of CLIP's
// pre-split pattern, per-character lowercase, and NFC normalization.
//
// Tables come from tools/text/gen_unicode_data.py (Python unicodedata 14 + the `regex` module); code points
// assigned after that Unicode version have no properties here (not letters, no case, no decomposition).
// Thread-safety: every function is pure.
#pragma once

#include <string>
#include <string_view>

namespace netdist::text::unicode {

// Decodes UTF-8; each byte of an invalid or truncated sequence becomes U+FFFD.
std::u32string decode_utf8(std::string_view text);
void append_utf8(char32_t code_point, std::string& out);
std::string encode_utf8(std::u32string_view text);

bool is_letter(char32_t c);        // \p{L}
bool is_number(char32_t c);        // \p{N}
bool is_white_space(char32_t c);   // the White_Space property: regex \s
bool is_python_space(char32_t c);  // Python str.isspace() (White_Space plus U+001C..U+001F)
int combining_class(char32_t c);   // canonical combining class (0 for starters)

// Full lowercase mapping, character by character (U+0130 -> "i\u0307"; no Final_Sigma context), as
// Rust's char::to_lowercase and so the `tokenizers` Lowercase normalizer.
std::u32string to_lower(std::u32string_view text);

// Unicode Normalization Form C (canonical decomposition, reordering, canonical composition).
std::u32string to_nfc(std::u32string_view text);

}  // namespace netdist::text::unicode
