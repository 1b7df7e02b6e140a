// safetensors ↔ at::Tensor: loading checkpoints and latents, saving and serialising weight maps.
//
// Loaded tensors are CPU tensors. Where the stored dtype has a libtorch equivalent and the data is aligned
// to its element size, a tensor is a zero-copy view into the file's mapping (or buffer), and the view keeps
// the SafetensorsFile alive; copy before writing to it (writes stay private and never reach the file, but
// are seen by other views of the same load). dtype mapping, file → tensor:
//   BOOL→kBool (bytes other than 0/1 are corruption), U8→kByte, I8→kChar, I16→kShort, I32→kInt,
//   I64→kLong, F16→kHalf, BF16→kBFloat16, F32→kFloat, F64→kDouble (kept as double),
//   U16→kInt and U32→kLong (widened copies), U64→kLong (copy; a value above INT64_MAX is kUnsupported),
//   F8_E4M3/F8_E5M2→kHalf (exact upcast copies).
// Saving maps kBool, kByte, kChar, kShort, kInt, kLong, kHalf, kBFloat16, kFloat, kDouble back to the
// first ten file dtypes; tensors on any device are copied to contiguous CPU memory first.
// Thread-safety: the functions are reentrant; tensors sharing one file may be read from any thread.
#pragma once

#include <functional>

#include <cstdint>
#include <map>
#include <string>

#include "core/status.h"
#include "engine/runtime/weights.h"
#include "io/safetensors.h"

namespace netdist::runtime {

enum class LoadDtype {
  kAsStored,  // the mapping above
  kFloat32,   // as stored, then every floating tensor converted to kFloat (copies)
};

// Loads every tensor of the safetensors file at `path`. Errors name the file and the tensor.
Result<WeightMap> load_safetensors(const std::string& path, LoadDtype policy = LoadDtype::kAsStored);

// Tensors of an already opened file; zero-copy views keep `file` alive.
Result<WeightMap> weights_from_file(const std::shared_ptr<io::SafetensorsFile>& file,
                                    LoadDtype policy = LoadDtype::kAsStored);

// Loads from a whole safetensors file held in memory (a network body). `what` names it in messages.
Result<WeightMap> weights_from_buffer(std::string bytes, const std::string& what,
                                      LoadDtype policy = LoadDtype::kAsStored);

// Writes `weights` atomically (see io::write_safetensors). An unsupported dtype is kUnsupported naming
// the tensor; write failures are kIoError naming `path`.
Status save_safetensors(const std::string& path, const WeightMap& weights,
                        const std::map<std::string, std::string>& metadata = {});

// The bytes save_safetensors would write.
Result<std::string> weights_to_buffer(const WeightMap& weights,
                                      const std::map<std::string, std::string>& metadata = {});

// IEEE half bits of a float8 value; exact (every float8 value is representable in F16). e4m3fn NaN
// (S.1111.111) becomes a quiet half NaN with the same sign; e5m2 keeps infinities and NaN payloads.
uint16_t f8e4m3fn_to_f16_bits(uint8_t bits);
// The float8 e4m3fn code nearest to `value` (ties to the even code), saturating at ±448; NaN → 0x7F.
uint8_t f8e4m3fn_from_float(float value);
// Like save_safetensors, but every floating tensor whose name `store_f8` accepts is written as F8_E4M3
// (f8e4m3fn_from_float of its float32 value); the others as save_safetensors writes them.
Status save_safetensors_mixed(const std::string& path, const WeightMap& weights,
                              const std::map<std::string, std::string>& metadata,
                              const std::function<bool(const std::string& name)>& store_f8);
uint16_t f8e5m2_to_f16_bits(uint8_t bits);

}  // namespace netdist::runtime
