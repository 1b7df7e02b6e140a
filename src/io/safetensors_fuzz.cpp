// libFuzzer target: arbitrary bytes as a whole safetensors file. Anything the reader accepts must have
// every tensor inside the buffer and must survive a write → read round trip unchanged.
#include <cstdlib>
#include <cstring>

#include "io/safetensors.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using netdist::io::SafetensorsFile;
  auto file = SafetensorsFile::open_buffer(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  if (!file.is_ok()) {
    check(file.status().message().rfind("fuzz: ", 0) == 0);
    return 0;
  }
  std::vector<netdist::io::TensorView> views;
  unsigned sum = 0;
  for (const auto& t : (*file)->tensors()) {
    check(t.byte_size == static_cast<uint64_t>(t.numel()) * netdist::io::dtype_size(t.dtype));
    for (uint64_t i = 0; i < t.byte_size; ++i) sum += t.data[i];
    views.push_back({t.name, t.dtype, t.shape, t.data, t.byte_size});
  }
  auto bytes = netdist::io::serialize_safetensors(views, (*file)->metadata());
  check(bytes.is_ok());
  auto again = SafetensorsFile::open_buffer(std::move(bytes).value(), "fuzz round trip");
  check(again.is_ok());
  check((*again)->metadata() == (*file)->metadata());
  check((*again)->tensors().size() == (*file)->tensors().size());
  for (const auto& t : (*file)->tensors()) {
    const auto* u = (*again)->find(t.name);
    check(u != nullptr && u->dtype == t.dtype && u->shape == t.shape && u->byte_size == t.byte_size);
    check(t.byte_size == 0 || std::memcmp(u->data, t.data, t.byte_size) == 0);
  }
  return static_cast<int>(sum & 0);
}
