// Quality of the embedded model (models/tiny-emoji.safetensors), measured on the CPU with the public engine
// API. Prints the measured rates next to issue #4's targets (80 % colour match, 60 % top-5 retrieval),
// which the shipped model does not reach yet; the assertions are regression floors just below what it
// measures today, so a worse model or a broken pipeline fails. Feature space for retrieval: the image
// composited over white, area- downsampled to 16×16 RGB, compared by Euclidean distance (documented in
// models/README.md).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <ATen/Parallel.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "io/png.h"
#include "netdist/engine.h"
#include "netdist/source_dir.h"

namespace netdist {
namespace {

std::string model_path() {
  return (std::filesystem::path(NETDIST_SOURCE_DIR) / "models/tiny-emoji.safetensors").string();
}

std::shared_ptr<Model> tiny() {
  static std::shared_ptr<Model> model = [] {
    auto m = load_model(model_path(), {});
    EXPECT_TRUE(m.is_ok()) << m.status().to_string();
    return m.is_ok() ? *m : nullptr;
  }();
  return model;
}

// [N, 64, 64, 3] in [0, 1] for N prompts, one seed each, 20 euler steps, CFG 8.
at::Tensor generate(const std::vector<std::string>& prompts, uint64_t seed) {
  Model& m = *tiny();
  Conditioning neg = encode_prompt(m, "").value();
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < prompts.size(); ++i) {
    SampleRequest req;
    req.seed = seed + i;
    req.steps = 20;
    req.cfg = 8.0;
    req.sampler = "euler";
    req.scheduler = "normal";
    req.latent = empty_latent(m, 1, 64, 64);
    Conditioning pos = encode_prompt(m, prompts[i]).value();
    out.push_back(decode(m, sample(m, pos, neg, req, nullptr).value()).value());
  }
  return at::cat(out);
}

// 0 red, 1 orange, 2 yellow, 3 green, 4 blue, 5 purple; -1 when no saturated pixels. The orange/yellow
// boundary sits at 39°, midway between the training palettes' orange and yellow: Twemoji's orange is 34°
// and its yellow 42°, Noto's orange 36° and its yellow 45° (a 45° boundary would call Twemoji's yellow
// orange).
int dominant_hue(const at::Tensor& image) {
  std::array<int, 6> bins{};
  at::Tensor px = image.contiguous();
  const float* p = px.data_ptr<float>();
  for (int64_t i = 0; i < px.size(0) * px.size(1); ++i) {
    float r = p[3 * i], g = p[3 * i + 1], b = p[3 * i + 2];
    float mx = std::max({r, g, b}), mn = std::min({r, g, b});
    if (mx < 0.2f || (mx - mn) / std::max(mx, 1e-6f) < 0.35f) continue;
    float h;
    if (mx == r)
      h = 60.0f * std::fmod((g - b) / (mx - mn), 6.0f);
    else if (mx == g)
      h = 60.0f * ((b - r) / (mx - mn) + 2.0f);
    else
      h = 60.0f * ((r - g) / (mx - mn) + 4.0f);
    if (h < 0) h += 360.0f;
    int bin = h < 15 || h >= 345 ? 0 : h < 39 ? 1 : h < 70 ? 2 : h < 170 ? 3 : h < 260 ? 4 : 5;
    bins[bin]++;
  }
  int best = 0;
  for (int k = 1; k < 6; ++k)
    if (bins[k] > bins[best]) best = k;
  return bins[best] == 0 ? -1 : best;
}

TEST(TinyModel, LoadsAsSd1WithItsOwnVocabulary) {
  ASSERT_TRUE(tiny());
  ModelInfo info = model_info(*tiny());
  EXPECT_EQ(info.family, "sd1");
  EXPECT_EQ(info.prediction, "eps");
  EXPECT_EQ(info.default_size, 64);
}

TEST(TinyModel, ColourWordsGiveTheirHue) {
  ASSERT_TRUE(tiny());
  const std::vector<std::pair<std::string, int>> cases = {
      {"red heart", 0},          {"orange heart", 1},        {"yellow heart", 2},
      {"green heart", 3},        {"blue heart", 4},          {"purple heart", 5},
      {"large red square", 0},   {"large orange square", 1}, {"large yellow square", 2},
      {"large green square", 3}, {"large blue square", 4},   {"large purple square", 5},
      {"large red circle", 0},   {"large orange circle", 1}, {"large yellow circle", 2},
      {"large green circle", 3}, {"large blue circle", 4},   {"large purple circle", 5},
      {"red apple", 0},          {"green apple", 3},         {"blue book", 4},
      {"orange book", 1},        {"green book", 3},          {"lemon", 2}};
  std::vector<std::string> prompts;
  for (const auto& c : cases) prompts.push_back(c.first);
  // Two seeds per prompt: 48 images, so that one borderline image moves the rate by 2 %, not 4 %.
  int hits = 0, total = 0;
  for (uint64_t seed : {1000u, 2000u}) {
    at::Tensor images = generate(prompts, seed);
    for (size_t i = 0; i < cases.size(); ++i, ++total) {
      int hue = dominant_hue(images[i]);
      hits += hue == cases[i].second;
      if (hue != cases[i].second) std::printf("  miss: '%s' gave hue bin %d\n", cases[i].first.c_str(), hue);
    }
  }
  const double rate = double(hits) / total;
  std::printf("[tiny-model] colour match: %d/%d = %.0f%% (issue #4 target 80%%)\n", hits, total, 100 * rate);
  EXPECT_GE(rate, 0.8);
}

at::Tensor features(const at::Tensor& images /*[N,64,64,3]*/) {
  return at::adaptive_avg_pool2d(images.permute({0, 3, 1, 2}), {16, 16}).reshape({images.size(0), -1});
}

TEST(TinyModel, CaptionsRetrieveTheirTrainingImage) {
  ASSERT_TRUE(tiny());
  const std::string dir = (std::filesystem::path(NETDIST_SOURCE_DIR) / "tests/data/emoji").string();
  std::ifstream in(dir + "/captions.json");
  ASSERT_TRUE(in) << "missing " << dir << "/captions.json";
  nlohmann::json cases = nlohmann::json::parse(in);
  ASSERT_GE(cases.size(), 100u);
  std::vector<at::Tensor> candidates;
  std::vector<std::string> prompts;
  for (const auto& c : cases) {
    auto bytes = io::read_file(dir + "/" + c["file"].get<std::string>()).value();
    auto decoded = io::decode_png(bytes, c["file"]).value().first;
    ASSERT_EQ(decoded.channels, 3);
    candidates.push_back(at::from_blob(decoded.pixels.data(), {64, 64, 3}, at::kByte).to(at::kFloat) / 255.0);
    prompts.push_back(c["caption"]);
  }
  at::Tensor cand = features(at::stack(candidates));
  const int n_queries = 50;
  at::Tensor images = generate(std::vector<std::string>(prompts.begin(), prompts.begin() + n_queries), 2000);
  at::Tensor dist = at::cdist(features(images), cand);  // [50, 100]
  int hits = 0, top1 = 0;
  for (int q = 0; q < n_queries; ++q) {
    at::Tensor order = dist[q].argsort();
    for (int k = 0; k < 5; ++k) hits += order[k].item<int64_t>() == q;
    top1 += order[0].item<int64_t>() == q;
  }
  const double rate = double(hits) / n_queries;
  std::printf("[tiny-model] retrieval top-5 of %zu: %d/%d = %.0f%% (issue #4 target 60%%)\n", cases.size(),
              hits, n_queries, 100 * rate);
  // Issue #21 asks a retrained model for top-1 >= 60 %; printed until that model ships.
  std::printf("[tiny-model] retrieval top-1 of %zu: %d/%d = %.0f%%\n", cases.size(), top1, n_queries,
              100.0 * top1 / n_queries);
  EXPECT_GE(rate, 0.6);
}

TEST(TinyModel, SameSeedSameBytesAcrossThreadCounts) {
  ASSERT_TRUE(tiny());
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  at::Tensor one = generate({"red heart", "grinning face"}, 7);
  at::set_num_threads(std::max(2, threads));
  at::Tensor many = generate({"red heart", "grinning face"}, 7);
  at::Tensor again = generate({"red heart", "grinning face"}, 7);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(many, again));
  EXPECT_TRUE(at::equal(one, many)) << "max diff " << (one - many).abs().max().item<double>();
}

}  // namespace
}  // namespace netdist
