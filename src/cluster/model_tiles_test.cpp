// The upscale-model and VAE tile tasks' workflow and requirements (model_tiles.h) and the tile job's
// encoding (nodes/model_tile_nodes.h): the model input's upstream is kept and nothing else, the tile node
// carries the model link and the tile job, bad prompts and bad tile jobs are refused naming what is wrong.
#include <gtest/gtest.h>

#include "cluster/model_tiles.h"
#include "cluster/shard.h"
#include "nodes/model_tile_nodes.h"

namespace netdist::cluster {
namespace {

Json model_tiles_test_prompt() {
  return Json::parse(R"({
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-emoji.safetensors"}},
    "1": {"class_type": "LoadImage", "inputs": {"image": "src.png"}},
    "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "x2.safetensors"}},
    "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
    "11": {"class_type": "VAEEncode", "inputs": {"pixels": ["3", 0], "vae": ["4", 2]}},
    "12": {"class_type": "VAEDecodeTiled", "inputs": {"samples": ["11", 0], "vae": ["4", 2], "tile_size": 128,
           "overlap": 32, "temporal_size": 64, "temporal_overlap": 8}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["12", 0]}}
  })");
}

const nodes::ModelTileKind& model_tiles_kind(const char* cls) {
  const nodes::ModelTileKind* k = nodes::model_tile_kind(cls);
  EXPECT_NE(k, nullptr) << cls;
  static const nodes::ModelTileKind none;
  return k ? *k : none;
}

TEST(ModelTileWorkflow, UpscaleWorkflowKeepsOnlyTheModelLoader) {
  auto wf = model_tile_workflow(model_tiles_test_prompt(), "3", model_tiles_kind("ImageUpscaleWithModel"), "{}");
  ASSERT_TRUE(wf.is_ok()) << wf.status().message();
  EXPECT_EQ(wf->size(), 2u) << wf->dump();
  EXPECT_TRUE(wf->contains("2"));
  const Json& node = (*wf)[kShardOutputId];
  EXPECT_EQ(node["class_type"], nodes::kUpscaleTileNode);
  EXPECT_EQ(node["inputs"]["upscale_model"], Json::array({"2", 0}));
  EXPECT_EQ(node["inputs"]["tile_job"], "{}");
  const Requirements req =
      model_tile_requirements(model_tiles_test_prompt(), "3", model_tiles_kind("ImageUpscaleWithModel"));
  EXPECT_EQ(req.node_classes, (std::set<std::string>{"UpscaleModelLoader", nodes::kUpscaleTileNode}));
  EXPECT_TRUE(req.checkpoints.empty());
}

TEST(ModelTileWorkflow, VaeWorkflowKeepsTheCheckpointAndNotTheLatentsUpstream) {
  auto wf = model_tile_workflow(model_tiles_test_prompt(), "12", model_tiles_kind("VAEDecodeTiled"), "job");
  ASSERT_TRUE(wf.is_ok()) << wf.status().message();
  EXPECT_EQ(wf->size(), 2u) << wf->dump();
  EXPECT_EQ((*wf)["4"]["class_type"], "CheckpointLoaderSimple");
  EXPECT_EQ((*wf)[kShardOutputId]["class_type"], nodes::kVaeDecodeTileNode);
  EXPECT_EQ((*wf)[kShardOutputId]["inputs"]["vae"], Json::array({"4", 2}));
  const Requirements req = model_tile_requirements(model_tiles_test_prompt(), "12", model_tiles_kind("VAEDecodeTiled"));
  EXPECT_EQ(req.checkpoints, (std::set<std::string>{"tiny-emoji.safetensors"}));
  EXPECT_TRUE(has_model_tiles(model_tiles_test_prompt()));
  EXPECT_FALSE(has_model_tiles(Json::parse(R"({"1": {"class_type": "LoadImage", "inputs": {}}})")));
  EXPECT_FALSE(has_model_tiles(Json::array()));
}

TEST(ModelTileWorkflow, BadPromptsAreRefusedNamingTheNode) {
  const nodes::ModelTileKind& up = model_tiles_kind("ImageUpscaleWithModel");
  auto missing = model_tile_workflow(model_tiles_test_prompt(), "77", up, "{}");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("node 77"), std::string::npos) << missing.status().message();
  auto wrong = model_tile_workflow(model_tiles_test_prompt(), "12", up, "{}");
  ASSERT_FALSE(wrong.is_ok());
  EXPECT_NE(wrong.status().message().find("VAEDecodeTiled"), std::string::npos) << wrong.status().message();
  Json p = model_tiles_test_prompt();
  p["3"]["inputs"]["upscale_model"] = "x2.safetensors";
  auto not_link = model_tile_workflow(p, "3", up, "{}");
  ASSERT_FALSE(not_link.is_ok());
  EXPECT_NE(not_link.status().message().find("upscale_model"), std::string::npos) << not_link.status().message();
  p["3"]["inputs"]["upscale_model"] = Json::array({"55", 0});
  auto dangling = model_tile_workflow(p, "3", up, "{}");
  ASSERT_FALSE(dangling.is_ok());
  EXPECT_NE(dangling.status().message().find("node 55"), std::string::npos) << dangling.status().message();
  p["3"]["inputs"]["upscale_model"] = Json::array({"3", 0});
  EXPECT_FALSE(model_tile_workflow(p, "3", up, "{}").is_ok()) << "a node that depends on itself";
}

TEST(ModelTileWorkflow, TileJobRoundTripsAndBadJobsAreRefused) {
  const at::Tensor t = at::arange(2 * 3 * 4 * 5, at::kFloat).reshape({2, 3, 4, 5}) / 7.0;
  auto back = nodes::parse_model_tile_job(nodes::model_tile_job(t));
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_TRUE(at::equal(*back, t));
  const auto refused = [](const std::string& job, const std::string& says) {
    auto r = nodes::parse_model_tile_job(job);
    ASSERT_FALSE(r.is_ok()) << job;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << job;
    EXPECT_NE(r.status().message().find(says), std::string::npos) << job << ": " << r.status().message();
  };
  refused("not json", "tile_job");
  refused(R"({"data": ""})", "shape");
  refused(R"({"shape": [1, 3, 2], "data": ""})", "shape");
  refused(R"({"shape": [1, 3, 0, 2], "data": ""})", "shape");
  refused(R"({"shape": [1, -3, 2, 2], "data": ""})", "shape");
  refused(R"({"shape": [65536, 65536, 65536, 1], "data": ""})", "2^28");
  refused(R"({"shape": [1, 1, 1, 1], "data": 5})", "data");
  refused(R"({"shape": [1, 1, 1, 1], "data": "!!!"})", "data");
  refused(R"({"shape": [1, 1, 1, 2], "data": "AAAAAA=="})", "not 2 float32");
}

}  // namespace
}  // namespace netdist::cluster
