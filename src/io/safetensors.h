// safetensors files: a validating memory-mapped reader and an atomic writer (torch-free).
//
// Format (huggingface/safetensors): 8-byte little-endian u64 N, then N bytes of UTF-8 JSON beginning with
// '{' (may be padded at the end with spaces), then the data buffer. The JSON maps tensor names to
// {"dtype", "shape", "data_offsets": [begin, end]} with offsets relative to the data buffer, plus an
// optional "__metadata__" string→string map. Tensors are little-endian, row-major. A valid file has
// N <= kMaxHeaderSize, no duplicate keys, end - begin == numel * dtype_size for every tensor, and its
// tensors cover the data buffer exactly: no overlaps, no holes, no trailing bytes.
//
// Errors: every Status message starts with the file path (or the `what` given for a buffer) and names
// the tensor or field at fault. Malformed data is kCorruption; a well-formed but unhandled dtype is
// kUnsupported; OS failures are kIoError (kNotFound for a missing file).
// Thread-safety: a SafetensorsFile is immutable after open and may be read from any number of threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace netdist::io {

inline constexpr uint64_t kMaxHeaderSize = 100'000'000;

// The dtypes netdist reads and writes. Other safetensors dtypes (F4, F6_*, F8_E8M0, *FNUZ, C64) are
// reported as kUnsupported.
enum class Dtype : uint8_t {
  kBool,
  kU8,
  kI8,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64,
  kF8E4M3,  // float8 e4m3fn: no infinities, NaN = S.1111.111, max 448
  kF8E5M2,  // float8 e5m2: IEEE-like, max 57344
};

// The safetensors spelling ("F16", "BF16", "F8_E4M3", ...).
std::string_view dtype_name(Dtype dtype);
// Bytes per element (1, 2, 4 or 8).
size_t dtype_size(Dtype dtype);
// The dtype spelled `name`, or nullopt for any other string (including dtypes netdist does not handle).
std::optional<Dtype> dtype_from_name(std::string_view name);

struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::kF32;
  std::vector<int64_t> shape;     // empty for a 0-d scalar; a zero anywhere makes an empty tensor
  uint64_t offset = 0;            // start within the data buffer (data_offsets[0])
  uint64_t byte_size = 0;         // data_offsets[1] - data_offsets[0] == numel() * dtype_size(dtype)
  const uint8_t* data = nullptr;  // into the owning SafetensorsFile; null from parse_header

  int64_t numel() const;
};

// The parsed JSON header. `tensors` is sorted by offset (file order).
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
};

class SafetensorsFile {
 public:
  // Maps `path` read-only (private copy-on-write pages: writes through tensor views never reach the file)
  // and validates it completely.
  static Result<std::shared_ptr<SafetensorsFile>> open(const std::string& path);

  // Validates `bytes` (a whole file's contents) and keeps them. `what` names the source in messages.
  static Result<std::shared_ptr<SafetensorsFile>> open_buffer(std::string bytes, std::string what);

  // Parses and validates the N header bytes that follow the length prefix, against a data buffer of
  // `buffer_size` bytes (file size - 8 - N). Needs no file; `what` starts every error message.
  static Result<SafetensorsHeader> parse_header(std::string_view header, uint64_t buffer_size,
                                                const std::string& what);

  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  // Tensors in file order (by offset); data pointers stay valid while this object lives.
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  std::vector<std::string> names() const;
  // The tensor called `name`, or null.
  const TensorInfo* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }

 private:
  SafetensorsFile() = default;
  Status init(const uint8_t* bytes, uint64_t size);

  std::string path_;
  std::string owned_;  // contents for open_buffer
  void* map_ = nullptr;
  size_t map_size_ = 0;
  SafetensorsHeader header_;
  std::unordered_map<std::string_view, size_t> index_;
};

// One tensor to write: `data` points at byte_size == numel * dtype_size bytes, row-major, little-endian.
struct TensorView {
  std::string name;
  Dtype dtype = Dtype::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  uint64_t byte_size = 0;
};

// Writes a safetensors file the way the reference writer does: header padded with spaces to a multiple of
// 8 bytes, tensors laid out contiguously sorted by descending dtype size then name (so every tensor is
// aligned to its element size), "__metadata__" only when non-empty. Writes `path + ".tmp"`, fsyncs and
// renames it over `path`: `path` is either the old file or the complete new one. Bad input (duplicate or
// reserved name, size/shape mismatch) is kInvalidArgument; write failures are kIoError naming the path.
Status write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                         const std::map<std::string, std::string>& metadata);

// The same bytes as write_safetensors, in memory (network bodies).
Result<std::string> serialize_safetensors(const std::vector<TensorView>& tensors,
                                          const std::map<std::string, std::string>& metadata);

}  // namespace netdist::io
