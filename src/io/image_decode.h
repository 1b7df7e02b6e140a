// Input images of any format LoadImage and /upload/mask accept: PNG (libpng, io/png.h), JPEG (libjpeg-turbo)
// and WebP (libwebp, with its demux library for animations). The format is sniffed from the bytes, never
// from the file name. Results follow what ComfyUI's LoadImage sees through PIL (`Image.open`,
// `ImageSequence`, `ImageOps.exif_transpose`, `convert("RGB")`, the `A` band as the mask). No libtorch.
// Thread-safe: no shared state.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "io/png.h"

namespace netdist::io {

enum class ImageFormat { kUnknown, kPng, kJpeg, kWebp };

// "PNG", "JPEG", "WebP" or "unknown".
const char* image_format_name(ImageFormat format);

// The format from the first bytes (PNG signature, JPEG SOI marker FF D8 FF, RIFF....WEBP), or kUnknown.
ImageFormat sniff_image_format(std::string_view bytes);

// False where this build has no decoder for the format (netdist configured without libjpeg or libwebp:
// NETDIST_IMAGE_CODECS in CMakeLists.txt); decoding such a file gives "built without JPEG support".
bool image_format_supported(ImageFormat format);

// The largest image accepted: 16384 pixels a side (as decode_png) and, over all frames together, PIL's
// DecompressionBombError limit (2 * Image.MAX_IMAGE_PIXELS).
inline constexpr int kMaxImageSide = 16384;
inline constexpr long long kMaxImagePixels = 178956970;

struct ImageHeader {
  ImageFormat format = ImageFormat::kUnknown;
  int width = 0;  // as stored, before any EXIF orientation
  int height = 0;
  bool animated = false;  // WebP with the animation flag
};

// Parses only the headers (no pixel data): the checks LoadImage's validation runs, so that a file that is
// not an image, is of an unknown or unsupported format, or has unreadable headers is refused before the
// prompt is queued. A file whose headers are fine may still fail decode_image (a truncated body).
// Errors start with `what`.
Result<ImageHeader> read_image_header(std::string_view bytes, const std::string& what);

// read_image_header on a file: reads its first 256 KiB, and the whole file only when the headers run past
// that (a JPEG with large EXIF or ICC segments). Errors start with `what` (the path where empty).
Result<ImageHeader> read_image_file_header(const std::string& path, const std::string& what = "");

struct DecodeOptions {
  bool exif_transpose = true;  // apply the EXIF Orientation tag (JPEG APP1, WebP EXIF chunk) as PIL does
  bool all_frames = true;      // every frame of an animated WebP; false: the first only
};

struct DecodedImage {
  ImageFormat format = ImageFormat::kUnknown;
  // One entry per frame (more than one only for an animated WebP), all of one size. 4 channels (RGBA)
  // where PIL's mode has an alpha band (PNG with alpha or tRNS, WebP with the alpha flag), else 3 (RGB):
  // grayscale is replicated and CMYK converted as PIL's convert("RGB") does.
  std::vector<Image8> frames;
  std::vector<PngText> text;  // PNG text chunks in file order; empty for JPEG and WebP
};

// Decodes PNG, JPEG or WebP bytes. JPEG decoding uses libjpeg's defaults, as PIL does (ISLOW integer DCT,
// fancy upsampling), so the pixels are PIL's exactly. A truncated or corrupt file is an error (ComfyUI's
// LoadImage retries with PIL's LOAD_TRUNCATED_IMAGES and renders the readable part; netdist refuses it:
// docs/api.md). Errors start with `what` and name the format and the problem.
Result<DecodedImage> decode_image(std::string_view bytes, const std::string& what,
                                  const DecodeOptions& options = {});

// The value (1..8) of the Orientation tag in EXIF data ("Exif\0\0" + TIFF, or bare TIFF), or 1 where there
// is none or the data cannot be read (PIL: no transposition).
int exif_orientation(std::string_view exif);

// Applies an EXIF orientation (2..8; anything else returns the image unchanged) as PIL's exif_transpose:
// 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90
// anticlockwise.
Image8 apply_exif_orientation(const Image8& image, int orientation);

}  // namespace netdist::io
