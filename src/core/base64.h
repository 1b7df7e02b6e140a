// Standard base64 (RFC 4648, with '=' padding) for binary payloads inside JSON, and lowercase hex for digests.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace netdist {

std::string base64_encode(std::string_view bytes);
// invalid_argument naming the first bad character or a bad length.
Result<std::string> base64_decode(std::string_view text);

// Lowercase hex of `bytes` (two characters per byte), as sha256 digests are written.
std::string hex_encode(std::string_view bytes);

}  // namespace netdist
