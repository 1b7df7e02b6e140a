// Whole-file reads and crash-safe writes. No libtorch.
#pragma once

#include <string>

#include "core/status.h"

namespace netdist::io {

// Writes bytes to `path` so that no reader ever sees a partial file, even after a crash or power loss: a
// temporary name in the same directory (`path.tmp-PID`), fsync, rename, fsync of the directory. A crash
// before the rename leaves only the temporary file. Errors (missing directory, full disk) name the path.
Status write_file_atomic(const std::string& path, const std::string& bytes);

// Reads a whole file; not_found / io_error naming the path.
Result<std::string> read_file(const std::string& path);

}  // namespace netdist::io
