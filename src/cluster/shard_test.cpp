#include "cluster/shard.h"

#include <gtest/gtest.h>

#include "server/prompt_cost.h"

namespace netdist::cluster {
namespace {

Json shard_prompt() {
  return Json::parse(R"({
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 8}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["4", 1]}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["6", 0],
          "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}}
  })");
}

TEST(Shard, WorkflowKeepsAncestorsAndRenamesTheSampler) {
  auto wf = shard_workflow(shard_prompt(), "3", 2, 5);
  ASSERT_TRUE(wf.is_ok()) << wf.status().to_string();
  EXPECT_FALSE(wf->contains("8"));
  EXPECT_FALSE(wf->contains("9"));
  EXPECT_TRUE(wf->contains("4") && wf->contains("5") && wf->contains("6"));
  EXPECT_EQ((*wf)["3"]["class_type"], "NetdistShardKSampler");
  EXPECT_EQ((*wf)["3"]["inputs"]["row_begin"], 2);
  EXPECT_EQ((*wf)["3"]["inputs"]["row_end"], 5);
  EXPECT_EQ((*wf)[kShardOutputId]["inputs"]["samples"], Json::array({"3", 0}));
}

TEST(Shard, BadRequestsNameTheNode) {
  EXPECT_NE(shard_workflow(shard_prompt(), "8", 0, 1).status().message().find("8"), std::string::npos);
  EXPECT_FALSE(shard_workflow(shard_prompt(), "77", 0, 1).is_ok());
  EXPECT_FALSE(shard_workflow(shard_prompt(), "3", 3, 3).is_ok());
  Json broken = shard_prompt();
  broken["3"]["inputs"]["model"] = Json::array({"404", 0});
  EXPECT_NE(shard_workflow(broken, "3", 0, 1).status().message().find("404"), std::string::npos);
}

TEST(Shard, RequirementsAndMissing) {
  Requirements req = shard_requirements(shard_prompt(), "3");
  EXPECT_EQ(req.checkpoints, std::set<std::string>({"a.safetensors"}));
  EXPECT_TRUE(req.node_classes.count("KSampler"));
  EXPECT_FALSE(req.node_classes.count("SaveImage"));
  Json caps = {{"node_classes", {"CheckpointLoaderSimple", "EmptyLatentImage", "CLIPTextEncode"}},
               {"models", Json::array({{{"name", "b.safetensors"}}})}};
  std::vector<std::string> missing = missing_requirements(req, caps);
  ASSERT_EQ(missing.size(), 2u);
  EXPECT_EQ(missing[0], "checkpoint 'a.safetensors'");
  EXPECT_EQ(missing[1], "node class 'KSampler'");
  caps["node_classes"].push_back("KSampler");
  caps["models"].push_back({{"name", "a.safetensors"}});
  EXPECT_TRUE(missing_requirements(req, caps).empty());
  EXPECT_EQ(splittable_samplers(shard_prompt()), std::vector<std::string>({"3"}));
}

TEST(Shard, WholePromptOnlyForBatchOne) {
  Json p = shard_prompt();
  EXPECT_EQ(static_batch_size(p, "3"), std::optional<int64_t>(8));
  EXPECT_FALSE(is_whole_prompt(p));
  p["5"]["inputs"]["batch_size"] = 1;
  EXPECT_TRUE(is_whole_prompt(p));
  // A hires-fix chain: the second sampler's batch comes through LatentUpscale and the first sampler.
  p["10"] = {{"class_type", "LatentUpscale"}, {"inputs", {{"samples", Json::array({"3", 0})}}}};
  p["11"] = {{"class_type", "KSampler"}, {"inputs", {{"latent_image", Json::array({"10", 0})}}}};
  EXPECT_EQ(static_batch_size(p, "11"), std::optional<int64_t>(1));
  EXPECT_TRUE(is_whole_prompt(p));
  p["12"] = {{"class_type", "RepeatLatentBatch"}, {"inputs", {{"samples", Json::array({"5", 0})}, {"amount", 3}}}};
  p["11"]["inputs"]["latent_image"] = Json::array({"12", 0});
  EXPECT_EQ(static_batch_size(p, "11"), std::optional<int64_t>(3));
  EXPECT_FALSE(is_whole_prompt(p));
  p.erase("11");
  p["13"] = {{"class_type", "LoadImage"}, {"inputs", {{"image", "x.png"}}}};
  EXPECT_TRUE(is_whole_prompt(p)) << "input files travel with whole prompts too";
  // img2img: the sampler's latent is a loaded image, scaled and encoded: one row.
  p["15"] = {{"class_type", "ImageScale"}, {"inputs", {{"image", Json::array({"13", 0})}}}};
  p["16"] = {{"class_type", "VAEEncode"}, {"inputs", {{"pixels", Json::array({"15", 0})}}}};
  p["3"]["inputs"]["latent_image"] = Json::array({"16", 0});
  EXPECT_EQ(static_batch_size(p, "3"), std::optional<int64_t>(1));
  EXPECT_TRUE(is_whole_prompt(p));
  p["17"] = {{"class_type", "RepeatLatentBatch"}, {"inputs", {{"samples", Json::array({"16", 0})}, {"amount", 4}}}};
  p["3"]["inputs"]["latent_image"] = Json::array({"17", 0});
  EXPECT_EQ(static_batch_size(p, "3"), std::optional<int64_t>(4));
  EXPECT_FALSE(is_whole_prompt(p)) << "a repeated image is a batch to split";
  p["16"]["inputs"]["pixels"] = Json::array({"18", 0});
  p["18"] = {{"class_type", "ImageBatch"}, {"inputs", {}}};
  EXPECT_EQ(static_batch_size(p, "3"), std::nullopt) << "an unknown image node has no static batch";
  EXPECT_FALSE(is_whole_prompt(p));
  p["3"]["inputs"]["latent_image"] = Json::array({"5", 0});
  for (const char* id : {"13", "15", "16", "17", "18"}) p.erase(id);
  p["14"] = {{"class_type", "KSampler"}, {"inputs", {{"latent_image", Json::array({"99", 0})}}}};
  EXPECT_EQ(static_batch_size(p, "14"), std::nullopt) << "a link to a missing node has no static batch";
  EXPECT_FALSE(is_whole_prompt(p));
}

// The planner (static batch, whole-prompt choice) and the cost model read one graph analysis, so they agree
// on a hires fix: LatentUpscale keeps the first pass's batch (ComfyUI nodes.py) at the new size. The cost
// model used to count the second pass as one 512×512 image while the planner split its 8 rows.
TEST(Shard, PlannerAndCostModelAgreeThroughLatentUpscale) {
  Json p = shard_prompt();
  p["10"] = {{"class_type", "LatentUpscale"},
             {"inputs", {{"samples", Json::array({"3", 0})}, {"upscale_method", "bilinear"}, {"width", 128},
                         {"height", 192}, {"crop", "disabled"}}}};
  p["11"] = {{"class_type", "KSampler"}, {"inputs", {{"steps", 10}, {"latent_image", Json::array({"10", 0})}}}};
  EXPECT_EQ(static_batch_size(p, "11"), std::optional<int64_t>(8));
  const auto work = server::sampler_work(p, "11");
  ASSERT_TRUE(work);
  EXPECT_EQ(work->batch, 8);
  EXPECT_EQ(work->width, 128);
  EXPECT_EQ(work->height, 192);
  EXPECT_FALSE(is_whole_prompt(p));
  const graph::PromptAnalysis analysis = graph::PromptAnalysis::analyze_json(p);
  EXPECT_EQ(splittable_samplers(p), analysis.splittable_samplers());
  EXPECT_EQ(splittable_samplers(p), (std::vector<std::string>{"3", "11"}));
}

// A decoded batch that is encoded again keeps its batch: a batch-1 prompt that decodes and re-encodes runs
// whole (the earlier walk stopped at VAEDecode and split it).
TEST(Shard, DecodeThenEncodeKeepsTheBatch) {
  Json p = shard_prompt();
  p["5"]["inputs"]["batch_size"] = 1;
  p["12"] = {{"class_type", "VAEEncode"}, {"inputs", {{"pixels", Json::array({"8", 0})}, {"vae", Json::array({"4", 2})}}}};
  p["13"] = {{"class_type", "KSampler"}, {"inputs", {{"latent_image", Json::array({"12", 0})}}}};
  EXPECT_EQ(static_batch_size(p, "13"), std::optional<int64_t>(1));
  EXPECT_TRUE(is_whole_prompt(p));
  p["5"]["inputs"]["batch_size"] = 2;
  EXPECT_EQ(static_batch_size(p, "13"), std::optional<int64_t>(2));
  EXPECT_FALSE(is_whole_prompt(p));
  EXPECT_FALSE(is_whole_prompt(Json{{"1", 5}})) << "a prompt that does not parse is never whole";
}

TEST(Shard, PromptRequirementsNameEveryClassAndCheckpoint) {
  Requirements r = prompt_requirements(shard_prompt());
  EXPECT_EQ(r.checkpoints, std::set<std::string>({"a.safetensors"}));
  EXPECT_TRUE(r.node_classes.count("SaveImage") && r.node_classes.count("VAEDecode"));
}

TEST(Shard, BoundsAreContiguousRunsOfGroupsSharedBySpeed) {
  const std::vector<int64_t> ten = {0, 2, 5, 7, 10};  // micro_batch_bounds(10)
  EXPECT_EQ(shard_bounds(ten, {}), ten);
  EXPECT_EQ(shard_bounds(ten, {1.0}), (std::vector<int64_t>{0, 10}));
  EXPECT_EQ(shard_bounds(ten, {1.0, 1.0}), (std::vector<int64_t>{0, 5, 10}));
  EXPECT_EQ(shard_bounds(ten, {3.0, 1.0}), (std::vector<int64_t>{0, 7, 10}));
  EXPECT_EQ(shard_bounds(ten, {1.0, 1.0, 1.0}), (std::vector<int64_t>{0, 2, 7, 10}));
  EXPECT_EQ(shard_bounds(ten, {1.0, 1.0, 1.0, 1.0}), ten);
  EXPECT_EQ(shard_bounds(ten, {1, 1, 1, 1, 1, 1}), ten);
  // A very fast worker still leaves one group to each other run.
  EXPECT_EQ(shard_bounds(ten, {100.0, 1.0, 1.0}), (std::vector<int64_t>{0, 5, 7, 10}));
  const std::vector<int64_t> one = {0, 1};
  EXPECT_EQ(shard_bounds(one, {1.0, 1.0}), one);
}

}  // namespace
}  // namespace netdist::cluster
