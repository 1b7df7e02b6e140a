// Whole-file reads and crash-safe writes. No libtorch.
#pragma once

#include <string>

#include "core/status.h"

namespace netdist::io {

// Writes bytes to `path` so that no reader ever sees a partial file: a temporary name in the same
// directory, fsync, rename. Errors (missing directory, full disk) name the path.
Status write_file_atomic(const std::string& path, const std::string& bytes);

// Reads a whole file; not_found / io_error naming the path.
Result<std::string> read_file(const std::string& path);

}  // namespace netdist::io
