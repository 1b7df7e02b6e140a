// pil_ops against Pillow 9.4's pixels (tests/data/usdu/*.golden, made by tests/data/usdu/generate.py with the
// same inputs): GaussianBlur (both box-blur edge branches), BICUBIC resizes of the gradients USDU's seam fix
// masks are made of, LANCZOS down and up, and the masked alpha composite that puts a tile back.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "netdist/source_dir.h"
#include "nodes/pil_ops.h"

namespace netdist::nodes {
namespace {

// NAME.golden of tests/data/usdu: "frames width height channels", then hex rows.
PilImage pil_golden(const std::string& name) {
  std::ifstream in(std::filesystem::path(NETDIST_SOURCE_DIR) / "tests" / "data" / "usdu" /
                   (name + ".golden"));
  int64_t frames = 0, w = 0, h = 0, c = 0;
  in >> frames >> w >> h >> c;
  PilImage im = pil_new(w, h, c);
  im.pixels.clear();
  for (std::string hex; in >> hex;) {
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
      im.pixels.push_back(uint8_t(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  EXPECT_EQ(im.pixels.size(), size_t(w * h * c)) << name;
  return im;
}

// generate.py's pattern().
PilImage pil_pattern(int64_t w, int64_t h, int64_t channels, int seed) {
  PilImage im = pil_new(w, h, channels);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t b = 0; b < channels; ++b)
        im.at(x, y, b) = uint8_t((x * 37 + y * 71 + b * 101 + seed * 53 + (b % 2 ? x * y * 13 : 0)) % 256);
  return im;
}

void expect_same(const PilImage& got, const PilImage& want, const std::string& what) {
  ASSERT_EQ(got.width, want.width) << what;
  ASSERT_EQ(got.height, want.height) << what;
  ASSERT_EQ(got.channels, want.channels) << what;
  int64_t diffs = 0, first = -1;
  for (size_t i = 0; i < got.pixels.size(); ++i) {
    if (got.pixels[i] != want.pixels[i]) {
      if (first < 0) first = int64_t(i);
      ++diffs;
    }
  }
  EXPECT_EQ(diffs, 0) << what << ": first at byte " << first << " got "
                      << (first >= 0 ? int(got.pixels[first]) : 0) << " want "
                      << (first >= 0 ? int(want.pixels[first]) : 0);
}

TEST(PilOps, GaussianBlurMatchesPillow) {
  PilImage mask = pil_new(37, 29, 1);
  pil_fill_rectangle(mask, 5, 4, 20, 17, 255);
  pil_paste(mask, pil_pattern(6, 5, 1, 1), 25, 20);
  for (int r : {1, 2, 4, 8, 13})
    expect_same(pil_gaussian_blur(mask, r), pil_golden("blur_" + std::to_string(r)),
                "blur " + std::to_string(r));
  expect_same(pil_gaussian_blur(pil_pattern(5, 40, 1, 2), 8), pil_golden("blur_narrow_8"), "narrow blur");
  expect_same(pil_gaussian_blur(mask, 0), mask, "radius 0 copies");
}

TEST(PilOps, BicubicGradientsMatchPillow) {
  const PilImage g = pil_linear_gradient();
  expect_same(pil_resize(g, 64, 16, PilFilter::kBicubic), pil_golden("bicubic_gradient"), "gradient");
  expect_same(pil_resize(pil_rotate(g, 180), 50, 21, PilFilter::kBicubic), pil_golden("bicubic_gradient_180"),
              "180");
  expect_same(pil_invert(pil_resize(pil_radial_gradient(), 48, 40, PilFilter::kBicubic)),
              pil_golden("bicubic_radial_inv"), "radial");
  EXPECT_EQ(pil_rotate(g, 90).at(5, 7), 5);
  EXPECT_EQ(pil_rotate(g, 270).at(5, 7), 250);
  EXPECT_EQ(pil_radial_gradient().at(200, 10), 195);
}

TEST(PilOps, LanczosMatchesPillow) {
  const PilImage rgb = pil_pattern(40, 30, 3, 3);
  expect_same(pil_resize(rgb, 33, 21, PilFilter::kLanczos), pil_golden("lanczos_down"), "down");
  expect_same(pil_resize(rgb, 80, 61, PilFilter::kLanczos), pil_golden("lanczos_up"), "up");
  expect_same(pil_resize(rgb, 40, 30, PilFilter::kLanczos), rgb, "same size copies");
}

TEST(PilOps, CompositeTileMatchesPillow) {
  PilImage image = pil_pattern(20, 16, 3, 4);
  const PilBox box{4, 3, 14, 11};
  pil_composite_tile(image, pil_pattern(10, 8, 3, 5), box, pil_pattern(10, 8, 1, 6));
  expect_same(image, pil_golden("composite"), "composite");
}

TEST(PilOps, BoxesAndPaste) {
  PilImage m = pil_new(10, 8, 1);
  EXPECT_FALSE(pil_getbbox(m).has_value());
  pil_fill_rectangle(m, 2, 3, 4, 20, 255);  // inclusive corners, clipped
  ASSERT_TRUE(pil_getbbox(m).has_value());
  EXPECT_EQ(*pil_getbbox(m), (PilBox{2, 3, 5, 8}));
  PilImage c = pil_crop(m, PilBox{-1, 6, 4, 10});
  EXPECT_EQ(c.width, 5);
  EXPECT_EQ(c.at(0, 0), 0);  // outside the image
  EXPECT_EQ(c.at(3, 1), 255);
  EXPECT_EQ(c.at(3, 2), 0);
  PilImage d = pil_new(4, 4, 1);
  pil_paste(d, pil_new(3, 3, 1, 9), -1, 2);
  EXPECT_EQ(d.at(0, 2), 9);
  EXPECT_EQ(d.at(2, 2), 0);
  EXPECT_EQ(d.at(1, 3), 9);
}

}  // namespace
}  // namespace netdist::nodes
