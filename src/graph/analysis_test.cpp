#include "graph/analysis.h"

#include <gtest/gtest.h>

namespace netdist::graph {
namespace {

using Dim = std::optional<int64_t>;
constexpr Dim kUnknown = std::nullopt;

Json link(const char* id, int slot = 0) { return Json::array({id, slot}); }
Json node(const char* cls, Json inputs) { return {{"class_type", cls}, {"inputs", std::move(inputs)}}; }
Json empty_latent(int w, int h, int batch) {
  return node("EmptyLatentImage", {{"width", w}, {"height", h}, {"batch_size", batch}});
}

PromptAnalysis analyze(const Json& p) {
  auto parsed = Prompt::parse(p);
  EXPECT_TRUE(parsed.is_ok()) << parsed.status().to_string();
  return PromptAnalysis::analyze(*parsed);
}

BatchShape latent(Dim b, Dim c, Dim h, Dim w) { return BatchShape{BatchKind::latent, b, c, h, w}; }
BatchShape image(Dim b, Dim c, Dim h, Dim w) { return BatchShape{BatchKind::image, b, c, h, w}; }

std::optional<BatchShape> out(const PromptAnalysis& a, const std::string& id) {
  const NodeAnalysis* n = a.find(id);
  EXPECT_NE(n, nullptr) << id;
  return n ? n->output : std::nullopt;
}

TEST(GraphAnalysis, EmptyLatentRepeatAndFromBatch) {
  const Json p = {{"1", empty_latent(768, 512, 2)},
                  {"2", node("RepeatLatentBatch", {{"samples", link("1")}, {"amount", 3}})},
                  {"3", node("LatentFromBatch", {{"samples", link("2")}, {"batch_index", 4}, {"length", 5}})},
                  {"4", node("LatentFromBatch", {{"samples", link("2")}, {"batch_index", 60}, {"length", 2}})},
                  {"5", node("LatentFromBatch", {{"samples", link("9")}, {"batch_index", 0}, {"length", 1}})},
                  {"6", node("LatentFromBatch", {{"samples", link("9")}, {"batch_index", 0}, {"length", 2}})},
                  {"7", node("RepeatLatentBatch", {{"samples", link("9")}, {"amount", 2}})}};
  const PromptAnalysis a = analyze(p);
  EXPECT_EQ(out(a, "1"), latent(2, 4, 64, 96));
  EXPECT_EQ(out(a, "2"), latent(6, 4, 64, 96));
  EXPECT_EQ(out(a, "3"), latent(2, 4, 64, 96)) << "rows 4..6 of 6";
  EXPECT_EQ(out(a, "4"), latent(1, 4, 64, 96)) << "the index is clamped to the last row";
  EXPECT_EQ(out(a, "5"), latent(1, kUnknown, kUnknown, kUnknown)) << "length 1 of an unknown batch";
  EXPECT_EQ(out(a, "6"), latent(kUnknown, kUnknown, kUnknown, kUnknown));
  EXPECT_EQ(out(a, "7"), latent(kUnknown, kUnknown, kUnknown, kUnknown));
}

// ComfyUI nodes.py LatentUpscale: the input's batch, width // 8 × height // 8 with each side at least 64 px;
// a side of 0 follows the input's aspect ratio; 0 × 0 passes the input through.
TEST(GraphAnalysis, LatentUpscaleKeepsTheBatchAndTakesTheNewSize) {
  const Json p = {{"1", empty_latent(512, 256, 3)},
                  {"2", node("LatentUpscale", {{"samples", link("1")}, {"upscale_method", "nearest-exact"},
                                               {"width", 1024}, {"height", 768}, {"crop", "disabled"}})},
                  {"3", node("LatentUpscale", {{"samples", link("1")}, {"width", 0}, {"height", 512}})},
                  {"4", node("LatentUpscale", {{"samples", link("1")}, {"width", 1000}, {"height", 0}})},
                  {"5", node("LatentUpscale", {{"samples", link("1")}, {"width", 0}, {"height", 0}})},
                  {"6", node("LatentUpscale", {{"samples", link("1")}, {"width", 8}, {"height", 16}})},
                  {"7", node("LatentUpscale", {{"samples", link("99")}, {"width", 0}, {"height", 512}})}};
  const PromptAnalysis a = analyze(p);
  EXPECT_EQ(out(a, "2"), latent(3, 4, 96, 128));
  EXPECT_EQ(out(a, "3"), latent(3, 4, 64, 128)) << "width = round(64 * 512 / 32) px";
  EXPECT_EQ(out(a, "4"), latent(3, 4, 62, 125)) << "height = round(32 * 1000 / 64) = 500 px";
  EXPECT_EQ(out(a, "5"), latent(3, 4, 32, 64));
  EXPECT_EQ(out(a, "6"), latent(3, 4, 8, 8)) << "each side at least 64 px";
  EXPECT_EQ(out(a, "7"), latent(kUnknown, kUnknown, 64, kUnknown)) << "aspect ratio of an unknown input";
}

TEST(GraphAnalysis, LatentUpscaleByRoundsHalfToEven) {
  const Json p = {{"1", empty_latent(520, 200, 2)},  // 65 × 25 latent
                  {"2", node("LatentUpscaleBy", {{"samples", link("1")}, {"scale_by", 1.5}})},
                  {"3", node("LatentUpscaleBy", {{"samples", link("1")}, {"scale_by", 0.5}})}};
  const PromptAnalysis a = analyze(p);
  EXPECT_EQ(out(a, "2"), latent(2, 4, 38, 98)) << "37.5 → 38, 97.5 → 98";
  EXPECT_EQ(out(a, "3"), latent(2, 4, 12, 32)) << "12.5 → 12, 32.5 → 32";
}

TEST(GraphAnalysis, SamplersPassTheirLatentOnAndSayHowTheySplit) {
  const Json p = {{"1", empty_latent(512, 512, 4)},
                  {"2", node("KSampler", {{"steps", 30}, {"latent_image", link("1")}})},
                  {"3", node("KSamplerAdvanced", {{"steps", 30}, {"start_at_step", 10}, {"end_at_step", 25},
                                                  {"latent_image", link("2")}})},
                  {"4", node("NetdistShardKSampler", {{"steps", 5}, {"latent_image", link("1")},
                                                      {"row_begin", 1}, {"row_end", 3}})},
                  {"5", node("KSamplerAdvanced", {{"steps", 10}, {"start_at_step", 12}, {"latent_image", link("1")}})},
                  {"6", node("KSampler", {{"steps", "many"}, {"latent_image", link("1")}})}};
  const PromptAnalysis a = analyze(p);
  EXPECT_EQ(out(a, "2"), latent(4, 4, 64, 64));
  EXPECT_EQ(out(a, "3"), latent(4, 4, 64, 64));
  EXPECT_EQ(out(a, "4"), latent(2, 4, 64, 64)) << "a shard sampler outputs its rows";
  ASSERT_EQ(a.samplers().size(), 5u);
  EXPECT_EQ(a.sampler("2")->split, SplitKind::batch_rows);
  EXPECT_EQ(a.sampler("2")->steps, 30);
  EXPECT_EQ(a.sampler("3")->steps, 15);
  EXPECT_EQ(a.sampler("3")->latent, latent(4, 4, 64, 64));
  EXPECT_EQ(a.sampler("4")->split, SplitKind::none);
  EXPECT_EQ(a.sampler("5")->steps, 0) << "starting after the last step samples nothing";
  EXPECT_EQ(a.sampler("6")->steps, 20) << "a non-number counts as the default";
  EXPECT_EQ(a.sampler("1"), nullptr);
  EXPECT_EQ(a.splittable_samplers(), (std::vector<std::string>{"2", "3", "5", "6"}));
  EXPECT_FALSE(a.runs_whole());
}

TEST(GraphAnalysis, ImagesEncodeDecodeScaleAndBatch) {
  const Json p = {{"1", node("LoadImage", {{"image", "a.png"}})},
                  {"2", empty_latent(512, 384, 2)},
                  {"3", node("VAEDecode", {{"samples", link("2")}, {"vae", link("9", 2)}})},
                  {"4", node("ImageScale", {{"image", link("3")}, {"width", 0}, {"height", 300}})},
                  {"5", node("ImageScaleBy", {{"image", link("3")}, {"scale_by", 0.5}})},
                  {"6", node("VAEEncode", {{"pixels", link("4")}, {"vae", link("9", 2)}})},
                  {"7", node("ImageBatch", {{"image1", link("3")}, {"image2", link("1")}})},
                  {"8", node("CombineImageBatch", {{"images_a", link("3")}, {"images_b", link("5")}})},
                  {"10", node("CombineImageBatch", {{"images_a", link("3")}, {"images_b", link("3")}})},
                  {"11", node("CombineImageBatch", {{"images_a", link("3")}, {"images_b", link("1")}})},
                  {"12", node("VAEDecodeTiled", {{"samples", link("6")}})},
                  {"13", node("VAEEncode", {{"pixels", link("1", 1)}})}};
  const PromptAnalysis a = analyze(p);
  EXPECT_EQ(out(a, "1"), image(1, kUnknown, kUnknown, kUnknown));
  EXPECT_EQ(out(a, "3"), image(2, 3, 384, 512));
  EXPECT_EQ(out(a, "4"), image(2, 3, 300, 400));
  EXPECT_EQ(out(a, "5"), image(2, 3, 192, 256));
  EXPECT_EQ(out(a, "6"), latent(2, kUnknown, 37, 50)) << "the VAE's channels are not in the prompt";
  EXPECT_EQ(out(a, "7"), image(3, 3, 384, 512));
  EXPECT_EQ(out(a, "8"), image(2, 3, 384, 512)) << "sizes differ: images_a alone";
  EXPECT_EQ(out(a, "10"), image(4, 3, 384, 512));
  EXPECT_EQ(out(a, "11"), image(kUnknown, 3, 384, 512));
  EXPECT_EQ(out(a, "12"), image(2, 3, 296, 400));
  EXPECT_EQ(out(a, "13"), latent(kUnknown, kUnknown, kUnknown, kUnknown)) << "slot 1 (MASK) is not the image";
}

TEST(GraphAnalysis, LoadedLatentsAndProducersAndConsumers) {
  const Json p = {{"1", node("LoadLatentNumpy", {{"latent", "x.npy"}})},
                  {"2", node("LoadLatentUrl", {{"url", "http://h/x.latent"}})},
                  {"3", node("KSampler", {{"latent_image", link("1")}, {"model", link("4")}})},
                  {"4", node("CheckpointLoaderSimple", {{"ckpt_name", "a.safetensors"}})},
                  {"5", node("SaveLatentNumpy", {{"samples", link("3")}, {"filename_prefix", "x"}})},
                  {"6", node("VAEDecode", {{"samples", link("2")}, {"vae", link("4", 2)}})},
                  {"7", node("SaveImage", {{"images", link("6")}})}};
  const PromptAnalysis a = analyze(p);
  EXPECT_EQ(out(a, "1"), latent(kUnknown, kUnknown, kUnknown, kUnknown));
  EXPECT_EQ(out(a, "2"), latent(kUnknown, kUnknown, kUnknown, kUnknown));
  EXPECT_TRUE(a.find("1")->produces_batch());
  EXPECT_FALSE(a.find("1")->consumes_batch());
  EXPECT_EQ(a.find("3")->batch_inputs, std::vector<std::string>{"latent_image"});
  EXPECT_FALSE(a.find("4")->produces_batch());
  EXPECT_FALSE(a.find("4")->consumes_batch());
  EXPECT_EQ(a.find("5")->batch_inputs, std::vector<std::string>{"samples"});
  EXPECT_FALSE(a.find("5")->produces_batch());
  EXPECT_EQ(a.find("6")->batch_inputs, std::vector<std::string>{"samples"}) << "vae is not a batch";
  EXPECT_EQ(a.find("7")->batch_inputs, std::vector<std::string>{"images"});
  EXPECT_FALSE(a.runs_whole()) << "a loaded latent's batch is unknown";
}

TEST(GraphAnalysis, WholeOnlyWhenEverySplittableSamplerHasOneRow) {
  Json p = {{"1", empty_latent(512, 512, 1)}, {"2", node("KSampler", {{"latent_image", link("1")}})}};
  EXPECT_TRUE(analyze(p).runs_whole());
  p["3"] = node("LatentUpscale", {{"samples", link("2")}, {"width", 1024}, {"height", 1024}});
  p["4"] = node("KSampler", {{"latent_image", link("3")}});
  EXPECT_TRUE(analyze(p).runs_whole()) << "hires fix of one image";
  p["1"]["inputs"]["batch_size"] = 2;
  EXPECT_FALSE(analyze(p).runs_whole());
  EXPECT_TRUE(analyze(Json::object()).runs_whole());
  EXPECT_TRUE(PromptAnalysis::analyze_json(Json::array()).nodes().empty());
}

TEST(GraphAnalysis, CyclesBrokenLinksAndBadLiteralsGiveUnknownSizes) {
  const Json p = {{"1", node("KSampler", {{"latent_image", link("2")}})},
                  {"2", node("RepeatLatentBatch", {{"samples", link("1")}, {"amount", 2}})},
                  {"3", node("KSampler", {{"latent_image", link("nowhere")}})},
                  {"4", node("EmptyLatentImage", {{"width", "wide"}, {"height", 1e300}, {"batch_size", -3}})},
                  {"5", node("KSampler", {{"latent_image", Json::array({"4", 0.5})}})}};
  const PromptAnalysis a = analyze(p);
  EXPECT_EQ(a.sampler("1")->latent.batch, kUnknown);
  EXPECT_EQ(a.sampler("3")->latent, latent(kUnknown, kUnknown, kUnknown, kUnknown));
  EXPECT_EQ(out(a, "4"), latent(-3, 4, 268435456, kUnknown)) << "numbers clamped to 2^31, non-numbers unknown";
  EXPECT_EQ(a.sampler("5")->latent.batch, kUnknown) << "a float slot is not a link";
}

TEST(GraphAnalysis, DeepChainsStopAtTheDepthLimit) {
  Json p = {{"0", empty_latent(64, 64, 1)}};
  const int n = kMaxAnalysisDepth + 10;
  for (int i = 1; i <= n; ++i)
    p[std::to_string(i)] = node("LatentUpscaleBy", {{"samples", Json::array({std::to_string(i - 1), 0})}, {"scale_by", 1.0}});
  // Analyzed from the deep end first, the chain is too deep; nodes near the root still know their batch.
  Json reversed = Json::object();
  for (int i = n; i >= 0; --i) reversed[std::to_string(i)] = p[std::to_string(i)];
  const PromptAnalysis a = analyze(reversed);
  EXPECT_EQ(out(a, std::to_string(n))->batch, kUnknown);
  EXPECT_EQ(out(a, "5")->batch, Dim(1));
}

}  // namespace
}  // namespace netdist::graph
