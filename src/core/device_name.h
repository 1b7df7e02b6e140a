// The spelling of a device on the command line (--device, --cuda-device): "cpu", "cuda" or "cuda:N", N a
// decimal index. Parsed strictly: "cuda:abc", "cuda:-1", "cuda:1x" or "gpu" are errors naming the text, never
// device 0. Whether the device exists is the caller's check (cli/node_setup.cpp, which knows the CUDA count).
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace netdist {

struct DeviceName {
  bool cuda = false;
  std::optional<int> index;  // "cuda:N"; nullopt for "cuda" (the current device, 0) and "cpu"
};

// invalid_argument quoting `text` and the accepted spellings when it is none of them.
Result<DeviceName> parse_device_name(std::string_view text);

}  // namespace netdist
