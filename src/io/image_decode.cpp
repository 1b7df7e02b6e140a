#include "io/image_decode.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "io/image_codecs.h"

namespace netdist::io {

namespace {

constexpr size_t kHeaderPrefix = 256 * 1024;

uint32_t be32(std::string_view b, size_t at) {
  return uint32_t(uint8_t(b[at])) << 24 | uint32_t(uint8_t(b[at + 1])) << 16 |
         uint32_t(uint8_t(b[at + 2])) << 8 | uint32_t(uint8_t(b[at + 3]));
}

// The PNG signature and its IHDR chunk (always first). libpng checks the rest when decoding.
Result<ImageHeader> png_header(std::string_view bytes, const std::string& what, bool* truncated_header) {
  if (bytes.size() < 8 + 8 + 13) {
    *truncated_header = true;
    return Status::corruption(what + ": PNG file is truncated (it ends inside its header)");
  }
  if (be32(bytes, 8) != 13 || bytes.substr(12, 4) != "IHDR")
    return Status::corruption(what + ": corrupt PNG: the first chunk is not IHDR");
  ImageHeader h;
  h.format = ImageFormat::kPng;
  const uint32_t width = be32(bytes, 16), height = be32(bytes, 20);
  if (width == 0 || height == 0) return Status::corruption(what + ": corrupt PNG: the image has no pixels");
  ND_RETURN_IF_ERROR(detail::check_image_size(what, "PNG", width, height, 1));
  h.width = int(width);
  h.height = int(height);
  return h;
}

Result<DecodedImage> png_decode(std::string_view bytes, const std::string& what) {
  ND_ASSIGN_OR_RETURN(auto decoded, decode_png(std::string(bytes), what));
  DecodedImage out;
  out.format = ImageFormat::kPng;
  out.text = std::move(decoded.second);
  Image8& im = decoded.first;
  if (im.channels == 1) {  // PIL: convert("RGB") of an "L" image replicates the grey value
    Image8 rgb{im.width, im.height, 3, std::vector<uint8_t>(im.pixels.size() * 3)};
    for (size_t p = 0; p < im.pixels.size(); ++p)
      rgb.pixels[p * 3] = rgb.pixels[p * 3 + 1] = rgb.pixels[p * 3 + 2] = im.pixels[p];
    out.frames.push_back(std::move(rgb));
  } else {
    out.frames.push_back(std::move(im));
  }
  return out;
}

std::string printable_start(std::string_view bytes) {
  std::string s;
  for (size_t i = 0; i < bytes.size() && i < 8; ++i) {
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      s += char(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      s += hex;
    }
  }
  return s;
}

Status unknown_format(std::string_view bytes, const std::string& what) {
  if (bytes.empty()) return Status::invalid_argument(what + ": the file is empty, not an image");
  return Status::invalid_argument(what + ": not a PNG, JPEG or WebP image (it starts with \"" +
                                  printable_start(bytes) + "\")");
}

Status unsupported(ImageFormat format, const std::string& what) {
  return Status::unsupported(
      what + ": this netdist was built without " + image_format_name(format) + " support (CMake found no " +
      (format == ImageFormat::kJpeg ? "libjpeg" : "libwebp") + "; see docs/dependencies.md)");
}

Result<ImageHeader> header_of(std::string_view bytes, const std::string& what, bool* truncated_header) {
  *truncated_header = false;
  const ImageFormat format = sniff_image_format(bytes);
  if (format == ImageFormat::kUnknown) return unknown_format(bytes, what);
  if (!image_format_supported(format)) return unsupported(format, what);
  if (format == ImageFormat::kPng) return png_header(bytes, what, truncated_header);
  if (format == ImageFormat::kJpeg) return detail::jpeg_header(bytes, what, truncated_header);
  return detail::webp_header(bytes, what, truncated_header);
}

uint16_t tiff16(std::string_view t, size_t at, bool big) {
  const uint8_t a = uint8_t(t[at]), b = uint8_t(t[at + 1]);
  return big ? uint16_t(a << 8 | b) : uint16_t(b << 8 | a);
}

uint32_t tiff32(std::string_view t, size_t at, bool big) {
  const uint32_t lo = tiff16(t, at + (big ? 2 : 0), big), hi = tiff16(t, at + (big ? 0 : 2), big);
  return hi << 16 | lo;
}

}  // namespace

namespace detail {

Status check_image_size(const std::string& what, const char* format, long long width, long long height,
                        long long frames) {
  if (width > kMaxImageSide || height > kMaxImageSide) {
    return Status::invalid_argument(what + ": " + format + " image of " + std::to_string(width) + "x" +
                                    std::to_string(height) + " is larger than " +
                                    std::to_string(kMaxImageSide) + " pixels a side");
  }
  if (width * height * frames > kMaxImagePixels) {
    return Status::invalid_argument(what + ": " + format + " image of " + std::to_string(frames) +
                                    " frame(s) of " + std::to_string(width) + "x" + std::to_string(height) +
                                    " has more than " + std::to_string(kMaxImagePixels) +
                                    " pixels (PIL's decompression bomb limit)");
  }
  return Status::ok();
}

}  // namespace detail

const char* image_format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::kPng:
      return "PNG";
    case ImageFormat::kJpeg:
      return "JPEG";
    case ImageFormat::kWebp:
      return "WebP";
    case ImageFormat::kUnknown:
      break;
  }
  return "unknown";
}

ImageFormat sniff_image_format(std::string_view b) {
  if (b.size() >= 8 && b.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8)) return ImageFormat::kPng;
  if (b.size() >= 3 && b.substr(0, 3) == "\xff\xd8\xff") return ImageFormat::kJpeg;
  if (b.size() >= 12 && b.substr(0, 4) == "RIFF" && b.substr(8, 4) == "WEBP") return ImageFormat::kWebp;
  return ImageFormat::kUnknown;
}

bool image_format_supported(ImageFormat format) {
  switch (format) {
    case ImageFormat::kPng:
      return true;
    case ImageFormat::kJpeg:
      return detail::jpeg_supported();
    case ImageFormat::kWebp:
      return detail::webp_supported();
    case ImageFormat::kUnknown:
      break;
  }
  return false;
}

Result<ImageHeader> read_image_header(std::string_view bytes, const std::string& what) {
  bool truncated = false;
  return header_of(bytes, what, &truncated);
}

Result<ImageHeader> read_image_file_header(const std::string& path, const std::string& what_arg) {
  const std::string& what = what_arg.empty() ? path : what_arg;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Status::not_found(what + ": no such file");
    return Status::io_error(what + ": cannot open: " + std::strerror(err));
  }
  std::string prefix(kHeaderPrefix, '\0');
  size_t got = 0;
  while (got < prefix.size()) {
    const ssize_t n = ::read(fd, prefix.data() + got, prefix.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += size_t(n);
  }
  ::close(fd);
  prefix.resize(got);
  bool truncated = false;
  Result<ImageHeader> header = header_of(prefix, what, &truncated);
  if (header.is_ok() || !truncated || got < kHeaderPrefix) return header;
  Result<std::string> whole = read_file(path);
  if (!whole.is_ok()) return Status::io_error(what + ": " + whole.status().message());
  return header_of(*whole, what, &truncated);
}

Result<DecodedImage> decode_image(std::string_view bytes, const std::string& what,
                                  const DecodeOptions& options) {
  const ImageFormat format = sniff_image_format(bytes);
  if (format == ImageFormat::kUnknown) return unknown_format(bytes, what);
  if (!image_format_supported(format)) return unsupported(format, what);
  if (format == ImageFormat::kPng) return png_decode(bytes, what);
  if (format == ImageFormat::kJpeg) return detail::jpeg_decode(bytes, what, options);
  return detail::webp_decode(bytes, what, options);
}

// PIL's Exif.load: strip "Exif\0\0", read the TIFF header and the first IFD's entries until the data ends
// (entries read before a corrupt one are kept); Orientation is tag 0x0112 with one integer value.
int exif_orientation(std::string_view exif) {
  if (exif.substr(0, 6) == std::string_view("Exif\0\0", 6)) exif.remove_prefix(6);
  if (exif.size() < 8) return 1;
  bool big;
  if (exif.substr(0, 4) == std::string_view("II*\0", 4)) {
    big = false;
  } else if (exif.substr(0, 4) == std::string_view("MM\0*", 4)) {
    big = true;
  } else {
    return 1;
  }
  const uint32_t ifd = tiff32(exif, 4, big);
  if (ifd > exif.size() || exif.size() - ifd < 2) return 1;
  const uint16_t count = tiff16(exif, ifd, big);
  for (uint32_t i = 0; i < count; ++i) {
    const size_t at = size_t(ifd) + 2 + size_t(i) * 12;
    if (at + 12 > exif.size()) break;
    if (tiff16(exif, at, big) != 0x0112) continue;
    const uint16_t type = tiff16(exif, at + 2, big);
    if (tiff32(exif, at + 4, big) != 1) return 1;
    switch (type) {
      case 1:
      case 6:
        return uint8_t(exif[at + 8]);  // BYTE, SBYTE
      case 3:
      case 8:
        return tiff16(exif, at + 8, big);  // SHORT, SSHORT
      case 4:
      case 9:
        return int(std::min<uint32_t>(tiff32(exif, at + 8, big), 9));  // LONG, SLONG
      default:
        return 1;
    }
  }
  return 1;
}

Image8 apply_exif_orientation(const Image8& in, int orientation) {
  if (orientation < 2 || orientation > 8) return in;
  const int w = in.width, h = in.height, c = in.channels;
  const bool swap = orientation >= 5;
  Image8 out{swap ? h : w, swap ? w : h, c, std::vector<uint8_t>(in.pixels.size())};
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;
      switch (orientation) {
        case 2:
          sx = w - 1 - x;
          break;  // FLIP_LEFT_RIGHT
        case 3:
          sx = w - 1 - x;
          sy = h - 1 - y;
          break;  // ROTATE_180
        case 4:
          sy = h - 1 - y;
          break;  // FLIP_TOP_BOTTOM
        case 5:
          sx = y;
          sy = x;
          break;  // TRANSPOSE
        case 6:
          sx = y;
          sy = h - 1 - x;
          break;  // ROTATE_270 (90 clockwise)
        case 7:
          sx = w - 1 - y;
          sy = h - 1 - x;
          break;  // TRANSVERSE
        case 8:
          sx = w - 1 - y;
          sy = x;
          break;  // ROTATE_90 (90 anticlockwise)
      }
      std::memcpy(&out.pixels[(size_t(y) * out.width + x) * c], &in.pixels[(size_t(sy) * w + sx) * c],
                  size_t(c));
    }
  }
  return out;
}

}  // namespace netdist::io
