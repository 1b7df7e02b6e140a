// Upscale models on the CPU: detection of every architecture and key layout from random-weight files made
// here, the public API (load_upscale_model, upscale_image) against the network called directly, ComfyUI's
// tiled blending against values worked out by hand from comfy.utils.tiled_scale, and refused files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include <ATen/Parallel.h>

#include <unistd.h>

#include "engine/runtime/tensor_io.h"
#include "engine/upscale/detect.h"
#include "engine/upscale/tiled.h"
#include "engine/upscale/upscale_testing.h"
#include "netdist/engine.h"
#include "netdist/upscale_model.h"

namespace netdist::upscale {
namespace {

namespace fs = std::filesystem;
using testing::compact_config;
using testing::esrgan_config;
using testing::esrgan_to_new_layout;
using testing::random_upscale_weights;

class UpscaleModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netdist_upscale_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string save(const std::string& name, const runtime::WeightMap& w) {
    const std::string path = (dir_ / name).string();
    EXPECT_TRUE(runtime::save_safetensors(path, w).is_ok());
    return path;
  }
  std::shared_ptr<UpscaleModel> load(const std::string& path) {
    auto m = load_upscale_model(path, EngineOptions{});
    EXPECT_TRUE(m.is_ok()) << m.status().to_string();
    return m.is_ok() ? *m : nullptr;
  }
  // spandrel's call of the network on each image (ComfyUI's tiled_scale runs one at a time) that needs no
  // padding, clamped, as IMAGE [N, H, W, 3]; one intra-op thread, as the engine runs on the CPU.
  static at::Tensor direct(const ArchConfig& c, const runtime::WeightMap& w, const at::Tensor& image) {
    auto net = make_upscale_net(c);
    EXPECT_TRUE(runtime::load_module_weights(*net, w, "", "direct").is_ok());
    c10::InferenceMode guard;
    const int threads = at::get_num_threads();
    at::set_num_threads(1);
    std::vector<at::Tensor> out;
    for (int64_t i = 0; i < image.size(0); ++i)
      out.push_back(net->forward(image.narrow(0, i, 1).permute({0, 3, 1, 2})).clamp(0.0, 1.0));
    at::set_num_threads(threads);
    return at::cat(out, 0).permute({0, 2, 3, 1}).contiguous();
  }
  static at::Tensor image(int64_t n, int64_t h, int64_t w, uint64_t seed = 7) {
    return at::rand({n, h, w, 3}, at::detail::createCPUGenerator(seed));
  }

  fs::path dir_;
};

TEST_F(UpscaleModelTest, OldEsrganLayoutHasSpandrelsKeyNames) {
  const runtime::WeightMap w = random_upscale_weights(esrgan_config(8, 2, 4), 1);
  ASSERT_TRUE(w.count("model.1.sub.1.RDB3.conv5.0.weight"));
  EXPECT_EQ(w.at("model.1.sub.1.RDB3.conv5.0.weight").sizes(), at::IntArrayRef({8, 8 + 4 * 32, 3, 3}));
  EXPECT_EQ(w.at("model.1.sub.0.RDB1.conv1.0.weight").sizes(), at::IntArrayRef({32, 8, 3, 3}));
  EXPECT_TRUE(w.count("model.1.sub.2.weight"));  // the trunk conv after the blocks
  for (const char* k : {"model.0.bias", "model.3.weight", "model.6.weight", "model.8.weight", "model.10.bias"})
    EXPECT_TRUE(w.count(k)) << k;
  EXPECT_FALSE(w.count("model.9.weight"));
  const runtime::WeightMap c = random_upscale_weights(compact_config(8, 2, 4), 1);
  EXPECT_EQ(c.at("body.1.weight").sizes(), at::IntArrayRef({8}));       // PReLU
  EXPECT_EQ(c.at("body.6.bias").sizes(), at::IntArrayRef({3 * 4 * 4}));  // last conv → pixel shuffle
  EXPECT_FALSE(c.count("body.7.weight"));
}

TEST_F(UpscaleModelTest, DetectsEveryLayoutScaleAndChannelCount) {
  struct Case {
    std::string name;
    ArchConfig config;
    int layout;  // 0 old, 1 new (BasicSR), 2 BSRGAN
    std::string arch;
    int64_t scale, image_channels;
  };
  const Case cases[] = {
      {"old x4", esrgan_config(8, 2, 4), 0, "ESRGAN", 4, 3},
      {"new x4", esrgan_config(8, 3, 4), 1, "ESRGAN", 4, 3},
      {"bsrgan x2", esrgan_config(8, 2, 2), 2, "ESRGAN", 2, 3},
      {"old x1", esrgan_config(8, 2, 1), 0, "ESRGAN", 1, 3},
      {"old x8", esrgan_config(4, 2, 8), 0, "ESRGAN", 8, 3},
      {"plus", esrgan_config(8, 2, 4, 3, 3, 0, true), 0, "ESRGAN", 4, 3},
      {"realesrgan x2", esrgan_config(8, 2, 4, 12, 3, 2), 1, "RealESRGAN", 2, 3},
      {"realesrgan x1", esrgan_config(8, 2, 4, 48, 3, 4), 1, "RealESRGAN", 1, 3},
      {"compact x4", compact_config(8, 3, 4), 0, "SRVGGNetCompact", 4, 3},
      {"compact x2 1ch", compact_config(8, 2, 2, 1), 0, "SRVGGNetCompact", 2, 1},
  };
  for (const Case& t : cases) {
    runtime::WeightMap w = random_upscale_weights(t.config, 3);
    if (t.layout) w = esrgan_to_new_layout(w, t.config, t.layout == 2);
    auto d = detect_upscale_arch(w, t.name);
    ASSERT_TRUE(d.is_ok()) << t.name << ": " << d.status().to_string();
    EXPECT_EQ(d->config.name(), t.arch) << t.name;
    EXPECT_EQ(d->config.scale(), t.scale) << t.name;
    EXPECT_EQ(d->config.image_channels(), t.image_channels) << t.name;
    EXPECT_EQ(d->config.num_filters, t.config.num_filters) << t.name;
    EXPECT_EQ(d->config.plus, t.config.plus) << t.name;
    if (t.config.arch == Arch::kEsrgan) {
      EXPECT_EQ(d->config.num_blocks, t.config.num_blocks) << t.name;
      EXPECT_EQ(d->config.shuffle, t.config.shuffle) << t.name;
    } else {
      EXPECT_EQ(d->config.num_conv, t.config.num_conv) << t.name;
    }
    auto net = make_upscale_net(d->config);
    EXPECT_TRUE(runtime::load_module_weights(*net, d->weights, "", t.name).is_ok()) << t.name;
  }
}

TEST_F(UpscaleModelTest, CommonModulePrefixIsRemoved) {
  runtime::WeightMap w;
  for (auto& [k, v] : random_upscale_weights(compact_config(4, 1, 2), 2)) w["module." + k] = v;
  auto d = detect_upscale_arch(w, "prefixed");
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  EXPECT_EQ(d->config.scale(), 2);
}

TEST_F(UpscaleModelTest, NewLayoutGivesTheSameImageAsOldLayout) {
  const ArchConfig c = esrgan_config(8, 2, 2);
  const runtime::WeightMap w = random_upscale_weights(c, 5);
  auto old_model = load(save("old.safetensors", w));
  auto new_model = load(save("new.safetensors", esrgan_to_new_layout(w, c)));
  ASSERT_TRUE(old_model && new_model);
  const at::Tensor img = image(1, 12, 10);
  auto a = upscale_image(*old_model, img, nullptr);
  auto b = upscale_image(*new_model, img, nullptr);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_TRUE(at::equal(*a, *b));
  EXPECT_TRUE(at::equal(*a, direct(c, w, img)));
  const UpscaleModelInfo info = upscale_model_info(*old_model);
  EXPECT_EQ(info.architecture, "ESRGAN");
  EXPECT_EQ(info.scale, 2);
}

TEST_F(UpscaleModelTest, ImageInOneTileIsTheNetworksOutputClamped) {
  const ArchConfig c = compact_config(8, 2, 4);
  const runtime::WeightMap w = random_upscale_weights(c, 9);
  auto m = load(save("compact.safetensors", w));
  ASSERT_TRUE(m);
  const at::Tensor img = image(2, 24, 40);
  int calls = 0, last_total = 0;
  auto out = upscale_image(*m, img, [&](int done, int total) {
    ++calls;
    last_total = total;
    EXPECT_EQ(done, calls);
    return true;
  });
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(out->sizes(), at::IntArrayRef({2, 96, 160, 3}));
  EXPECT_EQ(calls, 2);  // one tile per image
  EXPECT_EQ(last_total, 2);
  EXPECT_TRUE(at::equal(*out, direct(c, w, img)));
  EXPECT_GE(out->min().item<float>(), 0.0f);
  EXPECT_LE(out->max().item<float>(), 1.0f);
}

TEST_F(UpscaleModelTest, PixelUnshuffleModelsPadOddSizesAndCropThem) {
  const ArchConfig c2 = esrgan_config(8, 2, 4, 12, 3, 2);
  const runtime::WeightMap w2 = random_upscale_weights(c2, 11);
  auto m2 = load(save("x2.safetensors", esrgan_to_new_layout(w2, c2)));
  ASSERT_TRUE(m2);
  const at::Tensor odd = image(1, 13, 7);
  auto out = upscale_image(*m2, odd, nullptr);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(out->sizes(), at::IntArrayRef({1, 26, 14, 3}));
  // spandrel: reflect-pad to a multiple of 4 (16 × 8), run, clamp, crop.
  const at::Tensor padded = at::reflection_pad2d(odd.permute({0, 3, 1, 2}), {0, 1, 0, 3}).permute({0, 2, 3, 1});
  const at::Tensor want = direct(c2, w2, padded).narrow(1, 0, 26).narrow(2, 0, 14);
  EXPECT_TRUE(at::equal(*out, want));
  // A 1-pixel-wide image cannot be reflected: replicate padding does the rest.
  auto thin = upscale_image(*m2, image(1, 5, 1), nullptr);
  ASSERT_TRUE(thin.is_ok()) << thin.status().to_string();
  EXPECT_EQ(thin->sizes(), at::IntArrayRef({1, 10, 2, 3}));
}

TEST_F(UpscaleModelTest, TileBlendingMatchesComfyFormulasWorkedByHand) {
  // Width 14, tile 8, overlap 2, scale 1: tiles start at 0 and 6. Tile k returns the constant k, so the output
  // is sum(mask·k)/sum(mask) with masks [0.5, 1, …, 1, 0.5] along each axis (feather 2).
  EXPECT_EQ(tile_starts(14, 8, 2), (std::vector<int64_t>{0, 6}));
  EXPECT_EQ(tile_starts(1000, 512, 32), (std::vector<int64_t>{0, 480, 960}));
  EXPECT_EQ(tiled_scale_steps(1000, 600, 512, 32), 6);
  EXPECT_EQ(tiled_scale_steps(512, 512, 512, 32), 1);
  int tile_index = 0;
  auto fn = [&](const at::Tensor& t) { return at::full({1, 3, t.size(2), t.size(3)}, float(tile_index++)); };
  auto out = tiled_scale(at::zeros({1, 3, 5, 14}), fn, 8, 2, 1, 3, nullptr);
  ASSERT_TRUE(out.is_ok());
  const at::Tensor row = (*out)[0][0][2];
  for (int x = 0; x < 6; ++x) EXPECT_EQ(row[x].item<float>(), 0.0f) << x;
  EXPECT_EQ(row[6].item<float>(), 0.5f / 1.5f);  // tile 0 mask 1, tile 1 mask 0.5
  EXPECT_EQ(row[7].item<float>(), 1.0f / 1.5f);  // tile 0 mask 0.5, tile 1 mask 1
  for (int x = 8; x < 14; ++x) EXPECT_EQ(row[x].item<float>(), 1.0f) << x;
  // A tile shorter than twice the feather: lines are multiplied twice, rows first, in ComfyUI's order.
  const at::Tensor mask = tile_mask(5, 5, 4);
  const float r2 = 1.0f * 0.75f * 0.75f;
  EXPECT_EQ(mask[2][2].item<float>(), (r2 * 0.75f) * 0.75f);
  EXPECT_EQ(mask[0][1].item<float>(), (0.25f * 0.5f) * 1.0f);
  EXPECT_EQ(mask[1][3].item<float>(), ((0.5f * 1.0f) * 0.5f) * 1.0f);
}

TEST_F(UpscaleModelTest, LargeImageRunsInTilesAndCanBeInterrupted) {
  const ArchConfig c = compact_config(4, 1, 2);
  auto m = load(save("small.safetensors", random_upscale_weights(c, 4)));
  ASSERT_TRUE(m);
  const at::Tensor img = image(1, 20, 600);
  int seen_total = 0;
  auto out = upscale_image(*m, img, [&](int, int total) {
    seen_total = total;
    return true;
  });
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(seen_total, 2);  // starts 0 and 480
  EXPECT_EQ(out->sizes(), at::IntArrayRef({1, 40, 1200, 3}));
  // Where only tile 0 covers the image with mask 1 (past its 64-pixel feather, before tile 1), the output is
  // the network's own.
  const at::Tensor whole = direct(c, random_upscale_weights(c, 4), img);
  EXPECT_TRUE(at::equal(out->narrow(2, 64, 836), whole.narrow(2, 64, 836)));
  EXPECT_FALSE(at::equal(out->narrow(2, 960, 64), whole.narrow(2, 960, 64)));  // the seam is blended
  auto stopped = upscale_image(*m, img, [](int, int) { return false; });
  EXPECT_EQ(stopped.status().code(), StatusCode::kCancelled);
}

TEST_F(UpscaleModelTest, WrongImagesAreRefusedNamingTheModel) {
  auto m = load(save("one_channel.safetensors", random_upscale_weights(compact_config(4, 1, 2, 1), 4)));
  ASSERT_TRUE(m);
  auto r = upscale_image(*m, image(1, 8, 8), nullptr);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("one_channel.safetensors"), std::string::npos) << r.status().to_string();
  auto m3 = load(save("three.safetensors", random_upscale_weights(compact_config(4, 1, 2), 4)));
  ASSERT_TRUE(m3);
  EXPECT_FALSE(upscale_image(*m3, at::rand({8, 8, 3}), nullptr).is_ok());
  EXPECT_FALSE(upscale_image(*m3, at::Tensor(), nullptr).is_ok());
  EXPECT_FALSE(upscale_image(*m3, at::rand({1, 0, 8, 3}), nullptr).is_ok());
}

TEST_F(UpscaleModelTest, UnknownArchitectureIsRefusedNamingItsKeys) {
  runtime::WeightMap w = {{"encoder.weight", at::ones({2, 2})}, {"decoder.bias", at::ones({2})}};
  auto r = load_upscale_model(save("unknown.safetensors", w), EngineOptions{});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(r.status().message().find("unknown.safetensors"), std::string::npos);
  EXPECT_NE(r.status().message().find("'decoder.bias', 'encoder.weight'"), std::string::npos)
      << r.status().to_string();
}

TEST_F(UpscaleModelTest, BrokenStateDictsAreRefusedNotCrashed) {
  const ArchConfig c = esrgan_config(8, 2, 4);
  const runtime::WeightMap good = random_upscale_weights(c, 6);
  std::vector<std::pair<std::string, runtime::WeightMap>> bad;
  runtime::WeightMap missing = good;
  missing.erase("model.10.bias");
  bad.emplace_back("missing", missing);
  runtime::WeightMap shape = good;
  shape["model.1.sub.0.RDB1.conv1.0.weight"] = at::zeros({16, 8, 3, 3});  // growth 16, not spandrel's 32
  bad.emplace_back("shape", shape);
  runtime::WeightMap flat = good;
  flat["model.0.weight"] = at::zeros({8});
  bad.emplace_back("flat", flat);
  runtime::WeightMap index = good;
  index["model.x.weight"] = at::zeros({1});
  bad.emplace_back("index", index);
  runtime::WeightMap extra = good;
  extra["model.1.sub.0.RDB1.extra"] = at::zeros({1});
  bad.emplace_back("extra", extra);
  runtime::WeightMap compact = random_upscale_weights(compact_config(4, 1, 2), 1);
  compact["body.4.bias"] = at::zeros({7});  // not scale² × channels
  bad.emplace_back("compact", compact);
  for (const auto& [name, w] : bad) {
    auto r = load_upscale_model(save(name + ".safetensors", w), EngineOptions{});
    ASSERT_FALSE(r.is_ok()) << name;
    EXPECT_NE(r.status().message().find(name + ".safetensors"), std::string::npos) << r.status().to_string();
  }
}

// A short in-process fuzz of detection and loading: state dicts with keys dropped, renumbered or reshaped
// either load into a network that runs or are refused with a Status — never an abort or an exception.
TEST_F(UpscaleModelTest, MutatedStateDictsAreRefusedOrRun) {
  const ArchConfig esrgan = esrgan_config(4, 2, 2);
  const runtime::WeightMap bases[] = {random_upscale_weights(esrgan, 1),
                                      esrgan_to_new_layout(random_upscale_weights(esrgan, 2), esrgan),
                                      random_upscale_weights(compact_config(4, 1, 2), 3)};
  std::mt19937 rng(12345);
  int loaded = 0, refused = 0;
  for (int iter = 0; iter < 300; ++iter) {
    runtime::WeightMap w = bases[iter % 3];
    const int mutations = 1 + static_cast<int>(rng() % 3);
    for (int m = 0; m < mutations && !w.empty(); ++m) {
      auto it = std::next(w.begin(), static_cast<std::ptrdiff_t>(rng() % w.size()));
      std::string key = it->first;
      at::Tensor t = it->second;
      switch (rng() % 4) {
        case 0:
          w.erase(it);
          break;
        case 1: {  // renumber: one digit of the key changes
          const size_t d = key.find_first_of("0123456789");
          if (d == std::string::npos) break;
          w.erase(it);
          key[d] = static_cast<char>('0' + rng() % 10);
          w[key] = t;
          break;
        }
        case 2: {  // reshape
          std::vector<int64_t> shape(rng() % 5);
          for (int64_t& v : shape) v = static_cast<int64_t>(rng() % 40);
          it->second = at::zeros(shape);
          break;
        }
        default:
          w[key + (rng() % 2 ? ".extra" : "0")] = t;
      }
    }
    auto d = detect_upscale_arch(w, "mutated");
    if (!d.is_ok()) {
      ++refused;
      continue;
    }
    auto net = make_upscale_net(d->config);
    if (!runtime::load_module_weights(*net, d->weights, "", "mutated").is_ok()) {
      ++refused;
      continue;
    }
    ++loaded;
    c10::InferenceMode guard;
    const int64_t side = 8 * std::max<int64_t>(1, d->config.shuffle);
    EXPECT_EQ(net->forward(at::rand({1, d->config.image_channels(), side, side})).size(2), side * d->config.scale());
  }
  EXPECT_GT(refused, 100);
  EXPECT_GT(loaded, 0);  // some mutations are harmless (e.g. an extra unknown key in the new layout)
}

TEST_F(UpscaleModelTest, CorruptFilesAndPicklesAreRefused) {
  const std::string good = save("good.safetensors", random_upscale_weights(compact_config(4, 1, 2), 1));
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const auto write = [&](const std::string& name, const std::string& content) {
    std::ofstream((dir_ / name).string(), std::ios::binary) << content;
    return (dir_ / name).string();
  };
  for (size_t cut : {size_t{0}, size_t{5}, size_t{40}, bytes.size() / 2, bytes.size() - 1}) {
    auto r = load_upscale_model(write("cut.safetensors", bytes.substr(0, cut)), EngineOptions{});
    EXPECT_FALSE(r.is_ok()) << cut;
  }
  std::string flipped = bytes;
  flipped[8] = 'x';  // the header's opening brace
  EXPECT_FALSE(load_upscale_model(write("flipped.safetensors", flipped), EngineOptions{}).is_ok());
  for (const std::string name : {"model.pth", "zip.safetensors"}) {
    auto r = load_upscale_model(write(name, std::string("PK\x03\x04", 4) + "rest"), EngineOptions{});
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kUnsupported) << name;
    EXPECT_NE(r.status().message().find("safetensors"), std::string::npos);
    EXPECT_NE(r.status().message().find(name), std::string::npos);
  }
  EXPECT_FALSE(load_upscale_model((dir_ / "absent.safetensors").string(), EngineOptions{}).is_ok());
}

}  // namespace
}  // namespace netdist::upscale
