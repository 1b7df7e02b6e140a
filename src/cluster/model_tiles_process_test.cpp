// ImageUpscaleWithModel and VAEDecodeTiled tiles across workers (model_tiles.h), end to end with real
// `netdist` processes on loopback: random-weight tiny upscale models written by the test (an ESRGAN RRDBNet
// and a compact SRVGGNet, .safetensors under upscale_models/) upscale a 600×300 image (2 tiles of ComfyUI's
// 512/32 grid), and the embedded tiny model's VAE decodes its latent with VAEDecodeTiled (tile_size 256,
// overlap 64: 23 tiles over the three passes); on one plain server (the reference), on a coordinator with one worker (the prompt runs
// whole there), with three connect-out workers and with two dial-in workers that fetch the upscale models
// from the coordinator (--share-models): the same PNG bytes; a worker killed mid-tile changes nothing.
#include <signal.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/process_test_util.h"
#include "engine/runtime/tensor_io.h"
#include "engine/upscale/upscale_testing.h"
#include "io/png.h"

// Not in netdist::cluster: in a unity build cluster_process_test.cpp's helpers share that namespace's
// anonymous namespace.
namespace netdist::model_tiles_process_test {
namespace {

using namespace cluster::test;  // NOLINT(google-build-using-namespace): the process-test scaffolding

constexpr const char* kModelTilesToken = "tiles-token";

// A 600×300 RGB test card (every pixel differs from its neighbours) as PNG bytes.
std::string model_tiles_source_png() {
  io::Image8 im;
  im.width = 600;
  im.height = 300;
  im.channels = 3;
  for (int y = 0; y < im.height; ++y)
    for (int x = 0; x < im.width; ++x)
      for (int c = 0; c < 3; ++c)
        im.pixels.push_back(uint8_t((x * x / 7 + y * 13 + c * 71 + ((x * y) >> 3)) & 255));
  auto png = io::encode_png(im, {}, 1);
  EXPECT_TRUE(png.is_ok()) << png.status().to_string();
  return png.is_ok() ? *png : std::string();
}

// The two random-weight upscale models (small, so that a 512² tile takes a moment on one CPU thread).
void put_upscale_models(const fs::path& dir) {
  fs::create_directories(dir / "models" / "upscale_models");
  const auto write = [&](const std::string& name, const runtime::WeightMap& weights) {
    auto bytes = runtime::weights_to_buffer(weights);
    ASSERT_TRUE(bytes.is_ok()) << bytes.status().to_string();
    std::ofstream(dir / "models" / "upscale_models" / name, std::ios::binary) << *bytes;
  };
  using namespace upscale::testing;  // NOLINT(google-build-using-namespace)
  write("tiny-esrgan-x2.safetensors", random_upscale_weights(esrgan_config(8, 1, 2), 31));
  write("tiny-compact-x2.safetensors", random_upscale_weights(compact_config(8, 2, 2), 32));
}

void put_source(const fs::path& dir, const std::string& png) {
  fs::create_directories(dir / "in");
  std::ofstream(dir / "in" / "src.png", std::ios::binary) << png;
}

// LoadImage src.png → ImageUpscaleWithModel (model `name`) or VAEEncode → VAEDecodeTiled (tile 256,
// overlap 64) → SaveImage (node 9).
nlohmann::json model_tiles_prompt(const std::string& name) {
  nlohmann::json p = {{"1", {{"class_type", "LoadImage"}, {"inputs", {{"image", "src.png"}}}}},
                      {"9", {{"class_type", "SaveImage"}, {"inputs", {{"filename_prefix", "tiles"}}}}}};
  if (name == "vae") {
    p["4"] = {{"class_type", "CheckpointLoaderSimple"}, {"inputs", {{"ckpt_name", "tiny-emoji.safetensors"}}}};
    p["11"] = {{"class_type", "VAEEncode"}, {"inputs", {{"pixels", {"1", 0}}, {"vae", {"4", 2}}}}};
    p["12"] = {{"class_type", "VAEDecodeTiled"},
               {"inputs",
                {{"samples", {"11", 0}},
                 {"vae", {"4", 2}},
                 {"tile_size", 256},
                 {"overlap", 64},
                 {"temporal_size", 64},
                 {"temporal_overlap", 8}}}};
    p["9"]["inputs"]["images"] = {"12", 0};
  } else {
    p["2"] = {{"class_type", "UpscaleModelLoader"}, {"inputs", {{"model_name", name}}}};
    p["3"] = {{"class_type", "ImageUpscaleWithModel"}, {"inputs", {{"upscale_model", {"2", 0}}, {"image", {"1", 0}}}}};
    p["9"]["inputs"]["images"] = {"3", 0};
  }
  return p;
}

const std::vector<std::string>& model_tiles_cases() {
  static const std::vector<std::string> cases = {"tiny-esrgan-x2.safetensors", "tiny-compact-x2.safetensors",
                                                 "vae"};
  return cases;
}

// Runs every case on `url` (folders under dir): the PNG bytes per case (and, if asked, the history entries).
std::vector<std::string> model_tiles_run(const std::string& url, const fs::path& dir, const CallOptions& o = {},
                                         std::vector<nlohmann::json>* histories = nullptr) {
  std::vector<std::string> out;
  for (const std::string& c : model_tiles_cases()) {
    auto h = wait_history(url, submit(url, model_tiles_prompt(c), o), o, std::chrono::seconds(300));
    if (histories) histories->push_back(h);
    EXPECT_EQ(h["status"]["status_str"], "success") << c << ": " << h.dump().substr(0, 2000);
    auto png = images(h, dir / "out");
    out.push_back(png.size() == 1 ? png[0] : std::string());
  }
  return out;
}

struct ModelTilesReference {
  std::string source;
  std::vector<std::string> cases;  // per model_tiles_cases() entry, on one plain server
};

const ModelTilesReference& model_tiles_reference() {
  static const ModelTilesReference ref = [] {
    ModelTilesReference r;
    r.source = model_tiles_source_png();
    const fs::path dir = scratch("model_tiles_reference");
    put_source(dir, r.source);
    put_upscale_models(dir);
    Proc one(process_args("serve", dir, {}), dir / "serve.log");
    r.cases = model_tiles_run(one.url(), dir);
    return r;
  }();
  return ref;
}

std::string model_tiles_join(const std::vector<const Proc*>& procs) {
  std::string s;
  for (const Proc* p : procs) s += (s.empty() ? "" : ",") + p->url();
  return s;
}

TEST(ModelTilesProcess, ThreeWorkersGiveTheLocalNodesBytes) {
  const ModelTilesReference& ref = model_tiles_reference();
  ASSERT_EQ(ref.cases.size(), model_tiles_cases().size());
  for (const std::string& png : ref.cases) ASSERT_FALSE(png.empty()) << "the reference did not render";
  fs::path dir = scratch("model_tiles_three");
  put_source(dir / "c", ref.source);
  for (const char* w : {"c", "w1", "w2", "w3"}) put_upscale_models(dir / w);
  Proc w1(worker_args(dir / "w1"), dir / "w1.log"), w2(worker_args(dir / "w2"), dir / "w2.log"),
      w3(worker_args(dir / "w3"), dir / "w3.log");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--workers",
                                          model_tiles_join({&w1, &w2, &w3})}),
             dir / "c.log");
  ASSERT_TRUE(wait_alive(coord.url(), 3));
  std::vector<nlohmann::json> histories;
  const std::vector<std::string> got = model_tiles_run(coord.url(), dir / "c", {}, &histories);
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_TRUE(got[i] == ref.cases[i]) << model_tiles_cases()[i] << " on 3 workers differs from one process";
  // The history entry's plan: mode "tiles", the node's tiles and who ran them (model_tiles.h).
  const std::vector<int64_t> tiles = {2, 2, 23};
  for (size_t i = 0; i < histories.size(); ++i) {
    const auto& plan = histories[i]["netdist"]["plan"];
    EXPECT_EQ(plan["mode"], "tiles") << histories[i].dump().substr(0, 2000);
    const auto& node = plan["model_tiles"][i == 2 ? "12" : "3"];
    EXPECT_EQ(node["tiles"], tiles[i]) << plan.dump();
    EXPECT_EQ(node["tile_workers"].size(), size_t(tiles[i])) << plan.dump();
    int64_t sum = 0;
    for (auto it = node["per_worker"].begin(); it != node["per_worker"].end(); ++it) sum += it.value().get<int64_t>();
    EXPECT_EQ(sum, tiles[i]) << plan.dump();
  }
  int used = 0;
  for (const auto& [url, n] : rows_by_worker(coord.url())) used += n > 0;
  EXPECT_GE(used, 2) << "the workers shared the tiles";
  EXPECT_EQ(worker_field(coord.url(), "prompts_done"),
            (std::map<std::string, int64_t>{{w1.url(), 0}, {w2.url(), 0}, {w3.url(), 0}}))
      << "no prompt went whole to one worker";
}

TEST(ModelTilesProcess, OneWorkerAndTwoDialInWorkersFetchingTheModelsGiveTheSameBytes) {
  const ModelTilesReference& ref = model_tiles_reference();
  ASSERT_EQ(ref.cases.size(), model_tiles_cases().size());
  fs::path dir = scratch("model_tiles_one_two");
  put_source(dir / "c1", ref.source);
  put_source(dir / "c2", ref.source);
  put_upscale_models(dir / "c1");
  put_upscale_models(dir / "c2");
  {
    put_upscale_models(dir / "w");
    Proc w(worker_args(dir / "w"), dir / "w.log");
    Proc coord(coordinator_args(dir / "c1", {"--enable-distributed", "--no-local", "--workers", w.url()}),
               dir / "c1.log");
    ASSERT_TRUE(wait_alive(coord.url(), 1));
    EXPECT_TRUE(model_tiles_run(coord.url(), dir / "c1") == ref.cases) << "one worker differs from one process";
  }
  // The dial-in workers have no upscale_models/: they fetch the files the tile workflows name.
  Proc coord(coordinator_args(dir / "c2", {"--enable-distributed", "--no-local", "--local-workers", "0",
                                           "--auth-token", kModelTilesToken, "--share-models"}),
             dir / "c2.log");
  Proc a(worker_args(dir / "a", {"--join", coord.url(), "--auth-token", kModelTilesToken}), dir / "a.log");
  Proc b(worker_args(dir / "b", {"--join", coord.url(), "--auth-token", kModelTilesToken}), dir / "b.log");
  ASSERT_TRUE(wait_alive(coord.url(), 2, kModelTilesToken));
  const std::vector<std::string> got = model_tiles_run(coord.url(), dir / "c2", kModelTilesToken);
  EXPECT_TRUE(got == ref.cases) << "two dial-in workers differ from one process";
  int64_t done = 0;
  for (const auto& [url, n] : rows_by_worker(coord.url(), kModelTilesToken)) done += n;
  EXPECT_GT(done, 0) << "the dial-in workers pulled tile tasks";
  EXPECT_TRUE(fs::exists(dir / "a" / "models" / "upscale_models" / "tiny-esrgan-x2.safetensors") ||
              fs::exists(dir / "b" / "models" / "upscale_models" / "tiny-esrgan-x2.safetensors"))
      << "a dial-in worker fetched the upscale model";
}

TEST(ModelTilesProcess, KilledWorkerMidTileChangesNothing) {
  const ModelTilesReference& ref = model_tiles_reference();
  ASSERT_EQ(ref.cases.size(), model_tiles_cases().size());
  fs::path dir = scratch("model_tiles_kill");
  put_source(dir / "c", ref.source);
  for (const char* w : {"c", "survivor", "victim", "other"}) put_upscale_models(dir / w);
  // Throttled workers: each tile's progress event sleeps, so a tile is caught running.
  const std::vector<std::string> slow = {"--test-step-delay-ms", "400"};
  Proc survivor(worker_args(dir / "survivor", slow), dir / "survivor.log");
  Proc victim(worker_args(dir / "victim", slow), dir / "victim.log");
  Proc other(worker_args(dir / "other", slow), dir / "other.log");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--workers",
                                          model_tiles_join({&survivor, &victim, &other})}),
             dir / "c.log");
  ASSERT_TRUE(wait_alive(coord.url(), 3));
  const std::string id = submit(coord.url(), model_tiles_prompt("vae"));
  ASSERT_TRUE(wait_running(victim.url(), Clock::now() + std::chrono::seconds(60))) << "the victim never ran a tile";
  victim.stop(SIGKILL);
  auto h = wait_history(coord.url(), id, {}, std::chrono::seconds(300));
  EXPECT_EQ(h["status"]["status_str"], "success") << h.dump().substr(0, 2000);
  auto png = images(h, dir / "c" / "out");
  ASSERT_EQ(png.size(), 1u);
  EXPECT_TRUE(png[0] == ref.cases[2]) << "a killed worker's tile redone elsewhere changed the picture";
}

}  // namespace
}  // namespace netdist::model_tiles_process_test
