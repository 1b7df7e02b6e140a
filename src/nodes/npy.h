// NumPy .npy files holding one float32 or float16 array in C order (what np.save writes for a latent).
// Reads format versions 1.0, 2.0 and 3.0; writes 1.0 with the header padded to a multiple of 64 bytes,
// byte for byte what np.save writes for the same array. Little-endian only ('<f4', '<f2'; '=' is taken as
// little-endian). Every malformed input — bad magic, unknown version, truncated header or data, a header that
// is not the dict np.save writes, fortran_order True, another dtype, trailing bytes — is kCorruption or
// kUnsupported naming `what` (the file or URL) and the problem. No libtorch: callers wrap `data` themselves.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace netdist::nodes {

enum class NpyDtype { kFloat32, kFloat16 };

struct NpyArray {
  NpyDtype dtype = NpyDtype::kFloat32;
  std::vector<int64_t> shape;  // empty for a 0-d array
  std::string data;            // numel() * element_size() bytes, little-endian, C order

  int64_t numel() const;
  size_t element_size() const { return dtype == NpyDtype::kFloat16 ? 2 : 4; }
};

Result<NpyArray> parse_npy(std::string_view bytes, const std::string& what);

// invalid_argument when data.size() != numel() * element_size().
Result<std::string> serialize_npy(const NpyArray& array);

}  // namespace netdist::nodes
