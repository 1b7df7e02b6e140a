// Internal to io/: the JPEG and WebP halves of image_decode.h (image_jpeg.cpp, image_webp.cpp). Each is
// built with its library or, where CMake did not find it, as a stub whose every call fails naming the
// missing support. `truncated_header` is set when the bytes end inside the headers (the file reader then
// retries with the whole file).
#pragma once

#include <string>
#include <string_view>

#include "io/image_decode.h"

namespace netdist::io::detail {

bool jpeg_supported();
Result<ImageHeader> jpeg_header(std::string_view bytes, const std::string& what, bool* truncated_header);
Result<DecodedImage> jpeg_decode(std::string_view bytes, const std::string& what,
                                 const DecodeOptions& options);

bool webp_supported();
Result<ImageHeader> webp_header(std::string_view bytes, const std::string& what, bool* truncated_header);
Result<DecodedImage> webp_decode(std::string_view bytes, const std::string& what,
                                 const DecodeOptions& options);

// invalid_argument naming `what` when a side exceeds kMaxImageSide or frames * width * height exceeds
// kMaxImagePixels (the pixels would not fit in memory, or the file is a decompression bomb).
Status check_image_size(const std::string& what, const char* format, long long width, long long height,
                        long long frames);

}  // namespace netdist::io::detail
