// Dependency waves and tile modes (usdu_tiles.h) and the tile task's tile_job (usdu_tile_node.h): running a
// job's steps wave by wave (each wave's steps on the canvas as the earlier waves left it, pasted in step
// order) gives the sequential pixels in every redraw × seam-fix mode, with a content-dependent fake sampler;
// independent mode is one wave on the source; the mode comes from extra_data.netdist.tiles or the default;
// tile jobs survive their JSON round trip and bad ones are refused naming what is wrong.
#include <gtest/gtest.h>

#include <algorithm>

#include "nodes/usdu_tile_node.h"
#include "nodes/usdu_tiles.h"

namespace netdist::nodes {
namespace {

PilImage usdu_tiles_pattern(int64_t w, int64_t h) {
  PilImage im = pil_new(w, h, 3);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t c = 0; c < 3; ++c)
        im.at(x, y, c) = uint8_t((x * 37 + y * 71 + c * 101 + x * y * 13) % 256);
  return im;
}

// A sampler stand-in whose output depends on every input pixel of the tile (a running sum) and on the step.
PilImage usdu_tiles_fake_redraw(const PilImage& tile, size_t step) {
  PilImage out = tile;
  uint32_t acc = uint32_t(step) * 31u;
  for (size_t i = 0; i < tile.pixels.size(); ++i) {
    acc = acc * 16777619u + tile.pixels[i];
    out.pixels[i] = uint8_t((255 - tile.pixels[i] + (acc >> 24)) % 256);
  }
  return out;
}

UsduWaveFn usdu_tiles_fake_wave(int* calls = nullptr) {
  return [calls](const std::vector<size_t>& ids,
                 std::vector<std::vector<PilImage>> inputs) -> Result<std::vector<std::vector<PilImage>>> {
    if (calls) ++*calls;
    std::vector<std::vector<PilImage>> out(ids.size());
    // Redrawn last to first: the order the tiles finish in does not matter, only the paste order.
    for (size_t k = ids.size(); k-- > 0;)
      for (const PilImage& t : inputs[k]) out[k].push_back(usdu_tiles_fake_redraw(t, ids[k]));
    return out;
  };
}

std::vector<UsduStep> usdu_tiles_steps(UsduRedrawMode redraw, UsduSeamFixMode fix,
                                       UsduCanvas* canvas_out = nullptr) {
  UsduSettings s;
  s.tile_width = s.tile_height = 64;
  s.padding = 16;
  s.redraw = redraw;
  s.seam_fix = fix;
  s.seam_fix_width = 32;
  UsduCanvas canvas = usdu_canvas(256, 256, 1.0, s).value();
  if (canvas_out) *canvas_out = canvas;
  return usdu_plan(s, canvas).value();
}

TEST(UsduTiles, ExactWavesGiveTheSequentialPixelsInEveryMode) {
  for (UsduRedrawMode redraw : {UsduRedrawMode::kLinear, UsduRedrawMode::kChess}) {
    for (int fix = 0; fix < 4; ++fix) {
      const std::vector<UsduStep> steps = usdu_tiles_steps(redraw, UsduSeamFixMode(fix));
      std::vector<PilImage> sequential = {usdu_tiles_pattern(256, 256)}, waved = sequential;
      size_t step = 0;
      ASSERT_TRUE(usdu_run(sequential, steps,
                           [&](const std::vector<PilImage>& tiles) -> Result<std::vector<PilImage>> {
                             std::vector<PilImage> out;
                             for (const PilImage& t : tiles) out.push_back(usdu_tiles_fake_redraw(t, step));
                             ++step;
                             return out;
                           })
                      .is_ok());
      int calls = 0;
      const std::vector<int> waves = usdu_mode_waves(steps, UsduTileMode::kExact);
      ASSERT_TRUE(usdu_run_waves(waved, steps, waves, usdu_tiles_fake_wave(&calls)).is_ok());
      EXPECT_EQ(calls, usdu_wave_stats(waves).waves);
      EXPECT_LT(calls, int(steps.size())) << "some steps share a wave";
      EXPECT_TRUE(waved[0].pixels == sequential[0].pixels) << "redraw " << int(redraw) << " seam fix " << fix;
    }
  }
}

TEST(UsduTiles, IndependentIsOneWaveOnTheSourceAndNotTheSequentialPicture) {
  const std::vector<UsduStep> steps = usdu_tiles_steps(UsduRedrawMode::kLinear, UsduSeamFixMode::kHalfTile);
  const std::vector<int> waves = usdu_mode_waves(steps, UsduTileMode::kIndependent);
  EXPECT_TRUE(std::all_of(waves.begin(), waves.end(), [](int w) { return w == 0; }));
  const UsduWaveStats st = usdu_wave_stats(waves);
  EXPECT_EQ(st.waves, 1);
  EXPECT_EQ(st.widest, int64_t(steps.size()));
  const PilImage source = usdu_tiles_pattern(256, 256);
  std::vector<PilImage> independent = {source}, by_hand = {source}, exact = {source};
  ASSERT_TRUE(usdu_run_waves(independent, steps, waves, usdu_tiles_fake_wave()).is_ok());
  for (size_t i = 0; i < steps.size(); ++i) {  // every step from the source, pasted in order
    std::vector<PilImage> out;
    for (const PilImage& t : usdu_step_inputs({source}, steps[i]))
      out.push_back(usdu_tiles_fake_redraw(t, i));
    ASSERT_TRUE(usdu_apply_step(by_hand, steps[i], out).is_ok());
  }
  EXPECT_TRUE(independent[0].pixels == by_hand[0].pixels);
  ASSERT_TRUE(
      usdu_run_waves(exact, steps, usdu_mode_waves(steps, UsduTileMode::kExact), usdu_tiles_fake_wave())
          .is_ok());
  EXPECT_FALSE(independent[0].pixels == exact[0].pixels);
}

TEST(UsduTiles, AWaveThatLosesAStepIsAnError) {
  const std::vector<UsduStep> steps = usdu_tiles_steps(UsduRedrawMode::kLinear, UsduSeamFixMode::kNone);
  std::vector<PilImage> images = {usdu_tiles_pattern(256, 256)};
  Status s =
      usdu_run_waves(images, steps, usdu_mode_waves(steps, UsduTileMode::kIndependent),
                     [](const std::vector<size_t>&,
                        std::vector<std::vector<PilImage>>) -> Result<std::vector<std::vector<PilImage>>> {
                       return std::vector<std::vector<PilImage>>(1);
                     });
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("steps"), std::string::npos) << s.message();
}

TEST(UsduTiles, ModeFromExtraDataOrTheServerDefault) {
  using J = nlohmann::ordered_json;
  EXPECT_EQ(usdu_tile_mode(J::object()).value(), UsduTileMode::kExact);
  EXPECT_EQ(usdu_tile_mode(J{{"netdist", {{"priority", 2}}}}).value(), UsduTileMode::kExact);
  EXPECT_EQ(usdu_tile_mode(J{{"netdist", {{"tiles", "independent"}}}}).value(), UsduTileMode::kIndependent);
  for (const J& bad : {J{{"netdist", {{"tiles", "fast"}}}}, J{{"netdist", {{"tiles", 1}}}}}) {
    auto mode = usdu_tile_mode(bad);
    ASSERT_FALSE(mode.is_ok());
    EXPECT_EQ(mode.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(mode.status().message().find("extra_data.netdist.tiles"), std::string::npos)
        << mode.status().message();
  }
  set_usdu_default_tile_mode(UsduTileMode::kIndependent);
  EXPECT_EQ(usdu_tile_mode(J::object()).value(), UsduTileMode::kIndependent);
  EXPECT_EQ(usdu_tile_mode(J{{"netdist", {{"tiles", "exact"}}}}).value(), UsduTileMode::kExact);
  set_usdu_default_tile_mode(UsduTileMode::kExact);
  EXPECT_FALSE(parse_usdu_tile_mode("Exact").is_ok());
}

TEST(UsduTiles, TileJobRoundTripsAndBadJobsAreRefused) {
  UsduCanvas canvas;
  const std::vector<UsduStep> steps =
      usdu_tiles_steps(UsduRedrawMode::kChess, UsduSeamFixMode::kNone, &canvas);
  UsduSampling sampling;
  sampling.image_width = 200;
  sampling.image_height = 180;
  const PilImage source = usdu_tiles_pattern(256, 256);
  UsduWave wave{sampling, canvas, steps, {3}, {usdu_step_inputs({source, source}, steps[3])},
                0,        1,      0,     1,   "exact"};
  const std::string text = usdu_tile_job(wave, 0).dump();
  auto job = parse_usdu_tile_job(text);
  ASSERT_TRUE(job.is_ok()) << job.status().message();
  EXPECT_EQ(job->image_width, 200);
  EXPECT_EQ(job->image_height, 180);
  EXPECT_EQ(job->canvas_width, canvas.width);
  ASSERT_EQ(job->step.tiles.size(), steps[3].tiles.size());
  EXPECT_EQ(job->step.tiles[0].crop, steps[3].tiles[0].crop);
  ASSERT_EQ(job->tiles.size(), 2u);
  EXPECT_TRUE(job->tiles[1].pixels == wave.inputs[0][1].pixels);
  auto back = usdu_tiles_from_u8(usdu_tiles_to_u8(job->tiles), "tiles");
  ASSERT_TRUE(back.is_ok());
  EXPECT_TRUE((*back)[0].pixels == job->tiles[0].pixels);
  EXPECT_FALSE(usdu_tiles_from_u8(at::zeros({1, 4, 4, 3}), "tiles").is_ok()) << "float tiles are refused";

  nlohmann::ordered_json j = nlohmann::ordered_json::parse(text);
  auto refused = [](const nlohmann::ordered_json& bad, const std::string& names) {
    auto r = parse_usdu_tile_job(bad.dump());
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(names), std::string::npos) << r.status().message();
  };
  EXPECT_FALSE(parse_usdu_tile_job("not json").is_ok());
  auto short_pixels = j;
  short_pixels["count"] = 3;
  refused(short_pixels, "\"pixels\" holds");
  auto no_crops = j;
  no_crops["crops"] = nlohmann::ordered_json::array();
  refused(no_crops, "\"crops\"");
  auto bad_size = j;
  bad_size["size"] = {64, -1};
  refused(bad_size, "\"size\"");
  auto zero = j;
  zero["count"] = 0;
  refused(zero, "\"count\"");
  auto not_b64 = j;
  not_b64["pixels"] = "***";
  refused(not_b64, "pixels");
}

}  // namespace
}  // namespace netdist::nodes
