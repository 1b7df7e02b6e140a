#include "engine/runtime/tensor_io.h"

#include <cmath>
#include <cstring>
#include <new>
#include <optional>
#include <vector>

#include <torch/torch.h>

namespace netdist::runtime {

namespace {

using io::Dtype;

std::string where(const io::SafetensorsFile& file, const io::TensorInfo& t) {
  return file.path() + ": tensor '" + t.name + "'";
}

std::optional<at::ScalarType> view_type(Dtype dtype) {
  switch (dtype) {
    case Dtype::kBool:
      return at::kBool;
    case Dtype::kU8:
      return at::kByte;
    case Dtype::kI8:
      return at::kChar;
    case Dtype::kI16:
      return at::kShort;
    case Dtype::kI32:
      return at::kInt;
    case Dtype::kI64:
      return at::kLong;
    case Dtype::kF16:
      return at::kHalf;
    case Dtype::kBF16:
      return at::kBFloat16;
    case Dtype::kF32:
      return at::kFloat;
    case Dtype::kF64:
      return at::kDouble;
    default:
      return std::nullopt;
  }
}

std::optional<Dtype> file_dtype(at::ScalarType type) {
  switch (type) {
    case at::kBool:
      return Dtype::kBool;
    case at::kByte:
      return Dtype::kU8;
    case at::kChar:
      return Dtype::kI8;
    case at::kShort:
      return Dtype::kI16;
    case at::kInt:
      return Dtype::kI32;
    case at::kLong:
      return Dtype::kI64;
    case at::kHalf:
      return Dtype::kF16;
    case at::kBFloat16:
      return Dtype::kBF16;
    case at::kFloat:
      return Dtype::kF32;
    case at::kDouble:
      return Dtype::kF64;
    default:
      return std::nullopt;
  }
}

template <typename Stored, typename Out>
void widen(const io::TensorInfo& t, Out* out) {
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    Stored v;
    std::memcpy(&v, t.data + i * sizeof(Stored), sizeof v);
    out[i] = static_cast<Out>(v);
  }
}

Result<at::Tensor> converted_copy(const io::SafetensorsFile& file, const io::TensorInfo& t) {
  const auto cpu = at::TensorOptions().device(at::kCPU);
  const int64_t n = t.numel();
  switch (t.dtype) {
    case Dtype::kU16: {
      at::Tensor out = at::empty(t.shape, cpu.dtype(at::kInt));
      widen<uint16_t>(t, out.data_ptr<int32_t>());
      return out;
    }
    case Dtype::kU32: {
      at::Tensor out = at::empty(t.shape, cpu.dtype(at::kLong));
      widen<uint32_t>(t, out.data_ptr<int64_t>());
      return out;
    }
    case Dtype::kU64: {
      for (int64_t i = 0; i < n; ++i) {
        uint64_t v;
        std::memcpy(&v, t.data + i * 8, 8);
        if (v > static_cast<uint64_t>(INT64_MAX)) {
          return Status::unsupported(where(file, t) + ": U64 value " + std::to_string(v) + " at element " +
                                     std::to_string(i) + " does not fit int64");
        }
      }
      at::Tensor out = at::empty(t.shape, cpu.dtype(at::kLong));
      widen<uint64_t>(t, out.data_ptr<int64_t>());
      return out;
    }
    case Dtype::kF8E4M3:
    case Dtype::kF8E5M2: {
      at::Tensor out = at::empty(t.shape, cpu.dtype(at::kHalf));
      auto* dst = out.data_ptr<at::Half>();
      const bool e4m3 = t.dtype == Dtype::kF8E4M3;
      for (int64_t i = 0; i < n; ++i) {
        uint16_t bits = e4m3 ? f8e4m3fn_to_f16_bits(t.data[i]) : f8e5m2_to_f16_bits(t.data[i]);
        dst[i] = at::Half(bits, at::Half::from_bits());
      }
      return out;
    }
    default:
      break;
  }
  return Status::internal(where(file, t) + ": no conversion for dtype " +
                          std::string(io::dtype_name(t.dtype)));
}

Result<at::Tensor> tensor_from_info(const std::shared_ptr<io::SafetensorsFile>& file,
                                    const io::TensorInfo& t) {
  std::optional<at::ScalarType> type = view_type(t.dtype);
  if (!type) return converted_copy(*file, t);
  if (t.dtype == Dtype::kBool) {
    for (uint64_t i = 0; i < t.byte_size; ++i) {
      if (t.data[i] > 1) {
        return Status::corruption(where(*file, t) + ": BOOL element " + std::to_string(i) + " is " +
                                  std::to_string(t.data[i]) + ", not 0 or 1");
      }
    }
  }
  const auto options = at::TensorOptions().device(at::kCPU).dtype(*type);
  if (t.byte_size == 0) return at::empty(t.shape, options);
  if (reinterpret_cast<uintptr_t>(t.data) % io::dtype_size(t.dtype) == 0) {
    std::shared_ptr<io::SafetensorsFile> keep_alive = file;
    return at::from_blob(
        const_cast<uint8_t*>(t.data), t.shape, [keep_alive](void*) {}, options);
  }
  at::Tensor out = at::empty(t.shape, options);
  std::memcpy(out.data_ptr(), t.data, t.byte_size);
  return out;
}

Result<WeightMap> load_all(const std::shared_ptr<io::SafetensorsFile>& file, LoadDtype policy) {
  WeightMap out;
  out.reserve(file->tensors().size());
  for (const io::TensorInfo& t : file->tensors()) {
    ND_ASSIGN_OR_RETURN(at::Tensor tensor, tensor_from_info(file, t));
    if (policy == LoadDtype::kFloat32 && at::isFloatingType(tensor.scalar_type()) &&
        tensor.scalar_type() != at::kFloat) {
      tensor = tensor.to(at::kFloat);
    }
    out.emplace(t.name, std::move(tensor));
  }
  return out;
}

struct ViewSet {
  std::vector<at::Tensor> keep;
  std::vector<io::TensorView> views;
};

Result<ViewSet> views_of(const WeightMap& weights, const std::string& what) {
  ViewSet set;
  set.keep.reserve(weights.size());
  set.views.reserve(weights.size());
  for (const auto& [name, tensor] : weights) {
    if (!tensor.defined()) return Status::invalid_argument(what + ": tensor '" + name + "' is undefined");
    std::optional<Dtype> dtype = file_dtype(tensor.scalar_type());
    if (!dtype) {
      return Status::unsupported(what + ": tensor '" + name + "' has dtype " +
                                 std::string(c10::toString(tensor.scalar_type())) +
                                 ", which safetensors files "
                                 "written by netdist cannot hold");
    }
    at::Tensor cpu = tensor.detach().to(at::kCPU).contiguous();
    io::TensorView view;
    view.name = name;
    view.dtype = *dtype;
    view.shape.assign(cpu.sizes().begin(), cpu.sizes().end());
    view.data = cpu.data_ptr();
    view.byte_size = cpu.nbytes();
    set.views.push_back(std::move(view));
    set.keep.push_back(std::move(cpu));
  }
  return set;
}

template <typename Fn>
auto guarded(const std::string& what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return Status::out_of_memory(what + ": out of memory");
  } catch (const c10::Error& e) {
    return Status::internal(what + ": libtorch: " + e.what_without_backtrace());
  }
}

}  // namespace

uint16_t f8e4m3fn_to_f16_bits(uint8_t bits) {
  const uint16_t sign = static_cast<uint16_t>((bits & 0x80) << 8);
  const unsigned exponent = (bits >> 3) & 0xF;
  unsigned mantissa = bits & 0x7;
  if (exponent == 0xF && mantissa == 0x7) return sign | 0x7E00;
  if (exponent == 0 && mantissa == 0) return sign;
  if (exponent != 0) return static_cast<uint16_t>(sign | ((exponent + 8) << 10) | (mantissa << 7));
  // Subnormal: mantissa * 2^-9. Normalise so the leading one becomes implicit.
  int half_exponent = 15 - 6;
  while ((mantissa & 0x8) == 0) {
    mantissa <<= 1;
    --half_exponent;
  }
  return static_cast<uint16_t>(sign | (half_exponent << 10) | ((mantissa & 0x7) << 7));
}

uint16_t f8e5m2_to_f16_bits(uint8_t bits) { return static_cast<uint16_t>(bits << 8); }

Result<WeightMap> weights_from_file(const std::shared_ptr<io::SafetensorsFile>& file, LoadDtype policy) {
  return guarded(file->path(), [&] { return load_all(file, policy); });
}

Result<WeightMap> load_safetensors(const std::string& path, LoadDtype policy) {
  ND_ASSIGN_OR_RETURN(auto file, io::SafetensorsFile::open(path));
  return weights_from_file(file, policy);
}

Result<WeightMap> weights_from_buffer(std::string bytes, const std::string& what, LoadDtype policy) {
  ND_ASSIGN_OR_RETURN(auto file, io::SafetensorsFile::open_buffer(std::move(bytes), what));
  return weights_from_file(file, policy);
}

Status save_safetensors(const std::string& path, const WeightMap& weights,
                        const std::map<std::string, std::string>& metadata) {
  auto result = guarded(path, [&]() -> Result<ViewSet> { return views_of(weights, path); });
  if (!result.is_ok()) return result.status();
  return io::write_safetensors(path, result->views, metadata);
}

Result<std::string> weights_to_buffer(const WeightMap& weights,
                                      const std::map<std::string, std::string>& metadata) {
  ND_ASSIGN_OR_RETURN(ViewSet set, guarded("safetensors buffer", [&]() -> Result<ViewSet> {
                        return views_of(weights, "safetensors buffer");
                      }));
  return io::serialize_safetensors(set.views, metadata);
}

uint8_t f8e4m3fn_from_float(float value) {
  if (std::isnan(value)) return 0x7F;
  const uint8_t sign = std::signbit(value) ? 0x80 : 0x00;
  const float a = std::min(std::fabs(value), 448.0f);
  // Codes 0x00..0x7E are the non-negative finite values in increasing order: binary search on them.
  int lo = 0, hi = 0x7E;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (static_cast<float>(c10::Half(f8e4m3fn_to_f16_bits(uint8_t(mid)), c10::Half::from_bits())) <= a) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  int code = lo;
  if (code < 0x7E) {
    const float below = static_cast<float>(c10::Half(f8e4m3fn_to_f16_bits(uint8_t(code)), c10::Half::from_bits()));
    const float above = static_cast<float>(c10::Half(f8e4m3fn_to_f16_bits(uint8_t(code + 1)), c10::Half::from_bits()));
    if (a - below > above - a || (a - below == above - a && (code & 1))) code += 1;
  }
  return uint8_t(sign | code);
}

Status save_safetensors_mixed(const std::string& path, const WeightMap& weights,
                              const std::map<std::string, std::string>& metadata,
                              const std::function<bool(const std::string& name)>& store_f8) {
  WeightMap rest;
  std::vector<std::pair<std::string, at::Tensor>> f8;
  for (const auto& [name, tensor] : weights) {
    if (at::isFloatingType(tensor.scalar_type()) && store_f8(name)) {
      f8.emplace_back(name, tensor.to(at::kCPU, at::kFloat).contiguous());
    } else {
      rest[name] = tensor;
    }
  }
  auto result = guarded(path, [&]() -> Result<ViewSet> { return views_of(rest, path); });
  if (!result.is_ok()) return result.status();
  std::vector<std::vector<uint8_t>> codes(f8.size());
  for (size_t i = 0; i < f8.size(); ++i) {
    const at::Tensor& t = f8[i].second;
    const float* p = t.data_ptr<float>();
    codes[i].resize(size_t(t.numel()));
    for (int64_t k = 0; k < t.numel(); ++k) codes[i][size_t(k)] = f8e4m3fn_from_float(p[k]);
    io::TensorView v;
    v.name = f8[i].first;
    v.dtype = io::Dtype::kF8E4M3;
    v.shape.assign(t.sizes().begin(), t.sizes().end());
    v.data = codes[i].data();
    v.byte_size = codes[i].size();
    result->views.push_back(std::move(v));
  }
  return io::write_safetensors(path, result->views, metadata);
}

}  // namespace netdist::runtime
