// The Ultimate SD Upscale tile loop against the real node's Python code: tests/data/usdu/generate.py runs
// ssitu/ComfyUI_UltimateSDUpscale with its A1111 script (pinned 2322caa4) on Pillow 9.4, with a fake sampler
// that this test reproduces (usdu_fake_redraw), for every redraw × seam-fix mode, uniform and free tiles, on
// a 96×80 image and a 90×70 one (canvas 88×72: the LANCZOS canvas resize). usdu_cases.txt records each
// case's sampler calls (tile size, denoise) and the sha256 of the final pixels. Also: grid and order by hand
// from the script, the waves, and bad settings refused with a message.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "io/sha256.h"
#include "netdist/source_dir.h"
#include "nodes/usdu_plan.h"

namespace netdist::nodes {
namespace {

std::filesystem::path usdu_data_dir() {
  return std::filesystem::path(NETDIST_SOURCE_DIR) / "tests" / "data" / "usdu";
}

PilImage usdu_pattern(int64_t w, int64_t h, int seed) {
  PilImage im = pil_new(w, h, 3);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t b = 0; b < 3; ++b)
        im.at(x, y, b) = uint8_t((x * 37 + y * 71 + b * 101 + seed * 53 + (b % 2 ? x * y * 13 : 0)) % 256);
  return im;
}

// generate.py's fake_redraw: v' = (255 - v + 31·ordinal + 3x + 5y + 7c) mod 256.
PilImage usdu_fake_redraw(const PilImage& tile, int ordinal) {
  PilImage out = tile;
  for (int64_t y = 0; y < tile.height; ++y)
    for (int64_t x = 0; x < tile.width; ++x)
      for (int64_t c = 0; c < 3; ++c)
        out.at(x, y, c) = uint8_t((255 - tile.at(x, y, c) + 31 * ordinal + 3 * x + 5 * y + 7 * c) % 256);
  return out;
}

struct UsduCase {
  std::string name, canvas, calls, sha256;
  int64_t w = 0, h = 0;
  UsduSettings settings;
};

std::vector<UsduCase> usdu_cases() {
  std::ifstream in(usdu_data_dir() / "usdu_cases.txt");
  std::vector<UsduCase> cases;
  for (std::string line; std::getline(in, line);) {
    std::istringstream s(line);
    UsduCase c;
    std::string redraw, fix, arrow;
    int uniform = 0;
    s >> c.name >> c.w >> c.h >> c.settings.tile_width >> c.settings.tile_height >> c.settings.padding >>
        c.settings.mask_blur >> redraw >> fix >> c.settings.seam_fix_width >> c.settings.seam_fix_padding >>
        c.settings.seam_fix_mask_blur >> uniform >> arrow >> c.canvas >> c.calls >> c.sha256;
    c.settings.redraw = parse_usdu_redraw_mode(redraw).value();
    const std::vector<std::string> fixes = {"None", "BandPass", "HalfTile", "HalfTileIntersections"};
    c.settings.seam_fix = UsduSeamFixMode(std::find(fixes.begin(), fixes.end(), fix) - fixes.begin());
    c.settings.force_uniform_tiles = uniform != 0;
    cases.push_back(c);
  }
  return cases;
}

TEST(UsduPlan, MatchesTheRealNodeForEveryMode) {
  const std::vector<UsduCase> cases = usdu_cases();
  ASSERT_EQ(cases.size(), 48u);
  for (const UsduCase& c : cases) {
    auto canvas = usdu_canvas(c.w, c.h, 1.0, c.settings);
    ASSERT_TRUE(canvas.is_ok()) << c.name;
    EXPECT_EQ(std::to_string(canvas->width) + "x" + std::to_string(canvas->height), c.canvas) << c.name;
    auto steps = usdu_plan(c.settings, *canvas);
    ASSERT_TRUE(steps.is_ok()) << c.name << ": " << steps.status().to_string();
    std::vector<PilImage> images = usdu_prepare_images({usdu_pattern(c.w, c.h, 7)}, {}, *canvas);
    std::string calls;
    int ordinal = 0;
    Status s =
        usdu_run(images, *steps, [&](const std::vector<PilImage>& tiles) -> Result<std::vector<PilImage>> {
          std::vector<PilImage> out;
          for (const PilImage& t : tiles) {
            if (!calls.empty()) calls.push_back(',');
            calls.append(std::to_string(t.width))
                .append("x")
                .append(std::to_string(t.height))
                .append("@0.25");
            out.push_back(usdu_fake_redraw(t, ordinal++));
          }
          return out;
        });
    ASSERT_TRUE(s.is_ok()) << c.name;
    EXPECT_EQ(calls.empty() ? "-" : calls, c.calls) << c.name;
    const std::string bytes(images[0].pixels.begin(), images[0].pixels.end());
    EXPECT_EQ(io::sha256_hex(bytes), c.sha256) << c.name;
  }
}

TEST(UsduPlan, GridAndOrderFromTheScript) {
  UsduSettings s;
  s.tile_width = 64;
  s.tile_height = 64;
  s.padding = 16;
  s.mask_blur = 8;
  auto canvas = usdu_canvas(256, 200, 1.0, s);
  ASSERT_TRUE(canvas.is_ok());
  EXPECT_EQ(canvas->width, 256);
  EXPECT_EQ(canvas->height, 200);
  EXPECT_EQ(canvas->rows, 4);  // ceil(200 / 64)
  EXPECT_EQ(canvas->cols, 4);
  EXPECT_TRUE(canvas->scales.empty());
  // Tile (1, 1): rectangle 64..128 inclusive → bbox 64..129 → padded 48..145 → minus the extra pixel 48..144;
  // uniform: processing size round(80 / 8)·8 = 80, the 96² crop is kept (ratio 1).
  auto steps = usdu_plan(s, *canvas);
  ASSERT_TRUE(steps.is_ok());
  ASSERT_EQ(steps->size(), 16u);
  const UsduTile& t = (*steps)[5].tiles[0];
  EXPECT_EQ(t.xi, 1);
  EXPECT_EQ(t.yi, 1);
  EXPECT_EQ(t.crop, (PilBox{48, 48, 144, 144}));
  EXPECT_EQ(t.tile_width, 80);
  EXPECT_EQ(t.mask.width, 96);
  EXPECT_GT(t.mask.at(16, 16), 0);  // the tile's corner (64, 64), blurred
  EXPECT_LT(t.mask.at(16, 16), 255);
  EXPECT_EQ(t.mask.at(48, 48), 255);                 // the tile's centre
  EXPECT_EQ(t.written, (PilBox{48, 48, 144, 144}));  // the blurred mask reaches the crop's edges
  // Chess: the "white" tiles (xi even on even rows, odd on odd rows) first, then the others.
  s.redraw = UsduRedrawMode::kChess;
  steps = usdu_plan(s, *canvas);
  ASSERT_TRUE(steps.is_ok());
  std::string order;
  for (const UsduStep& st : *steps)
    order += std::to_string(st.tiles[0].xi) + std::to_string(st.tiles[0].yi) + " ";
  EXPECT_EQ(order, "00 20 11 31 02 22 13 33 10 30 01 21 12 32 03 23 ");
  // round(100 / 8) = round(12.5) = 12 (ties to even): a 96×64 canvas, smaller than the image: no upscale
  // step.
  canvas = usdu_canvas(100, 60, 1.0, s);
  ASSERT_TRUE(canvas.is_ok());
  EXPECT_EQ(canvas->width, 96);
  EXPECT_EQ(canvas->height, 64);
  EXPECT_TRUE(canvas->scales.empty());
  // 92 → 96 > 92: the script's ×2 LANCZOS step (ceil(96 / 92) = 2) runs before the resize to the canvas.
  canvas = usdu_canvas(92, 60, 1.0, s);
  ASSERT_TRUE(canvas.is_ok());
  EXPECT_EQ(canvas->scales, std::vector<int>{2});
  canvas = usdu_canvas(100, 60, 2.5, s);  // ceil(256 / 100) = 3
  ASSERT_TRUE(canvas.is_ok());
  EXPECT_EQ(canvas->width, 248);  // round(31.25) · 8
  EXPECT_EQ(canvas->scales, std::vector<int>{3});
}

TEST(UsduPlan, WavesOfLinearAndChess) {
  UsduSettings s;
  s.tile_width = 64;
  s.tile_height = 64;
  s.padding = 16;
  s.mask_blur = 8;
  auto canvas = usdu_canvas(256, 256, 1.0, s);
  ASSERT_TRUE(canvas.is_ok());
  for (UsduRedrawMode mode : {UsduRedrawMode::kLinear, UsduRedrawMode::kChess}) {
    s.redraw = mode;
    auto steps = usdu_plan(s, *canvas);
    ASSERT_TRUE(steps.is_ok());
    const std::vector<int> waves = usdu_waves(*steps);
    ASSERT_EQ(waves.size(), 16u);
    // Every tile waits for the earlier tiles whose pixels it reads: a neighbour in the row before it runs,
    // so no two touching tiles share a wave.
    for (size_t i = 0; i < steps->size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        const UsduTile& a = (*steps)[j].tiles[0];
        const UsduTile& b = (*steps)[i].tiles[0];
        if (std::abs(a.xi - b.xi) <= 1 && std::abs(a.yi - b.yi) <= 1) {
          EXPECT_NE(waves[i], waves[j]) << i << " " << j;
        }
      }
    }
    // The longest dependency chain: Linear's tile (x, y) waits for (x + 1, y - 1), so a wave is an
    // anti-diagonal of slope 2 (wave = x + 2y); Chess's first colour is not independent either: with padding
    // the diagonal neighbours read each other's pixels.
    const int last = *std::max_element(waves.begin(), waves.end());
    std::string got;
    for (int w : waves) got += std::to_string(w);
    if (mode == UsduRedrawMode::kLinear) {
      EXPECT_EQ(got, "0123234545676789");
    } else {
      EXPECT_EQ(last, 5) << got;
    }
  }
}

TEST(UsduPlan, BadSettingsAreRefusedWithAMessage) {
  UsduSettings s;
  s.seam_fix = UsduSeamFixMode::kBandPass;
  s.seam_fix_width = 0;
  auto canvas = usdu_canvas(64, 64, 1.0, s);
  ASSERT_TRUE(canvas.is_ok());
  auto steps = usdu_plan(s, *canvas);
  ASSERT_FALSE(steps.is_ok());
  EXPECT_NE(steps.status().to_string().find("seam_fix_width"), std::string::npos);
  s.seam_fix = UsduSeamFixMode::kNone;
  s.batch_size = 4;
  s.force_uniform_tiles = false;
  steps = usdu_plan(s, *canvas);
  ASSERT_FALSE(steps.is_ok());
  EXPECT_NE(steps.status().to_string().find("force_uniform_tiles"), std::string::npos);
  EXPECT_FALSE(usdu_canvas(3, 3, 0.05, s).is_ok());
  EXPECT_FALSE(parse_usdu_redraw_mode("Spiral").is_ok());
  EXPECT_FALSE(parse_usdu_seam_fix_mode("Band pass").is_ok());
}

}  // namespace
}  // namespace netdist::nodes
