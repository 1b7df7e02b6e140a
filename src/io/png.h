// PNG encode/decode (libpng) with tEXt chunks, for SaveImage/PreviewImage output and LoadImage input
// (io/files.h, included here, has the whole-file read and atomic write they use).
// Pixels are 8-bit, row-major, interleaved channels (1 = grey, 3 = RGB, 4 = RGBA). No libtorch.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "io/files.h"

namespace netdist::io {

struct Image8 {
  int width = 0;
  int height = 0;
  int channels = 0;            // 1, 3 or 4
  std::vector<uint8_t> pixels;  // height * width * channels bytes
};

struct PngText {
  std::string key;    // 1..79 Latin-1 characters, as the PNG spec requires
  std::string value;  // written as tEXt (Latin-1); ComfyUI's JSON is ASCII-escaped so it fits
};

// Encodes to PNG bytes. compress_level 0..9 (ComfyUI: 4 for SaveImage, 1 for PreviewImage). Text chunks
// are written in order, before the image data, as PIL does.
Result<std::string> encode_png(const Image8& image, const std::vector<PngText>& text, int compress_level);

// Decodes PNG bytes of any bit depth / colour type to 8-bit grey, RGB or RGBA (palette → RGB(A), 16-bit →
// 8-bit). `what` names the source in error messages. Text chunks are returned in file order.
Result<std::pair<Image8, std::vector<PngText>>> decode_png(const std::string& bytes, const std::string& what);



}  // namespace netdist::io
