// The few Pillow image operations Ultimate SD Upscale runs on its 8-bit images, reimplemented so that the
// pixels are Pillow's: Image.new/crop/paste, resize (BICUBIC, LANCZOS: separable 8-bit passes with 22-bit
// fixed-point coefficients, horizontal first, a pass only for an axis whose size changes), GaussianBlur
// (three box-blur passes per axis with PIL's fractional radius and 24-bit fixed point), linear_gradient,
// radial_gradient, rotate by a multiple of 90° (square images), ImageOps.invert, getbbox, and the
// paste-with-mask + alpha_composite sequence USDU uses to put a redrawn tile back. Checked bit for bit
// against Pillow 9.4 (pil_ops_test.cpp, tests/data/usdu/).
//
// Layout: PilImage is row-major, channels interleaved (1 = mode "L", 3 = mode "RGB"), uint8.
// No libtorch here. Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace netdist::nodes {

struct PilImage {
  int64_t width = 0, height = 0, channels = 1;
  std::vector<uint8_t> pixels;

  uint8_t& at(int64_t x, int64_t y, int64_t c = 0) { return pixels[(y * width + x) * channels + c]; }
  uint8_t at(int64_t x, int64_t y, int64_t c = 0) const { return pixels[(y * width + x) * channels + c]; }
};

// A PIL box: left, upper, right, lower; right and lower exclusive.
struct PilBox {
  int64_t x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  int64_t width() const { return x2 - x1; }
  int64_t height() const { return y2 - y1; }
  bool operator==(const PilBox&) const = default;
};

enum class PilFilter { kBicubic, kLanczos };

// Image.new(mode, (width, height), fill).
PilImage pil_new(int64_t width, int64_t height, int64_t channels, uint8_t fill = 0);
// One pass of Pillow's 8-bit resampling (precompute_coeffs, normalize_coeffs_8bpc, ImagingResampleHorizontal
// or Vertical): `lines` lines of in_len samples → out_len samples per line; strides in elements (in_step
// between samples, in_line between lines; likewise out_*). Also nodes/upscale.cpp's lanczos.
void pil_resample_pass(const uint8_t* in, uint8_t* out, int64_t lines, int64_t in_len, int64_t out_len,
                       int64_t in_step, int64_t in_line, int64_t out_step, int64_t out_line,
                       PilFilter filter);
// Image.resize((width, height), filter); the same size gives a copy. Sizes must be positive.
PilImage pil_resize(const PilImage& image, int64_t width, int64_t height, PilFilter filter);
// Image.crop(box): pixels outside the image are 0.
PilImage pil_crop(const PilImage& image, const PilBox& box);
// Image.paste(src, (x, y)) without a mask, clipped to the destination. Same channel count.
void pil_paste(PilImage& dst, const PilImage& src, int64_t x, int64_t y);
// ImageDraw.rectangle((x1, y1, x2, y2), fill): both corners inclusive, clipped.
void pil_fill_rectangle(PilImage& image, int64_t x1, int64_t y1, int64_t x2, int64_t y2, uint8_t fill);
// ImageFilter.GaussianBlur(radius) on an "L" image; radius 0 gives a copy.
PilImage pil_gaussian_blur(const PilImage& image, double radius);
// Image.linear_gradient("L") and Image.radial_gradient("L"): 256×256.
PilImage pil_linear_gradient();
PilImage pil_radial_gradient();
// Image.rotate(degrees) for degrees 90, 180 or 270 of a square image (counter-clockwise, PIL's transpose).
PilImage pil_rotate(const PilImage& image, int degrees);
// ImageOps.invert.
PilImage pil_invert(const PilImage& image);
// Image.getbbox(): the box of the non-zero pixels, none when all are zero.
std::optional<PilBox> pil_getbbox(const PilImage& image);

// USDU's "put the tile back" on an RGB image: a transparent RGBA canvas gets `tile` pasted at (box.x1,
// box.y1) with alpha = the mask, then image.convert("RGBA").alpha_composite(canvas).convert("RGB"). `tile`
// (RGB) and `mask` ("L": the full-image mask cropped to the box) are box.width() × box.height(). Pixels
// outside the box, or where the mask is 0, are unchanged.
void pil_composite_tile(PilImage& image, const PilImage& tile, const PilBox& box, const PilImage& mask);

}  // namespace netdist::nodes
