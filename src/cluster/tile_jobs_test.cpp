// The tile task's workflow and requirements (tile_jobs.h) and its protocol types: the USDU node's
// model/conditioning/vae upstream is kept and its image upstream left out, the tile node carries the USDU
// node's other inputs and the tile job, and a prompt without such a node is refused naming it.
#include <gtest/gtest.h>

#include "cluster/protocol.h"
#include "cluster/shard.h"
#include "cluster/tile_jobs.h"
#include "nodes/usdu_tile_node.h"

namespace netdist::cluster {
namespace {

Json tile_jobs_prompt() {
  return Json::parse(R"({
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-emoji.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "red heart", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "1": {"class_type": "LoadImage", "inputs": {"image": "src.png"}},
    "10": {"class_type": "UltimateSDUpscaleNoUpscale", "inputs": {"upscaled_image": ["1", 0], "model": ["4", 0],
           "positive": ["6", 0], "negative": ["7", 0], "vae": ["4", 2], "seed": 3, "steps": 2, "cfg": 5.0,
           "sampler_name": "euler", "scheduler": "normal", "denoise": 0.4, "mode_type": "Linear"}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["10", 0]}}
  })");
}

TEST(TileJobs, WorkflowKeepsTheModelUpstreamAndLeavesTheImageOut) {
  const Json job = {{"count", 1}};
  auto wf = tile_workflow(tile_jobs_prompt(), "10", job);
  ASSERT_TRUE(wf.is_ok()) << wf.status().message();
  EXPECT_TRUE(wf->contains("4") && wf->contains("6") && wf->contains("7"));
  EXPECT_FALSE(wf->contains("1")) << "the image's upstream travels as pixels";
  EXPECT_FALSE(wf->contains("9") || wf->contains("10"));
  const Json& node = (*wf)[kShardOutputId];
  EXPECT_EQ(node["class_type"], nodes::kUsduTileNode);
  EXPECT_FALSE(node["inputs"].contains("upscaled_image"));
  EXPECT_EQ(node["inputs"]["model"], Json::array({"4", 0}));
  EXPECT_EQ(node["inputs"]["seed"], 3);
  EXPECT_EQ(node["inputs"]["tile_job"], job.dump());

  const Requirements req = tile_requirements(tile_jobs_prompt(), "10");
  EXPECT_TRUE(req.node_classes.count(nodes::kUsduTileNode));
  EXPECT_TRUE(req.node_classes.count("CLIPTextEncode"));
  EXPECT_FALSE(req.node_classes.count("LoadImage"));
  EXPECT_EQ(req.checkpoints, std::set<std::string>({"tiny-emoji.safetensors"}));
  EXPECT_TRUE(has_usdu(tile_jobs_prompt()));
}

TEST(TileJobs, BadPromptsAreRefusedNamingTheNode) {
  for (const std::string& id : {std::string("9"), std::string("77")}) {
    auto wf = tile_workflow(tile_jobs_prompt(), id, Json::object());
    ASSERT_FALSE(wf.is_ok());
    EXPECT_EQ(wf.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(wf.status().message().find("node " + id), std::string::npos) << wf.status().message();
  }
  Json dangling = tile_jobs_prompt();
  dangling["10"]["inputs"]["vae"] = Json::array({"55", 2});
  auto wf = tile_workflow(dangling, "10", Json::object());
  ASSERT_FALSE(wf.is_ok());
  EXPECT_NE(wf.status().message().find("node 55"), std::string::npos) << wf.status().message();
  EXPECT_FALSE(has_usdu(Json::parse(R"({"1": {"class_type": "KSampler", "inputs": {}}})")));
}

TEST(TileJobs, ProtocolCarriesTileTasks) {
  EXPECT_STREQ(protocol::task_kind_name(protocol::TaskKind::tile), "tile");
  EXPECT_TRUE(protocol::task_kind_from_name("tile") == protocol::TaskKind::tile);
  EXPECT_STREQ(protocol::path(protocol::Route::tile), "/netdist/v1/tile");
  EXPECT_TRUE(protocol::route_of("/netdist/v1/tile") == protocol::Route::tile);
  protocol::TileRequest r{"job3.2", Json{{"1", {{"class_type", "X"}}}}, Json()};
  auto back = protocol::tile_request_from_json(protocol::to_json(r));
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->tile_id, "job3.2");
  EXPECT_EQ(back->workflow, r.workflow);
  EXPECT_FALSE(protocol::tile_request_from_json(Json{{"tile_id", "x"}}).is_ok());
  EXPECT_FALSE(protocol::tile_request_from_json(Json{{"tile_id", 3}, {"workflow", Json::object()}}).is_ok());
  protocol::PulledTask pulled;
  pulled.kind = protocol::TaskKind::tile;
  pulled.ticket = 9;
  pulled.request = protocol::to_json(r);
  auto got = protocol::pulled_task_from_json(protocol::to_json(pulled));
  ASSERT_TRUE(got.is_ok());
  EXPECT_TRUE(got->kind == protocol::TaskKind::tile);
  auto q = protocol::result_query_from([](const std::string& k) -> std::optional<std::string> {
    if (k == "worker_id") return "w";
    if (k == "ticket") return "9";
    if (k == "status") return "200";
    if (k == "kind") return "tile";
    return std::nullopt;
  });
  ASSERT_TRUE(q.is_ok());
  EXPECT_TRUE(q->kind == protocol::TaskKind::tile);
}

}  // namespace
}  // namespace netdist::cluster
