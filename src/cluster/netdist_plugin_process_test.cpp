// ComfyUI_NetDist workflows across real `netdist serve` processes on loopback (tiny model, 64×64, 3 steps):
//  - a plugin workflow posted to server A whose RemoteQueueSimple points at server B completes, and its images
//    are pixel for pixel what one server gives for the plugin's seeds (seed for the local batch, seed +
//    batch_local for the remote one); an unreachable remote_url fails the prompt with an error naming it;
//  - a client making exactly the plugin's HTTP calls (core/dispatch.py, core/fetch.py) against a netdist
//    server gets every field the plugin reads.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/process_test_util.h"
#include "io/png.h"
#include "nodes/netdist_remote.h"

namespace netdist::cluster::plugin_test {
namespace {

using namespace test;  // NOLINT(google-build-using-namespace): the process-test scaffolding
using Json = nlohmann::ordered_json;

// `netdist <command>` with its folders under `dir` and its log in dir/serve.log.
class Server : public Proc {
 public:
  explicit Server(const fs::path& dir, const std::string& command = "serve",
                  const std::vector<std::string>& extra = {})
      : Proc(process_args(command, dir, extra), dir / "serve.log") {}
};

// Nodes 4-8 of a txt2img graph; `seed` and `batch` are JSON values (literals or links).
Json txt2img(const Json& seed, const Json& batch) {
  Json p = Json::parse(R"({
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-emoji.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "red heart", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 0, "steps": 3, "cfg": 5.0, "sampler_name": "euler",
          "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
          "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}}
  })");
  p["3"]["inputs"]["seed"] = seed;
  p["5"]["inputs"]["batch_size"] = batch;
  return p;
}

// The plugin's simple dual-GPU workflow: RemoteQueueSimple → local batch, FetchRemote, CombineImageBatch.
Json plugin_workflow(const std::string& remote_url, int seed, int batch_local, int batch_remote) {
  Json p = txt2img(Json::array({"10", 0}), Json::array({"10", 1}));
  p["10"] = {{"class_type", "RemoteQueueSimple"},
             {"inputs", {{"remote_url", remote_url}, {"batch_local", batch_local}, {"batch_remote", batch_remote},
                         {"trigger", "on_change"}, {"enabled", "true"}, {"seed", seed}}}};
  p["11"] = {{"class_type", "FetchRemote"}, {"inputs", {{"final_image", {"8", 0}}, {"remote_info", {"10", 2}}}}};
  p["12"] = {{"class_type", "CombineImageBatch"}, {"inputs", {{"images_a", {"8", 0}}, {"images_b", {"11", 0}}}}};
  p["9"] = {{"class_type", "SaveImage"}, {"inputs", {{"filename_prefix", "nd"}, {"images", {"12", 0}}}}};
  return p;
}

// The decoded pixels of every image a history output lists, read from `folder`.
std::vector<std::vector<uint8_t>> pixels(const Json& history, const std::string& node, const fs::path& folder) {
  std::vector<std::vector<uint8_t>> out;
  if (!history.is_object()) return out;
  for (const auto& img : history["outputs"][node]["images"]) {
    auto bytes = io::read_file((folder / img.value("subfolder", "") / img["filename"].get<std::string>()).string());
    EXPECT_TRUE(bytes.is_ok());
    auto decoded = io::decode_png(bytes.is_ok() ? *bytes : "", "output");
    EXPECT_TRUE(decoded.is_ok());
    if (decoded.is_ok()) out.push_back(decoded->first.pixels);
  }
  return out;
}

TEST(NetDistPluginProcess, RemoteQueueSimpleOnTwoServersGivesTheSingleServerImages) {
  const fs::path dir = scratch("netdist_plugin_test", "two");
  Server a(dir / "a"), b(dir / "b");
  ASSERT_FALSE(a.url().empty());
  ASSERT_FALSE(b.url().empty());

  Json wf = plugin_workflow(b.url() + "/", 7, 2, 2);
  Json h = wait_history<Json>(a.url(), submit(a.url(), wf, {}, "test"));
  ASSERT_EQ(h["status"]["status_str"], "success") << h.dump();
  auto got = pixels(h, "9", dir / "a" / "out");
  ASSERT_EQ(got.size(), 4u);

  // One server, the plugin's seeds: the local batch uses seed 7, the remote one seed 7 + batch_local.
  auto with_save = [](Json p) {
    p["9"] = {{"class_type", "SaveImage"}, {"inputs", {{"filename_prefix", "ref"}, {"images", {"8", 0}}}}};
    return p;
  };
  auto render = [&](int seed) {
    return pixels(wait_history<Json>(a.url(), submit(a.url(), with_save(txt2img(seed, 2)), {}, "test")), "9",
                  dir / "a" / "out");
  };
  auto local = render(7);
  auto remote = render(9);
  ASSERT_EQ(local.size(), 2u);
  ASSERT_EQ(remote.size(), 2u);
  EXPECT_TRUE(got[0] == local[0] && got[1] == local[1]) << "local half differs from seed 7 batch 2";
  EXPECT_TRUE(got[2] == remote[0] && got[3] == remote[1]) << "remote half differs from seed 9 batch 2";
  EXPECT_FALSE(got[0] == got[2]);

  // B ran exactly the rewritten prompt: RemoteQueueSimple in "remote" mode, an added PreviewImage marked
  // final_output, no FetchRemote/CombineImageBatch/SaveImage, and the plugin's client and job ids.
  Json bh = get_json<Json>(b.url(), "/history");
  ASSERT_EQ(bh.size(), 1u) << bh.dump();
  const Json entry = bh.begin().value();  // a copy: GCC 13 -Wdangling-reference
  const Json& sent = entry["prompt"][2];
  EXPECT_EQ(sent["10"]["inputs"]["enabled"], "remote");
  EXPECT_EQ(sent["13"]["class_type"], "PreviewImage");
  EXPECT_EQ(sent["13"]["final_output"], true);
  for (const char* gone : {"9", "11", "12"}) EXPECT_FALSE(sent.contains(gone)) << gone;
  EXPECT_TRUE(std::regex_match(entry["prompt"][3].value("client_id", ""), std::regex("netdist-[a-z]{5}")))
      << entry["prompt"][3].dump();
  EXPECT_EQ(entry["prompt"][3]["job_id"].get<std::string>().rfind("netdist-", 0), 0u);
  EXPECT_EQ(entry["outputs"]["13"]["images"][0]["type"], "temp");

  // An unreachable remote fails the prompt with an error naming the URL.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string dead = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  close(fd);  // bound, never listened, now closed: connections are refused
  Json bad = wait_history<Json>(a.url(), submit(a.url(), plugin_workflow(dead + "/", 8, 1, 1), {}, "test"));
  EXPECT_EQ(bad["status"]["status_str"], "error");
  EXPECT_NE(bad["status"].dump().find(dead), std::string::npos) << bad["status"].dump();
  EXPECT_NE(bad["status"].dump().find("RemoteQueueSimple"), std::string::npos) << bad["status"].dump();
}

// Under `serve --enable-distributed` the coordinator's RemoteQueueSimple queues the remote job once; the
// copy of it inside the sampler shard a worker runs does not dispatch again, and the images stay the plugin's.
TEST(NetDistPluginProcess, DistributedCoordinatorDispatchesOnce) {
  const fs::path dir = scratch("netdist_plugin_test", "dist");
  Server b(dir / "b"), w(dir / "w", "worker");
  ASSERT_FALSE(b.url().empty());
  ASSERT_FALSE(w.url().empty());
  Server c(dir / "c", "serve", {"--enable-distributed", "--no-local", "--workers", w.url()});
  ASSERT_FALSE(c.url().empty());
  ASSERT_TRUE(wait_alive(c.url(), 1)) << "the worker did not join";

  Json h = wait_history<Json>(c.url(), submit(c.url(), plugin_workflow(b.url(), 7, 2, 1), {}, "test"));
  ASSERT_EQ(h["status"]["status_str"], "success") << h.dump();
  auto got = pixels(h, "9", dir / "c" / "out");
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(get_json<Json>(b.url(), "/history").size(), 1u) << "the remote job must be queued exactly once";
  EXPECT_EQ(get_json<Json>(w.url(), "/history").size(), 0u) << "the worker must not run the whole prompt";

  // The same images from one plain server: seed 7 batch 2, then seed 9 batch 1.
  auto ref = [&](int seed, int batch) {
    Json p = txt2img(seed, batch);
    p["9"] = {{"class_type", "SaveImage"}, {"inputs", {{"filename_prefix", "ref"}, {"images", {"8", 0}}}}};
    return pixels(wait_history<Json>(b.url(), submit(b.url(), p, {}, "test")), "9", dir / "b" / "out");
  };
  auto local = ref(7, 2), remote = ref(9, 1);
  ASSERT_EQ(local.size(), 2u);
  ASSERT_EQ(remote.size(), 1u);
  EXPECT_TRUE(got[0] == local[0] && got[1] == local[1]) << "the split local half differs from seed 7 batch 2";
  EXPECT_TRUE(got[2] == remote[0]) << "the remote image differs from seed 9 batch 1";
}

// The plugin's calls, in its order, as core/dispatch.py and core/fetch.py make them, against netdist.
TEST(NetDistPluginProcess, PluginRemoteCallsAgainstNetdist) {
  const fs::path dir = scratch("netdist_plugin_test", "calls");
  Server s(dir / "s");
  ASSERT_FALSE(s.url().empty());
  const std::string client_id = "netdist-abcde";
  const std::string job_id = client_id + "-1700000000000";

  // clear_remote_queue: GET /queue, POST /queue {"delete": [...]}.
  Json queue = get_json<Json>(s.url(), "/queue");
  ASSERT_TRUE(queue["queue_running"].is_array());
  ASSERT_TRUE(queue["queue_pending"].is_array());
  EXPECT_EQ(call(s.url(), "POST", "/queue", R"({"delete": []})").status, 200);
  // get_remote_os: GET /system_stats → ["system"]["os"], compared with os.name ("posix" on Linux).
  EXPECT_EQ(get_json<Json>(s.url(), "/system_stats")["system"]["os"], "posix");
  // get_output_nodes (unused by the plugin, but it exists): /object_info with output_node flags.
  Json info = get_json<Json>(s.url(), "/object_info");
  EXPECT_EQ(info["PreviewImage"]["output_node"], true);
  EXPECT_TRUE(info.contains("RemoteQueueSimple"));

  // dispatch_to_remote: the rewritten prompt, posted with json.dumps and Content-Type application/json.
  Json wf = plugin_workflow(s.url() + "/", 11, 1, 2);
  wf["3"]["inputs"]["steps"] = 2;
  auto remote_prompt = nodes::build_remote_prompt(wf, s.url(), "final_image", "posix");
  ASSERT_TRUE(remote_prompt.is_ok()) << remote_prompt.status().to_string();
  Json body = {{"prompt", *remote_prompt}, {"client_id", client_id}, {"extra_data", {{"job_id", job_id}}}};
  HttpReply posted = call(s.url(), "POST", "/prompt", body.dump());
  ASSERT_EQ(posted.status, 200) << posted.body;

  // While it is queued or running, the queue items carry [number, prompt_id, prompt, extra_data, outputs].
  Json q = get_json<Json>(s.url(), "/queue");
  for (const char* key : {"queue_running", "queue_pending"}) {
    for (const Json& item : q[key]) {
      ASSERT_GE(item.size(), 4u);
      EXPECT_EQ(item[3]["client_id"], client_id);
      EXPECT_EQ(item[3]["job_id"], job_id);
    }
  }

  // wait_for_job: GET /history (no parameters), find prompt[3]["job_id"], then get_job_output.
  Json found;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (found.is_null() && Clock::now() < deadline) {
    Json all = get_json<Json>(s.url(), "/history");
    for (auto it = all.begin(); it != all.end(); ++it) {
      if (it.value()["prompt"][3].value("job_id", "") == job_id) found = it.value();
    }
    if (found.is_null()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(found.is_null()) << "the job never reached /history";
  ASSERT_GT(found["outputs"].size(), 0u);
  auto refs = nodes::job_output_images(found);
  ASSERT_EQ(refs.size(), 2u);  // batch_remote
  EXPECT_EQ(found["prompt"][2][found["outputs"].begin().key()]["final_output"], true);
  for (const auto& ref : refs) {
    // fetch_from_remote builds the URL without encoding.
    HttpReply img = call(s.url(), "GET", "/view?filename=" + ref.filename + "&subfolder=" + ref.subfolder + "&type=" + ref.type);
    ASSERT_EQ(img.status, 200);
    auto decoded = io::decode_png(img.body, ref.filename);
    ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
    EXPECT_EQ(decoded->first.width, 64);
  }
  // clear_remote_queue's interrupt call.
  EXPECT_EQ(call(s.url(), "POST", "/interrupt", "{}").status, 200);
}

}  // namespace
}  // namespace netdist::cluster::plugin_test
