#include "server/prompt_cost.h"

#include <gtest/gtest.h>

namespace netdist::server {
namespace {

using json = nlohmann::ordered_json;

json latent(int w, int h, int batch) {
  return {{"class_type", "EmptyLatentImage"}, {"inputs", {{"width", w}, {"height", h}, {"batch_size", batch}}}};
}

json ksampler(int steps, const json& latent_link) {
  return {{"class_type", "KSampler"}, {"inputs", {{"steps", steps}, {"latent_image", latent_link}, {"seed", 1}}}};
}

TEST(PromptCost, StepsTimesBatchTimesPixelsOver64Squared) {
  const json p = {{"5", latent(128, 64, 3)}, {"3", ksampler(20, json::array({"5", 0}))}};
  auto w = sampler_work(p, "3");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->steps, 20);
  EXPECT_EQ(w->batch, 3);
  EXPECT_DOUBLE_EQ(w->units_per_row(), 20.0 * 2);
  EXPECT_DOUBLE_EQ(predict_prompt_units(p), 20.0 * 3 * 2);
  EXPECT_FALSE(sampler_work(p, "5"));
  EXPECT_FALSE(sampler_work(p, "404"));
}

TEST(PromptCost, FollowsLatentChainsAndSumsSamplers) {
  // EmptyLatent 64² ×2 → Repeat ×3 (6 rows) → KSampler 10 steps → KSamplerAdvanced steps 30, 10..25.
  json adv = {{"class_type", "KSamplerAdvanced"},
              {"inputs", {{"steps", 30}, {"start_at_step", 10}, {"end_at_step", 25}, {"latent_image", json::array({"3", 0})}}}};
  const json p = {{"5", latent(64, 64, 2)},
                  {"6", {{"class_type", "RepeatLatentBatch"}, {"inputs", {{"samples", json::array({"5", 0})}, {"amount", 3}}}}},
                  {"3", ksampler(10, json::array({"6", 0}))},
                  {"7", adv},
                  {"8", {{"class_type", "LatentFromBatch"}, {"inputs", {{"samples", json::array({"6", 0})}, {"batch_index", 1}, {"length", 2}}}}},
                  {"9", ksampler(4, json::array({"8", 0}))}};
  EXPECT_DOUBLE_EQ(sampler_work(p, "3")->units(), 10.0 * 6);
  EXPECT_EQ(sampler_work(p, "7")->steps, 15);
  EXPECT_EQ(sampler_work(p, "7")->batch, 6);
  EXPECT_EQ(sampler_work(p, "9")->batch, 2);
  EXPECT_DOUBLE_EQ(predict_prompt_units(p), 60.0 + 90.0 + 8.0);
}

TEST(PromptCost, UnknownSourcesCountAsOne512ImageAndBadInputNeverThrows) {
  const json vae = {{"10", {{"class_type", "VAEEncode"}, {"inputs", json::object()}}}, {"3", ksampler(2, json::array({"10", 0}))}};
  EXPECT_DOUBLE_EQ(predict_prompt_units(vae), 2.0 * 64);
  const json broken = {{"3", ksampler(2, json::array({"nowhere", 0}))}};
  EXPECT_DOUBLE_EQ(predict_prompt_units(broken), 2.0 * 64);
  const json cyclic = {{"3", ksampler(1, json::array({"4", 0}))}, {"4", ksampler(1, json::array({"3", 0}))}};
  EXPECT_DOUBLE_EQ(predict_prompt_units(cyclic), 2.0 * 64);
  json text = {{"5", latent(64, 64, 1)}, {"3", ksampler(5, json::array({"5", 0}))}};
  text["3"]["inputs"]["steps"] = "many";
  EXPECT_DOUBLE_EQ(predict_prompt_units(text), 20.0);
  EXPECT_DOUBLE_EQ(predict_prompt_units(json::array()), 0.0);
  EXPECT_DOUBLE_EQ(predict_prompt_units(json{{"1", 5}}), 0.0);
}

// The second pass of a hires fix samples the first pass's batch at the upscaled size (ComfyUI nodes.py
// LatentUpscale keeps the batch). Before the graph analysis the cost model counted it as one 512×512 image
// while the planner followed the batch.
TEST(PromptCost, LatentUpscaleKeepsTheBatchAtTheNewSize) {
  const json p = {{"5", latent(512, 512, 4)},
                  {"3", ksampler(20, json::array({"5", 0}))},
                  {"10", {{"class_type", "LatentUpscale"},
                          {"inputs", {{"samples", json::array({"3", 0})}, {"upscale_method", "nearest-exact"},
                                      {"width", 1024}, {"height", 768}, {"crop", "disabled"}}}}},
                  {"11", ksampler(10, json::array({"10", 0}))},
                  {"12", {{"class_type", "LatentUpscaleBy"},
                          {"inputs", {{"samples", json::array({"3", 0})}, {"scale_by", 2.0}}}}},
                  {"13", ksampler(1, json::array({"12", 0}))}};
  auto w = sampler_work(p, "11");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->batch, 4);
  EXPECT_EQ(w->width, 1024);
  EXPECT_EQ(w->height, 768);
  EXPECT_DOUBLE_EQ(w->units(), 10.0 * 4 * 1024 * 768 / 4096);
  EXPECT_EQ(sampler_work(p, "13")->batch, 4);
  EXPECT_EQ(sampler_work(p, "13")->width, 1024);
  // The same numbers from the analysis a validated prompt carries.
  const graph::PromptAnalysis a = graph::PromptAnalysis::analyze_json(p);
  EXPECT_DOUBLE_EQ(predict_prompt_units(a), predict_prompt_units(p));
  EXPECT_DOUBLE_EQ(predict_prompt_units(a), 20.0 * 4 * 64 + 10.0 * 4 * 192 + 1.0 * 4 * 256);
}

}  // namespace
}  // namespace netdist::server
