#include "cluster/shard_inputs.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "cluster/cluster.h"
#include "core/base64.h"
#include "io/files.h"
#include "io/sha256.h"

namespace netdist::cluster {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("netdist_shard_inputs_" + std::to_string(getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

Json img2img(const std::string& image) {
  return Json{{"1", {{"class_type", "LoadImage"}, {"inputs", {{"image", image}}}}},
              {"2", {{"class_type", "VAEEncode"}, {"inputs", {{"pixels", Json::array({"1", 0})}}}}}};
}

// A file gone from the coordinator's input folder (deleted after validation) fails the cluster job when it
// is made, naming the file, before any worker is asked (none is blamed for it): a whole prompt and a batch.
TEST(ShardInputs, AFileGoneFromTheCoordinatorFailsTheJobAtOnce) {
  ClusterOptions o;
  o.input_dir = fresh_dir("gone").string();
  o.no_worker_timeout = std::chrono::milliseconds(1000);  // a job that waited for a worker would fail unavailable
  Cluster cluster(o, nullptr);
  Json prompt = img2img("photos/gone.png");
  prompt["3"] = {{"class_type", "KSampler"}, {"inputs", {{"latent_image", Json::array({"2", 0})}}}};
  auto whole = cluster.run_prompt("p1", prompt, Json::object(), Json::array(), [] { return true; },
                                  [](const std::string&, const Json&) {});
  ASSERT_FALSE(whole.is_ok());
  EXPECT_EQ(whole.status().code(), StatusCode::kNotFound) << whole.status().to_string();
  EXPECT_NE(whole.status().message().find("photos/gone.png"), std::string::npos) << whole.status().to_string();
  auto rows = cluster.run_sampler(prompt, "3", 2, [](int64_t, int64_t) { return true; });
  ASSERT_FALSE(rows.is_ok());
  EXPECT_EQ(rows.status().code(), StatusCode::kNotFound) << rows.status().to_string();
  EXPECT_NE(rows.status().message().find("photos/gone.png"), std::string::npos) << rows.status().to_string();
}

TEST(ShardInputs, NamesThatLeaveTheInputFolderAreRefused) {
  for (const std::string bad : {"../x.png", "a/../../x.png", "/etc/passwd", "a\\..\\x.png", "", "sub/.."}) {
    Status s = check_input_name(bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("'" + bad + "'"), std::string::npos) << s.message();
  }
  EXPECT_TRUE(check_input_name("heart.png").is_ok());
  EXPECT_TRUE(check_input_name("clipspace/heart..v2.png").is_ok());
}

TEST(ShardInputs, CollectThenInstallRewritesTheWorkflow) {
  const fs::path coordinator = fresh_dir("coordinator"), worker = fresh_dir("worker");
  ASSERT_TRUE(io::write_file_atomic((coordinator / "heart.png").string(), "not really a png").is_ok());
  auto inputs = collect_shard_inputs(img2img("heart.png"), coordinator.string());
  ASSERT_TRUE(inputs.is_ok()) << inputs.status().to_string();
  ASSERT_TRUE(inputs->contains("heart.png"));
  EXPECT_EQ((*inputs)["heart.png"]["sha256"], io::sha256_hex("not really a png"));

  auto wf = install_shard_inputs(img2img("heart.png"), *inputs, worker.string());
  ASSERT_TRUE(wf.is_ok()) << wf.status().to_string();
  const std::string installed = (*wf)["1"]["inputs"]["image"].get<std::string>();
  EXPECT_EQ(installed, std::string(kShardInputFolder) + "/" + io::sha256_hex("not really a png") + ".png");
  auto bytes = io::read_file((worker / installed).string());
  ASSERT_TRUE(bytes.is_ok());
  EXPECT_EQ(*bytes, "not really a png");
  EXPECT_FALSE(fs::exists(worker / "heart.png")) << "the worker's own input files are left alone";
  EXPECT_EQ((*wf)["2"], img2img("heart.png")["2"]);

  EXPECT_EQ(collect_shard_inputs(img2img("gone.png"), coordinator.string()).status().code(), StatusCode::kNotFound);
}

TEST(ShardInputs, BadInputsAreRefusedNamingThem) {
  const fs::path worker = fresh_dir("bad");
  const std::string data = base64_encode("bytes");
  Json traversal = {{"../evil.png", {{"sha256", io::sha256_hex("bytes")}, {"data", data}}}};
  auto r = install_shard_inputs(img2img("../evil.png"), traversal, worker.string());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'../evil.png'"), std::string::npos) << r.status().message();
  EXPECT_FALSE(fs::exists(worker.parent_path() / "evil.png"));

  Json wrong_hash = {{"a.png", {{"sha256", io::sha256_hex("other")}, {"data", data}}}};
  r = install_shard_inputs(img2img("a.png"), wrong_hash, worker.string());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("sha256"), std::string::npos) << r.status().message();

  Json not_base64 = {{"a.png", {{"sha256", io::sha256_hex("bytes")}, {"data", "!!!"}}}};
  EXPECT_EQ(install_shard_inputs(img2img("a.png"), not_base64, worker.string()).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(install_shard_inputs(img2img("a.png"), Json{{"a.png", "x"}}, worker.string()).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(install_shard_inputs(img2img("a.png"), Json::array(), worker.string()).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(worker / kShardInputFolder / (io::sha256_hex("bytes") + ".png")));
}

}  // namespace
}  // namespace netdist::cluster
