// Tiled model calls whose tiles run elsewhere (netdist/tile_runner.h): upscale_image_tiled_by and
// decode_tiled_by with a runner that computes each tile with upscale_tiles / decode_tiles give
// upscale_image's and decode_tiled's bytes; a runner's out-of-memory error halves the upscale tile; a runner
// that returns the wrong count or shape is refused naming the tile.
#include <gtest/gtest.h>

#include <filesystem>
#include <unistd.h>

#include "engine/runtime/tensor_io.h"
#include "engine/upscale/tiled.h"
#include "engine/upscale/upscale_testing.h"
#include "netdist/engine.h"
#include "netdist/source_dir.h"
#include "netdist/upscale_model.h"
#include "netdist/vae_tiles.h"

namespace netdist {
namespace {

namespace fs = std::filesystem;

// A runner that runs each tile through `fn` ([1, C, h, w] → [1, C', h', w']), counting calls.
TileRunner model_tiles_runner(std::function<Result<at::Tensor>(const at::Tensor&)> fn, int* calls = nullptr) {
  return [fn, calls](std::vector<at::Tensor> tiles) -> Result<std::vector<at::Tensor>> {
    if (calls) ++*calls;
    std::vector<at::Tensor> out;
    for (const at::Tensor& t : tiles) {
      ND_ASSIGN_OR_RETURN(at::Tensor o, fn(t));
      out.push_back(o);
    }
    return out;
  };
}

std::shared_ptr<UpscaleModel> model_tiles_upscaler(const upscale::ArchConfig& c, uint64_t seed) {
  const fs::path path = fs::temp_directory_path() /
                        ("netdist_model_tiles_" + std::to_string(::getpid()) + "_" + std::to_string(seed) + ".safetensors");
  EXPECT_TRUE(runtime::save_safetensors(path.string(), upscale::testing::random_upscale_weights(c, seed)).is_ok());
  auto m = load_upscale_model(path.string(), EngineOptions{});
  fs::remove(path);
  EXPECT_TRUE(m.is_ok()) << m.status().to_string();
  return m.is_ok() ? *m : nullptr;
}

TEST(ModelTilesEngine, UpscaleTiledByGivesUpscaleImagesBytes) {
  for (const auto& [config, seed] : {std::pair{upscale::testing::esrgan_config(8, 1, 2), uint64_t{5}},
                                     std::pair{upscale::testing::compact_config(8, 2, 4), uint64_t{6}}}) {
    auto model = model_tiles_upscaler(config, seed);
    ASSERT_TRUE(model);
    const at::Tensor image = at::rand({2, 200, 600, 3});  // 2 tiles per image
    auto local = upscale_image(*model, image, nullptr);
    ASSERT_TRUE(local.is_ok()) << local.status().to_string();
    int64_t tiles = 0;
    auto by = upscale_image_tiled_by(
        *model, image, model_tiles_runner([&](const at::Tensor& t) { return upscale_tiles(*model, t); }), &tiles);
    ASSERT_TRUE(by.is_ok()) << by.status().to_string();
    EXPECT_EQ(tiles, 4);
    EXPECT_EQ(tiles, upscale_tile_count(image));
    EXPECT_TRUE(at::equal(*local, *by)) << "max diff " << (*local - *by).abs().max().item<float>();
  }
}

TEST(ModelTilesEngine, UpscaleRunnerOutOfMemoryHalvesTheTile) {
  auto model = model_tiles_upscaler(upscale::testing::compact_config(4, 1, 2), 7);
  ASSERT_TRUE(model);
  const at::Tensor image = at::rand({1, 300, 600, 3});
  int calls = 0;
  bool failed = false;
  const TileRunner runner = [&](std::vector<at::Tensor> tiles) -> Result<std::vector<at::Tensor>> {
    ++calls;
    if (!failed) {
      failed = true;
      return Status::internal("worker w: tile failed (500): the device ran out of memory");
    }
    return model_tiles_runner([&](const at::Tensor& t) { return upscale_tiles(*model, t); })(std::move(tiles));
  };
  int64_t tiles = 0;
  auto by = upscale_image_tiled_by(*model, image, runner, &tiles);
  ASSERT_TRUE(by.is_ok()) << by.status().to_string();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(tiles, upscale::tiled_scale_steps(600, 300, 256, 32)) << "the second pass used 256-pixel tiles";
  EXPECT_EQ(by->sizes(), (std::vector<int64_t>{1, 600, 1200, 3}));
  // Another error is not retried.
  auto other = upscale_image_tiled_by(*model, image, [](std::vector<at::Tensor>) -> Result<std::vector<at::Tensor>> {
    return Status::unavailable("no worker");
  });
  ASSERT_FALSE(other.is_ok());
  EXPECT_EQ(other.status().code(), StatusCode::kUnavailable);
}

TEST(ModelTilesEngine, WrongCountOrShapeFromTheRunnerIsRefused) {
  auto model = model_tiles_upscaler(upscale::testing::compact_config(4, 1, 2), 8);
  ASSERT_TRUE(model);
  const at::Tensor image = at::rand({1, 300, 600, 3});
  auto few = upscale_image_tiled_by(*model, image, [](std::vector<at::Tensor> t) -> Result<std::vector<at::Tensor>> {
    t.pop_back();
    return t;
  });
  ASSERT_FALSE(few.is_ok());
  EXPECT_EQ(few.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(few.status().message().find("returned 1 tiles for 2"), std::string::npos) << few.status().message();
  auto same = upscale_image_tiled_by(*model, image, [](std::vector<at::Tensor> t) -> Result<std::vector<at::Tensor>> {
    return t;  // not upscaled
  });
  ASSERT_FALSE(same.is_ok());
  EXPECT_NE(same.status().message().find("tile 0"), std::string::npos) << same.status().message();
  auto bad = upscale_tiles(*model, at::rand({1, 4, 8, 8}));
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST(ModelTilesEngine, DecodeTiledByGivesDecodeTiledsBytes) {
  auto model =
      load_model((std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string(), {});
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  const at::Tensor latent = at::randn({1, 4, 40, 36});
  auto local = decode_tiled(**model, latent, 128, 32);
  ASSERT_TRUE(local.is_ok()) << local.status().to_string();
  int64_t tiles = 0;
  auto by = decode_tiled_by(**model, latent, 128, 32,
                            model_tiles_runner([&](const at::Tensor& t) { return decode_tiles(**model, t); }), &tiles);
  ASSERT_TRUE(by.is_ok()) << by.status().to_string();
  EXPECT_GT(tiles, 3);
  EXPECT_TRUE(at::equal(*local, *by)) << "max diff " << (*local - *by).abs().max().item<float>();
  auto bad = decode_tiled_by(**model, at::randn({1, 3, 8, 8}), 128, 32,
                             model_tiles_runner([&](const at::Tensor& t) { return decode_tiles(**model, t); }));
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(decode_tiles(**model, at::randn({1, 3, 8, 8})).is_ok());
}

}  // namespace
}  // namespace netdist
