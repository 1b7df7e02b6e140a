// libFuzzer target: arbitrary bytes as an input image (PNG, JPEG or WebP, sniffed). Neither the header check
// nor the decoder may crash, exit or leak; every error names the source; a decoded image has consistent
// sizes, 3 or 4 channels and frames of one size; the header check accepts whatever the decoder accepts.
#include <cstdlib>
#include <string_view>

#include "io/image_decode.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace netdist::io;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto header = read_image_header(bytes, "fuzz");
  if (!header.is_ok()) check(header.status().message().rfind("fuzz: ", 0) == 0);
  // A few bytes can declare a 16384x10922 image; decoding it only costs time and memory (as it would in
  // PIL), so the fuzzer skips such headers and spends its runs on the parsers.
  if (header.is_ok() && static_cast<long long>(header->width) * header->height > (1 << 22)) return 0;
  auto decoded = decode_image(bytes, "fuzz");
  if (!decoded.is_ok()) {
    check(decoded.status().message().rfind("fuzz: ", 0) == 0);
    return 0;
  }
  check(header.is_ok() && header->format == decoded->format);
  check(!decoded->frames.empty());
  unsigned sum = 0;
  for (const Image8& im : decoded->frames) {
    check(im.channels == 3 || im.channels == 4);
    check(im.width == decoded->frames[0].width && im.height == decoded->frames[0].height);
    check(im.channels == decoded->frames[0].channels);
    check(im.width > 0 && im.height > 0 && im.width <= kMaxImageSide && im.height <= kMaxImageSide);
    check(im.pixels.size() == size_t(im.width) * im.height * im.channels);
    for (uint8_t v : im.pixels) sum += v;
  }
  const Image8& first = decoded->frames[0];
  const bool swapped = first.width != header->width;
  check(swapped ? first.width == header->height && first.height == header->width
                : first.height == header->height);
  return static_cast<int>(sum & 0);
}
