#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

namespace netdist::io {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace {

constexpr std::string_view kMetadataKey = "__metadata__";

struct DtypeEntry {
  Dtype dtype;
  std::string_view name;
  size_t size;
};

constexpr DtypeEntry kDtypes[] = {
    {Dtype::kBool, "BOOL", 1}, {Dtype::kU8, "U8", 1},          {Dtype::kI8, "I8", 1},
    {Dtype::kI16, "I16", 2},   {Dtype::kU16, "U16", 2},        {Dtype::kF16, "F16", 2},
    {Dtype::kBF16, "BF16", 2}, {Dtype::kI32, "I32", 4},        {Dtype::kU32, "U32", 4},
    {Dtype::kF32, "F32", 4},   {Dtype::kF64, "F64", 8},        {Dtype::kI64, "I64", 8},
    {Dtype::kU64, "U64", 8},   {Dtype::kF8E4M3, "F8_E4M3", 1}, {Dtype::kF8E5M2, "F8_E5M2", 1},
};

std::string in_quotes(std::string_view name) {
  std::string out = "'";
  out.append(name);
  out += '\'';
  return out;
}

std::string range_string(uint64_t begin, uint64_t end) {
  std::string out = "[";
  out += std::to_string(begin);
  out += ',';
  out += std::to_string(end);
  out += ']';
  return out;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(shape[i]);
  }
  out += ']';
  return out;
}

// Product of `shape` times `item_size`, or nullopt on overflow (checked in order, as the reference does).
std::optional<uint64_t> byte_count(const std::vector<int64_t>& shape, uint64_t item_size) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return std::nullopt;
  }
  if (__builtin_mul_overflow(n, item_size, &n)) return std::nullopt;
  return n;
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Parses JSON, rejecting duplicate keys in any object (nlohmann keeps the last silently).
Result<nlohmann::json> parse_json_strict(std::string_view text, const std::string& what) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      open_objects.emplace_back();
    } else if (event == Event::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == Event::key && !open_objects.empty() && parsed.is_string()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text.begin(), text.end(), callback);
  } catch (const nlohmann::json::exception& e) {
    return Status::corruption(what + ": header is not valid JSON: " + e.what());
  }
  if (!duplicate.empty()) {
    return Status::corruption(what + ": header has duplicate key " + in_quotes(duplicate));
  }
  return root;
}

Result<uint64_t> parse_unsigned(const nlohmann::json& v, const std::string& context) {
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) {
    return Status::corruption(context + " must be a non-negative integer, got " + v.dump());
  }
  return v.get<uint64_t>();
}

Result<TensorInfo> parse_tensor_entry(const std::string& name, const nlohmann::json& entry,
                                      uint64_t buffer_size, const std::string& what) {
  const std::string where = what + ": tensor " + in_quotes(name);
  if (!entry.is_object()) return Status::corruption(where + ": entry is not a JSON object");
  TensorInfo info;
  info.name = name;

  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end()) return Status::corruption(where + ": missing \"dtype\"");
  if (!dtype_it->is_string()) return Status::corruption(where + ": \"dtype\" is not a string");
  const auto& dtype_text = dtype_it->get_ref<const std::string&>();
  std::optional<Dtype> dtype = dtype_from_name(dtype_text);
  if (!dtype) return Status::unsupported(where + ": unsupported dtype " + in_quotes(dtype_text));
  info.dtype = *dtype;

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end()) return Status::corruption(where + ": missing \"shape\"");
  if (!shape_it->is_array()) return Status::corruption(where + ": \"shape\" is not an array");
  for (const auto& dim : *shape_it) {
    ND_ASSIGN_OR_RETURN(uint64_t d, parse_unsigned(dim, where + ": shape dimension"));
    if (d > static_cast<uint64_t>(INT64_MAX)) {
      return Status::corruption(where + ": shape dimension " + std::to_string(d) + " is too large");
    }
    info.shape.push_back(static_cast<int64_t>(d));
  }

  auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end()) return Status::corruption(where + ": missing \"data_offsets\"");
  if (!offsets_it->is_array() || offsets_it->size() != 2) {
    return Status::corruption(where + ": \"data_offsets\" is not an array of two integers");
  }
  ND_ASSIGN_OR_RETURN(uint64_t begin, parse_unsigned((*offsets_it)[0], where + ": data_offsets[0]"));
  ND_ASSIGN_OR_RETURN(uint64_t end, parse_unsigned((*offsets_it)[1], where + ": data_offsets[1]"));
  if (end < begin) {
    return Status::corruption(where + ": data_offsets " + range_string(begin, end) +
                              " end before they begin");
  }
  if (end > buffer_size) {
    return Status::corruption(where + ": data_offsets " + range_string(begin, end) +
                              " run past the data buffer of " + std::to_string(buffer_size) +
                              " bytes (file truncated?)");
  }
  std::optional<uint64_t> expected = byte_count(info.shape, dtype_size(info.dtype));
  if (!expected) {
    return Status::corruption(where + ": shape " + shape_string(info.shape) + " overflows the element count");
  }
  if (*expected != end - begin) {
    return Status::corruption(where + ": shape " + shape_string(info.shape) + " of " +
                              std::string(dtype_text) + " needs " + std::to_string(*expected) +
                              " bytes, data_offsets " + range_string(begin, end) + " hold " +
                              std::to_string(end - begin));
  }
  info.offset = begin;
  info.byte_size = end - begin;
  return info;
}

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

std::string_view dtype_name(Dtype dtype) {
  for (const auto& e : kDtypes) {
    if (e.dtype == dtype) return e.name;
  }
  ND_ASSERT(false, "dtype_name: unknown Dtype value " + std::to_string(static_cast<int>(dtype)));
  return {};
}

size_t dtype_size(Dtype dtype) {
  for (const auto& e : kDtypes) {
    if (e.dtype == dtype) return e.size;
  }
  ND_ASSERT(false, "dtype_size: unknown Dtype value " + std::to_string(static_cast<int>(dtype)));
  return 0;
}

std::optional<Dtype> dtype_from_name(std::string_view name) {
  for (const auto& e : kDtypes) {
    if (e.name == name) return e.dtype;
  }
  return std::nullopt;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Result<SafetensorsHeader> SafetensorsFile::parse_header(std::string_view header, uint64_t buffer_size,
                                                        const std::string& what) {
  if (header.empty() || header.front() != '{') {
    return Status::corruption(what + ": header does not start with '{'");
  }
  // nlohmann stops at a NUL byte as if the input ended there; JSON never contains one.
  if (size_t nul = header.find('\0'); nul != std::string_view::npos) {
    return Status::corruption(what + ": header is not valid JSON: NUL byte at offset " + std::to_string(nul));
  }
  ND_ASSIGN_OR_RETURN(nlohmann::json root, parse_json_strict(header, what));
  if (!root.is_object()) return Status::corruption(what + ": header is not a JSON object");

  SafetensorsHeader out;
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == kMetadataKey) {
      if (!it.value().is_object())
        return Status::corruption(what + ": \"__metadata__\" is not a JSON object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) {
          return Status::corruption(what + ": \"__metadata__\" value for " + in_quotes(m.key()) +
                                    " is not a string");
        }
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    ND_ASSIGN_OR_RETURN(TensorInfo info, parse_tensor_entry(it.key(), it.value(), buffer_size, what));
    out.tensors.push_back(std::move(info));
  }

  std::sort(out.tensors.begin(), out.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    if (a.offset != b.offset) return a.offset < b.offset;
    return a.byte_size < b.byte_size;
  });
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : out.tensors) {
    if (t.offset < covered) {
      return Status::corruption(what + ": tensor " + in_quotes(t.name) + " at data_offsets " +
                                range_string(t.offset, t.offset + t.byte_size) + " overlaps tensor " +
                                in_quotes(previous->name));
    }
    if (t.offset > covered) {
      return Status::corruption(what + ": hole of " + std::to_string(t.offset - covered) +
                                " bytes in the data buffer before tensor " + in_quotes(t.name));
    }
    covered = t.offset + t.byte_size;
    previous = &t;
  }
  if (covered != buffer_size) {
    return Status::corruption(what + ": " + std::to_string(buffer_size - covered) +
                              " trailing bytes after the last tensor (data buffer is " +
                              std::to_string(buffer_size) + " bytes, tensors cover " +
                              std::to_string(covered) + ")");
  }
  return out;
}

Result<std::shared_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return Status::not_found(path + ": no such file");
    return Status::io_error(path + ": cannot open: " + errno_text(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Status::io_error(path + ": cannot stat: " + errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::invalid_argument(path + ": not a regular file");
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return Status::corruption(path + ": file is " + std::to_string(size) +
                              " bytes, too short for the 8-byte header length");
  }
  void* map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);
  if (map == MAP_FAILED) return Status::io_error(path + ": cannot mmap: " + errno_text(err));

  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->map_ = map;
  file->map_size_ = size;
  ND_RETURN_IF_ERROR(file->init(static_cast<const uint8_t*>(map), size));
  return file;
}

Result<std::shared_ptr<SafetensorsFile>> SafetensorsFile::open_buffer(std::string bytes, std::string what) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = std::move(what);
  file->owned_ = std::move(bytes);
  ND_RETURN_IF_ERROR(file->init(reinterpret_cast<const uint8_t*>(file->owned_.data()), file->owned_.size()));
  return file;
}

Status SafetensorsFile::init(const uint8_t* bytes, uint64_t size) {
  if (size < 8) {
    return Status::corruption(path_ + ": file is " + std::to_string(size) +
                              " bytes, too short for the 8-byte header length");
  }
  const uint64_t header_size = read_le64(bytes);
  if (header_size > kMaxHeaderSize) {
    return Status::corruption(path_ + ": header length " + std::to_string(header_size) +
                              " exceeds the limit of " + std::to_string(kMaxHeaderSize) + " bytes");
  }
  if (header_size > size - 8) {
    return Status::corruption(path_ + ": header length " + std::to_string(header_size) +
                              " but the file has only " + std::to_string(size - 8) +
                              " bytes after the length (truncated)");
  }
  std::string_view header(reinterpret_cast<const char*>(bytes + 8), header_size);
  const uint64_t data_start = 8 + header_size;
  ND_ASSIGN_OR_RETURN(header_, parse_header(header, size - data_start, path_));
  index_.reserve(header_.tensors.size());
  for (size_t i = 0; i < header_.tensors.size(); ++i) {
    TensorInfo& t = header_.tensors[i];
    t.data = bytes + data_start + t.offset;
    index_.emplace(t.name, i);
  }
  return Status::ok();
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(header_.tensors.size());
  for (const auto& t : header_.tensors) out.push_back(t.name);
  return out;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

namespace {

// The padded header (length prefix included) and the tensors in layout order.
struct Layout {
  std::string prefix;
  std::vector<const TensorView*> order;
};

Result<Layout> plan_layout(const std::vector<TensorView>& tensors,
                           const std::map<std::string, std::string>& metadata, const std::string& what) {
  Layout layout;
  std::set<std::string_view> seen;
  for (const TensorView& t : tensors) {
    const std::string where = what + ": tensor " + in_quotes(t.name);
    if (t.name == kMetadataKey) return Status::invalid_argument(where + ": name is reserved");
    if (!seen.insert(t.name).second) return Status::invalid_argument(where + ": duplicate name");
    if (!dtype_from_name(dtype_name(t.dtype))) return Status::invalid_argument(where + ": bad dtype");
    std::optional<uint64_t> expected = byte_count(t.shape, dtype_size(t.dtype));
    if (!expected) return Status::invalid_argument(where + ": bad shape " + shape_string(t.shape));
    if (*expected != t.byte_size) {
      return Status::invalid_argument(
          where + ": shape " + shape_string(t.shape) + " of " + std::string(dtype_name(t.dtype)) + " needs " +
          std::to_string(*expected) + " bytes, got " + std::to_string(t.byte_size));
    }
    if (t.byte_size > 0 && t.data == nullptr) return Status::invalid_argument(where + ": null data");
    layout.order.push_back(&t);
  }
  std::sort(layout.order.begin(), layout.order.end(), [](const TensorView* a, const TensorView* b) {
    size_t sa = dtype_size(a->dtype), sb = dtype_size(b->dtype);
    if (sa != sb) return sa > sb;
    return a->name < b->name;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[std::string(kMetadataKey)] = metadata;
  uint64_t offset = 0;
  for (const TensorView* t : layout.order) {
    nlohmann::ordered_json entry;
    entry["dtype"] = std::string(dtype_name(t->dtype));
    entry["shape"] = t->shape;
    entry["data_offsets"] = {offset, offset + t->byte_size};
    header[t->name] = std::move(entry);
    offset += t->byte_size;
  }
  std::string json;
  try {
    json = header.dump();
  } catch (const nlohmann::json::exception& e) {
    return Status::invalid_argument(what +
                                    ": a tensor name or metadata string is not valid UTF-8: " + e.what());
  }
  json.append((8 - json.size() % 8) % 8, ' ');
  if (json.size() > kMaxHeaderSize) {
    return Status::invalid_argument(what + ": header of " + std::to_string(json.size()) +
                                    " bytes exceeds the limit");
  }
  const uint64_t n = json.size();
  layout.prefix.resize(8);
  std::memcpy(layout.prefix.data(), &n, sizeof n);
  layout.prefix += json;
  return layout;
}

Status write_all(int fd, const void* data, uint64_t size, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, std::min<uint64_t>(size, 1u << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::io_error(path + ": write failed: " + errno_text(errno));
    }
    if (n == 0) return Status::io_error(path + ": write made no progress");
    p += n;
    size -= static_cast<uint64_t>(n);
  }
  return Status::ok();
}

Status write_file_contents(int fd, const Layout& layout, const std::string& path) {
  ND_RETURN_IF_ERROR(write_all(fd, layout.prefix.data(), layout.prefix.size(), path));
  for (const TensorView* t : layout.order) ND_RETURN_IF_ERROR(write_all(fd, t->data, t->byte_size, path));
  if (::fsync(fd) != 0) return Status::io_error(path + ": fsync failed: " + errno_text(errno));
  return Status::ok();
}

}  // namespace

Status write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  ND_ASSIGN_OR_RETURN(Layout layout, plan_layout(tensors, metadata, path));
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::io_error(path + ": cannot create " + tmp + ": " + errno_text(errno));
  Status s = write_file_contents(fd, layout, path);
  if (::close(fd) != 0 && s.is_ok()) s = Status::io_error(path + ": close failed: " + errno_text(errno));
  if (s.is_ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = Status::io_error(path + ": cannot rename " + tmp + " into place: " + errno_text(errno));
  }
  if (!s.is_ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  if (dir.empty()) dir = "/";
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return Status::ok();
}

Result<std::string> serialize_safetensors(const std::vector<TensorView>& tensors,
                                          const std::map<std::string, std::string>& metadata) {
  ND_ASSIGN_OR_RETURN(Layout layout, plan_layout(tensors, metadata, "safetensors buffer"));
  std::string out = std::move(layout.prefix);
  uint64_t total = out.size();
  for (const TensorView* t : layout.order) total += t->byte_size;
  out.reserve(total);
  for (const TensorView* t : layout.order) {
    if (t->byte_size > 0) out.append(static_cast<const char*>(t->data), t->byte_size);
  }
  return out;
}

}  // namespace netdist::io
