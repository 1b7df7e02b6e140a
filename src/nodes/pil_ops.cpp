#include "nodes/pil_ops.h"

#include <algorithm>
#include <cmath>

#include "core/status.h"

namespace netdist::nodes {

namespace {

constexpr int kPilPrecisionBits = 32 - 8 - 2;

double pil_sinc(double x) {
  if (x == 0.0) return 1.0;
  x = x * M_PI;
  return std::sin(x) / x;
}

double pil_filter_value(PilFilter filter, double x) {
  if (filter == PilFilter::kLanczos) return (-3.0 <= x && x < 3.0) ? pil_sinc(x) * pil_sinc(x / 3) : 0.0;
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// PIL precompute_coeffs + normalize_coeffs_8bpc for one axis.
struct PilCoeffs {
  int64_t ksize = 0;
  std::vector<int64_t> xmin, count;
  std::vector<int32_t> k;  // [out, ksize]
};

PilCoeffs pil_precompute(int64_t in_size, int64_t out_size, PilFilter filter) {
  PilCoeffs c;
  const double base_support = filter == PilFilter::kLanczos ? 3.0 : 2.0;
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = base_support * filterscale;
  c.ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  c.xmin.resize(out_size);
  c.count.resize(out_size);
  c.k.assign(out_size * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int64_t xmin = static_cast<int64_t>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int64_t xmax = static_cast<int64_t>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int64_t x = 0; x < xmax; ++x) {
      w[x] = pil_filter_value(filter, (x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (int64_t x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      c.k[xx * c.ksize + x] = static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPilPrecisionBits)
                                                         : 0.5 + v * (1 << kPilPrecisionBits));
    }
    c.xmin[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

uint8_t pil_clip8(int32_t v) {
  const int32_t s = v >> kPilPrecisionBits;
  return static_cast<uint8_t>(s < 0 ? 0 : s > 255 ? 255 : s);
}

// Pillow's _gaussian_blur_radius (float arithmetic as in BoxBlur.c).
float pil_box_radius(float radius, int passes) {
  const float sigma2 = radius * radius / static_cast<float>(passes);
  const float big_l = static_cast<float>(std::sqrt(12.0 * sigma2 + 1.0));
  const float l = static_cast<float>(std::floor((big_l - 1.0) / 2.0));
  float a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2);
  a /= 6 * (sigma2 - (l + 1) * (l + 1));
  return l + a;
}

// Pillow's ImagingLineBoxBlur8 over one line of `n` samples (stride `step`), in place through `tmp`.
void pil_box_blur_line(uint8_t* line, int64_t n, int64_t step, float float_radius,
                       std::vector<uint8_t>& tmp) {
  const int radius = static_cast<int>(float_radius);
  const uint32_t ww = static_cast<uint32_t>(static_cast<float>(1u << 24) / (float_radius * 2 + 1));
  const uint32_t fw = ((1u << 24) - (radius * 2 + 1) * ww) / 2;
  const int64_t edge_a = std::min<int64_t>(radius + 1, n);
  const int64_t edge_b = std::max<int64_t>(n - radius - 1, 0);
  const int64_t lastx = n - 1;
  tmp.resize(n);
  auto in = [&](int64_t x) -> uint32_t { return line[x * step]; };
  uint32_t acc = in(0) * (radius + 1);
  for (int64_t x = 0; x < edge_a - 1; ++x) acc += in(x);
  acc += in(lastx) * static_cast<uint32_t>(radius - edge_a + 1);
  auto emit = [&](int64_t x, int64_t sub, int64_t add, int64_t left, int64_t right) {
    acc += in(add)-in(sub);
    const uint32_t bulk = acc * ww + (in(left) + in(right)) * fw;
    tmp[x] = static_cast<uint8_t>((bulk + (1u << 23)) >> 24);
  };
  if (edge_a <= edge_b) {
    for (int64_t x = 0; x < edge_a; ++x) emit(x, 0, x + radius, 0, x + radius + 1);
    for (int64_t x = edge_a; x < edge_b; ++x)
      emit(x, x - radius - 1, x + radius, x - radius - 1, x + radius + 1);
    for (int64_t x = edge_b; x <= lastx; ++x) emit(x, x - radius - 1, lastx, x - radius - 1, lastx);
  } else {
    for (int64_t x = 0; x < edge_b; ++x) emit(x, 0, x + radius, 0, x + radius + 1);
    for (int64_t x = edge_b; x < edge_a; ++x) emit(x, 0, lastx, 0, lastx);
    for (int64_t x = edge_a; x <= lastx; ++x) emit(x, x - radius - 1, lastx, x - radius - 1, lastx);
  }
  for (int64_t x = 0; x < n; ++x) line[x * step] = tmp[x];
}

}  // namespace

void pil_resample_pass(const uint8_t* in, uint8_t* out, int64_t lines, int64_t in_len, int64_t out_len,
                       int64_t in_step, int64_t in_line, int64_t out_step, int64_t out_line,
                       PilFilter filter) {
  const PilCoeffs c = pil_precompute(in_len, out_len, filter);
  for (int64_t l = 0; l < lines; ++l) {
    for (int64_t xx = 0; xx < out_len; ++xx) {
      int32_t ss = 1 << (kPilPrecisionBits - 1);
      const int32_t* k = &c.k[xx * c.ksize];
      for (int64_t x = 0; x < c.count[xx]; ++x) ss += in[l * in_line + (x + c.xmin[xx]) * in_step] * k[x];
      out[l * out_line + xx * out_step] = pil_clip8(ss);
    }
  }
}

PilImage pil_new(int64_t width, int64_t height, int64_t channels, uint8_t fill) {
  PilImage im;
  im.width = width;
  im.height = height;
  im.channels = channels;
  im.pixels.assign(static_cast<size_t>(width * height * channels), fill);
  return im;
}

PilImage pil_resize(const PilImage& image, int64_t width, int64_t height, PilFilter filter) {
  ND_ASSERT(width > 0 && height > 0 && image.width > 0 && image.height > 0, "pil_resize: empty size");
  if (width == image.width && height == image.height) return image;
  const int64_t c = image.channels;
  PilImage cur = image;
  if (width != cur.width) {
    PilImage tmp = pil_new(width, cur.height, c);
    for (int64_t ch = 0; ch < c; ++ch) {
      pil_resample_pass(cur.pixels.data() + ch, tmp.pixels.data() + ch, cur.height, cur.width, width, c,
                        cur.width * c, c, width * c, filter);
    }
    cur = std::move(tmp);
  }
  if (height != cur.height) {
    PilImage tmp = pil_new(cur.width, height, c);
    for (int64_t ch = 0; ch < c; ++ch) {
      pil_resample_pass(cur.pixels.data() + ch, tmp.pixels.data() + ch, cur.width, cur.height, height,
                        cur.width * c, c, cur.width * c, c, filter);
    }
    cur = std::move(tmp);
  }
  return cur;
}

PilImage pil_crop(const PilImage& image, const PilBox& box) {
  PilImage out =
      pil_new(std::max<int64_t>(0, box.width()), std::max<int64_t>(0, box.height()), image.channels);
  for (int64_t y = 0; y < out.height; ++y) {
    const int64_t sy = y + box.y1;
    if (sy < 0 || sy >= image.height) continue;
    for (int64_t x = 0; x < out.width; ++x) {
      const int64_t sx = x + box.x1;
      if (sx < 0 || sx >= image.width) continue;
      for (int64_t c = 0; c < image.channels; ++c) out.at(x, y, c) = image.at(sx, sy, c);
    }
  }
  return out;
}

void pil_paste(PilImage& dst, const PilImage& src, int64_t x, int64_t y) {
  ND_ASSERT(dst.channels == src.channels, "pil_paste: channel counts differ");
  for (int64_t sy = 0; sy < src.height; ++sy) {
    const int64_t dy = sy + y;
    if (dy < 0 || dy >= dst.height) continue;
    for (int64_t sx = 0; sx < src.width; ++sx) {
      const int64_t dx = sx + x;
      if (dx < 0 || dx >= dst.width) continue;
      for (int64_t c = 0; c < src.channels; ++c) dst.at(dx, dy, c) = src.at(sx, sy, c);
    }
  }
}

void pil_fill_rectangle(PilImage& image, int64_t x1, int64_t y1, int64_t x2, int64_t y2, uint8_t fill) {
  for (int64_t y = std::max<int64_t>(0, y1); y <= std::min(y2, image.height - 1); ++y) {
    for (int64_t x = std::max<int64_t>(0, x1); x <= std::min(x2, image.width - 1); ++x) {
      for (int64_t c = 0; c < image.channels; ++c) image.at(x, y, c) = fill;
    }
  }
}

PilImage pil_gaussian_blur(const PilImage& image, double radius) {
  ND_ASSERT(image.channels == 1, "pil_gaussian_blur: only mode L");
  PilImage out = image;
  if (radius == 0 || image.width == 0 || image.height == 0) return out;
  constexpr int kPasses = 3;
  const float box = pil_box_radius(static_cast<float>(radius), kPasses);
  std::vector<uint8_t> tmp;
  for (int p = 0; p < kPasses; ++p) {
    for (int64_t y = 0; y < out.height; ++y) pil_box_blur_line(&out.at(0, y), out.width, 1, box, tmp);
  }
  for (int p = 0; p < kPasses; ++p) {
    for (int64_t x = 0; x < out.width; ++x) pil_box_blur_line(&out.at(x, 0), out.height, out.width, box, tmp);
  }
  return out;
}

PilImage pil_linear_gradient() {
  PilImage g = pil_new(256, 256, 1);
  for (int64_t y = 0; y < 256; ++y) std::fill_n(&g.at(0, y), 256, static_cast<uint8_t>(y));
  return g;
}

PilImage pil_radial_gradient() {
  PilImage g = pil_new(256, 256, 1);
  for (int64_t y = 0; y < 256; ++y) {
    for (int64_t x = 0; x < 256; ++x) {
      int d = static_cast<int>(
          std::sqrt(static_cast<double>((x - 128) * (x - 128) + (y - 128) * (y - 128)) * 2.0));
      g.at(x, y) = static_cast<uint8_t>(d >= 255 ? 255 : d);
    }
  }
  return g;
}

PilImage pil_rotate(const PilImage& image, int degrees) {
  ND_ASSERT(image.width == image.height, "pil_rotate: square images only");
  ND_ASSERT(degrees == 90 || degrees == 180 || degrees == 270, "pil_rotate: multiples of 90 only");
  const int64_t n = image.width;
  PilImage out = pil_new(n, n, image.channels);
  for (int64_t y = 0; y < n; ++y) {
    for (int64_t x = 0; x < n; ++x) {
      int64_t sx = 0, sy = 0;
      if (degrees == 90) {
        sx = n - 1 - y;
        sy = x;
      } else if (degrees == 180) {
        sx = n - 1 - x;
        sy = n - 1 - y;
      } else {
        sx = y;
        sy = n - 1 - x;
      }
      for (int64_t c = 0; c < image.channels; ++c) out.at(x, y, c) = image.at(sx, sy, c);
    }
  }
  return out;
}

PilImage pil_invert(const PilImage& image) {
  PilImage out = image;
  for (uint8_t& v : out.pixels) v = static_cast<uint8_t>(255 - v);
  return out;
}

std::optional<PilBox> pil_getbbox(const PilImage& image) {
  PilBox b{image.width, image.height, -1, -1};
  bool any = false;
  for (int64_t y = 0; y < image.height; ++y) {
    for (int64_t x = 0; x < image.width; ++x) {
      bool nonzero = false;
      for (int64_t c = 0; c < image.channels; ++c) nonzero = nonzero || image.at(x, y, c) != 0;
      if (!nonzero) continue;
      any = true;
      b.x1 = std::min(b.x1, x);
      b.y1 = std::min(b.y1, y);
      b.x2 = std::max(b.x2, x + 1);
      b.y2 = std::max(b.y2, y + 1);
    }
  }
  if (!any) return std::nullopt;
  return b;
}

void pil_composite_tile(PilImage& image, const PilImage& tile, const PilBox& box, const PilImage& mask) {
  ND_ASSERT(image.channels == 3 && tile.channels == 3 && mask.channels == 1, "pil_composite_tile: modes");
  ND_ASSERT(tile.width == box.width() && tile.height == box.height() && mask.width == box.width() &&
                mask.height == box.height(),
            "pil_composite_tile: sizes");
  constexpr uint32_t kBits = 7;
  auto div255 = [](uint32_t a) { return ((a >> 8) + a) >> 8; };
  for (int64_t y = 0; y < box.height(); ++y) {
    const int64_t iy = y + box.y1;
    if (iy < 0 || iy >= image.height) continue;
    for (int64_t x = 0; x < box.width(); ++x) {
      const int64_t ix = x + box.x1;
      const uint32_t a = mask.at(x, y);
      if (a == 0 || ix < 0 || ix >= image.width) continue;
      // ImagingAlphaComposite with an opaque destination.
      const uint32_t blend = 255u * (255u - a);
      const uint32_t outa255 = a * 255u + blend;
      const uint32_t coef1 = a * 255u * 255u * (1u << kBits) / outa255;
      const uint32_t coef2 = 255u * (1u << kBits) - coef1;
      for (int64_t c = 0; c < 3; ++c) {
        const uint32_t t = tile.at(x, y, c) * coef1 + image.at(ix, iy, c) * coef2;
        image.at(ix, iy, c) = static_cast<uint8_t>(div255(t + (0x80u << kBits)) >> kBits);
      }
    }
  }
}

}  // namespace netdist::nodes
