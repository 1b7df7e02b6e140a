// SHA-256 as lower-case hex (OpenSSL's libcrypto): of bytes in memory, and of a file read in 1 MiB pieces
// (checkpoints are gigabytes). Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace netdist::io {

std::string sha256_hex(std::string_view bytes);

// The file's digest; io_error naming the path when it cannot be opened or read.
Result<std::string> file_sha256(const std::string& path);

}  // namespace netdist::io
