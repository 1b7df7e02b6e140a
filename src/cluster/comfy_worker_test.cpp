// Stock ComfyUI workers (comfy_worker.h). Unit tests of the capability translation and the whose-fault rule,
// then process tests: a plain `netdist serve` (which speaks the stock ComfyUI API and, with the hidden
// --test-log-netdist-routes, logs any /netdist request it gets) stands in for ComfyUI behind a coordinator
// started with --workers comfy+http://... --no-local, on the embedded tiny model (64×64, 3 steps).
#include <signal.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "cluster/comfy_worker.h"
#include "cluster/http_client.h"
#include "cluster/process_test_util.h"
#include "cluster/shard.h"
#include "netdist/source_dir.h"

namespace netdist::cluster::comfy_test {

using namespace test;  // NOLINT(google-build-using-namespace): the process-test scaffolding

TEST(ComfyWorker, UrlScheme) {
  EXPECT_TRUE(is_comfy_url("comfy+http://127.0.0.1:8188"));
  EXPECT_FALSE(is_comfy_url("http://127.0.0.1:8188"));
  EXPECT_FALSE(is_comfy_url("comfy+https://x"));
  EXPECT_EQ(comfy_base_url("comfy+http://h:1/p"), "http://h:1/p");
  EXPECT_EQ(comfy_base_url("http://h:1"), "http://h:1");
}

TEST(ComfyWorker, CapabilitiesFromObjectInfoAndSystemStats) {
  const Json stats = Json::parse(R"({"system": {"comfyui_version": "0.3.40"},
      "devices": [{"name": "cuda:0 NVIDIA H200 : cudaMallocAsync", "type": "cuda", "vram_total": 100, "vram_free": 60}]})");
  Json info = Json::parse(R"({"KSampler": {"input": {"required": {}}},
      "CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [["a.safetensors", "sub/b.ckpt"], {}]}}}})");
  auto caps = comfy_capabilities_from(info, stats);
  ASSERT_TRUE(caps.is_ok()) << caps.status().to_string();
  EXPECT_EQ((*caps)["kind"], "comfy");
  EXPECT_EQ((*caps)["engine_version"], "ComfyUI 0.3.40");
  EXPECT_EQ((*caps)["device"]["name"], "cuda:0 NVIDIA H200 : cudaMallocAsync");
  EXPECT_EQ((*caps)["device"]["vram_total"], 100);
  EXPECT_EQ((*caps)["node_classes"], Json::array({"KSampler", "CheckpointLoaderSimple"}));
  ASSERT_EQ((*caps)["models"].size(), 2u);
  EXPECT_EQ((*caps)["models"][1]["name"], "sub/b.ckpt");
  EXPECT_TRUE((*caps)["models"][1]["sha256"].is_null()) << "ComfyUI reports no hashes: names only";

  Requirements req;
  req.node_classes = {"KSampler", "SaveImage"};
  req.checkpoints = {"a.safetensors", "c.safetensors"};
  EXPECT_EQ(missing_requirements(req, *caps),
            std::vector<std::string>({"checkpoint 'c.safetensors'", "node class 'SaveImage'"}));

  // ComfyUI's V3 schema spells the list as ["COMBO", {"options": [...]}].
  info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"] =
      Json::parse(R"(["COMBO", {"options": ["v3.safetensors"]}])");
  caps = comfy_capabilities_from(info, stats);
  ASSERT_TRUE(caps.is_ok());
  EXPECT_EQ((*caps)["models"][0]["name"], "v3.safetensors");

  info["CheckpointLoaderSimple"]["input"]["required"].erase("ckpt_name");
  auto bad = comfy_capabilities_from(info, stats);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("ckpt_name"), std::string::npos) << bad.status().to_string();
  EXPECT_FALSE(comfy_capabilities_from(Json::array(), stats).is_ok());
  EXPECT_FALSE(comfy_capabilities_from(info, Json("x")).is_ok());
}

TEST(ComfyWorker, WhoseFaultRule) {
  const auto err = [](const std::string& type, const std::string& message) {
    return Json{{"exception_type", type}, {"exception_message", message}};
  };
  EXPECT_TRUE(comfy_error_is_worker_fault(err("torch.OutOfMemoryError", "Allocation on device")));
  EXPECT_TRUE(comfy_error_is_worker_fault(err("RuntimeError", "CUDA error: an illegal memory access was encountered")));
  EXPECT_TRUE(comfy_error_is_worker_fault(err("RuntimeError", "CUDA out of memory. Tried to allocate 2 GiB")));
  EXPECT_TRUE(comfy_error_is_worker_fault(err("OSError", "[Errno 28] No space left on device")));
  EXPECT_FALSE(comfy_error_is_worker_fault(err("ValueError", "Invalid sampler name 'x'")));
  EXPECT_FALSE(comfy_error_is_worker_fault(err("RuntimeError", "mat1 and mat2 shapes cannot be multiplied")));
  EXPECT_FALSE(comfy_error_is_worker_fault(Json()));
}

// ---- process tests -------------------------------------------------------------------------------------------

constexpr const char* kSuite = "netdist_comfy_test";  // scratch folders: <temp>/netdist_comfy_test_<pid>/...

// The ComfyUI stand-in: a plain server that logs any /netdist request it gets.
std::vector<std::string> comfy_args(const fs::path& dir, std::vector<std::string> extra = {}) {
  extra.push_back("--test-log-netdist-routes");
  return process_args("serve", dir, extra);
}

// A coordinator with no local runner over `workers` (a comma list).
std::vector<std::string> coordinator_over(const fs::path& dir, const std::string& workers) {
  return coordinator_args(dir, {"--enable-distributed", "--no-local", "--workers", workers});
}

// The coordinator's GET /netdist/v1/cluster row for `url`.
Json worker_row(const std::string& coordinator, const std::string& url) {
  Json j = get_json<Json>(coordinator, "/netdist/v1/cluster");
  if (j.is_object()) {
    for (const auto& w : j["workers"]) {
      if (w["url"] == url) return w;
    }
  }
  return Json::object();
}

// Polls a server's GET /queue until `key` ("queue_running" / "queue_pending") has at least one entry.
bool wait_queue(const std::string& url, const char* key) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    Json q = get_json<Json>(url, "/queue");
    if (q.is_object() && !q[key].empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// Seeds 1 and 2, batch 1, rendered by one plain `netdist serve`: the local bytes.
const std::vector<std::string>& local_reference() {
  static const std::vector<std::string> ref = [] {
    std::vector<std::string> out;
    for (const auto& [seed, png] : reference_images<Json>(scratch(kSuite, "reference"), 1, {1, 2}))
      out.insert(out.end(), png.begin(), png.end());
    return out;
  }();
  return ref;
}

TEST(ComfyWorkerProcess, PromptRendersLocalBytesWithLiveProgressAndNoNetdistRoutes) {
  const auto& ref = local_reference();
  ASSERT_EQ(ref.size(), 2u);
  fs::path dir = scratch(kSuite, "render");
  Proc comfy(comfy_args(dir / "comfy"), dir / "comfy.log");
  const std::string comfy_url = "comfy+" + comfy.url();
  Proc coord(coordinator_over(dir / "c", comfy_url), dir / "c.log");
  wait_alive(coord.url(), 1);
  Json row = worker_row(coord.url(), comfy_url);
  EXPECT_EQ(row["kind"], "comfy") << row.dump();

  auto ws = ComfyEventStream::open(coord.url(), "watcher", "", std::chrono::seconds(10));
  ASSERT_TRUE(ws.is_ok()) << ws.status().to_string();
  const std::string id = submit(coord.url(), prompt<Json>(1, 1), {}, "watcher");
  std::vector<Json> progress;
  std::vector<std::string> types;
  Json executed;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  bool done = false;
  while (!done && Clock::now() < deadline) {
    auto m = (*ws)->next(std::chrono::milliseconds(200));
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    if (!m->has_value() || (*m)->is_binary) continue;
    const ComfyMessage& msg = **m;
    if (!msg.data.is_object() || msg.data.value("prompt_id", Json()) != id) continue;  // "status" and others
    types.push_back(msg.type);
    if (msg.type == "progress") progress.push_back(msg.data);
    if (msg.type == "executed") executed = msg.data;
    done = msg.type == "executing" && msg.data.value("node", Json()).is_null();
  }
  ASSERT_TRUE(done) << "the coordinator never sent executing(null) for " << id;
  ASSERT_FALSE(progress.empty()) << "no progress relayed from the ComfyUI worker";
  EXPECT_EQ(progress.back()["value"], 3);
  EXPECT_EQ(progress.back()["max"], 3);
  EXPECT_EQ(progress.back()["prompt_id"], id) << "progress carries the coordinator's prompt id";
  EXPECT_EQ(types.front(), "execution_start");
  EXPECT_EQ(executed["node"], "9");
  EXPECT_EQ(executed["output"]["images"][0]["filename"], "split_00001_.png") << executed.dump();

  Json h = wait_history<Json>(coord.url(), id);
  EXPECT_EQ(h["status"]["status_str"], "success") << h.dump();
  EXPECT_EQ(h["outputs"]["9"]["images"],
            Json::parse(R"([{"filename": "split_00001_.png", "subfolder": "", "type": "output"}])"));
  EXPECT_TRUE(images(h, dir / "c" / "out") == std::vector<std::string>({ref[0]}))
      << "the image differs from a local render";
  row = worker_row(coord.url(), comfy_url);
  EXPECT_EQ(row["prompts_done"], 1) << row.dump();
  EXPECT_FALSE(row["seconds_per_unit"].is_null()) << "the first job seeds the worker's speed";

  // A batch-1 img2img prompt whose image only the coordinator has runs whole there too: the image is
  // uploaded under a netdist- name first.
  const fs::path emoji = fs::path(NETDIST_SOURCE_DIR) / "tests" / "data" / "emoji" / "google_1f301.png";
  fs::create_directories(dir / "c" / "in");
  fs::copy_file(emoji, dir / "c" / "in" / "night.png");
  Json img2img = prompt<Json>(1, 3);
  img2img["20"] = {{"class_type", "LoadImage"}, {"inputs", {{"image", "night.png"}}}};
  img2img["21"] = {{"class_type", "VAEEncode"}, {"inputs", {{"pixels", Json::array({"20", 0})}, {"vae", Json::array({"4", 2})}}}};
  img2img["3"]["inputs"]["latent_image"] = Json::array({"21", 0});
  img2img["3"]["inputs"]["denoise"] = 0.6;
  h = wait_history<Json>(coord.url(), submit(coord.url(), img2img));
  EXPECT_EQ(h["status"]["status_str"], "success") << h.dump();
  EXPECT_EQ(images(h, dir / "c" / "out").size(), 1u);
  EXPECT_EQ(worker_row(coord.url(), comfy_url)["prompts_done"], 2) << "the img2img prompt ran on the worker";
  size_t uploaded = 0;
  for (const auto& e : fs::directory_iterator(dir / "comfy" / "in"))
    uploaded += e.path().filename().string().rfind("netdist-", 0) == 0 && read_file(e.path()) == read_file(emoji);
  EXPECT_EQ(uploaded, 1u) << "the input file was not uploaded under a netdist- name";
  EXPECT_EQ(read_file(dir / "comfy.log").find("refused"), std::string::npos)
      << "the coordinator used a /netdist route on the ComfyUI worker:\n" << read_file(dir / "comfy.log");
}

TEST(ComfyWorkerProcess, MissingCheckpointOrBatchIs400NamingIt) {
  fs::path dir = scratch(kSuite, "missing");
  // And one that only the ComfyUI worker has.
  fs::create_directories(dir / "comfy" / "models");
  fs::copy_file(tiny_model(), dir / "comfy" / "models" / "remote.safetensors");
  Proc comfy(comfy_args(dir / "comfy"), dir / "comfy.log");
  const std::string comfy_url = "comfy+" + comfy.url();
  // The coordinator has the checkpoint (its own validation passes); the ComfyUI worker does not.
  fs::create_directories(dir / "c" / "models");
  fs::copy_file(tiny_model(), dir / "c" / "models" / "other.safetensors");
  Proc coord(coordinator_over(dir / "c", comfy_url), dir / "c.log");
  wait_alive(coord.url(), 1);
  HttpReply r = call(coord.url(), "POST", "/prompt", Json{{"prompt", prompt<Json>(1, 1, "other.safetensors")}}.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("prompt_no_capable_worker"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("worker " + comfy_url + " lacks checkpoint 'other.safetensors'"), std::string::npos) << r.body;
  // A batch of 2 would be split into row shards, which only netdist workers run.
  r = call(coord.url(), "POST", "/prompt", Json{{"prompt", prompt<Json>(2, 1)}}.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("is a stock ComfyUI worker"), std::string::npos) << r.body;

  // The worker's own checkpoint: the coordinator lists it, and a batch-1 prompt naming it runs whole there.
  Json info = get_json<Json>(coord.url(), "/object_info/CheckpointLoaderSimple");
  const Json names = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0];
  EXPECT_NE(std::find(names.begin(), names.end(), "remote.safetensors"), names.end()) << names.dump();
  Json h = wait_history<Json>(coord.url(), submit(coord.url(), prompt<Json>(1, 1, "remote.safetensors")));
  EXPECT_EQ(h["status"]["status_str"], "success") << h.dump();
  EXPECT_EQ(images(h, dir / "c" / "out").size(), 1u);
  EXPECT_EQ(worker_row(coord.url(), comfy_url)["prompts_done"], 1);
  EXPECT_EQ(read_file(dir / "comfy.log").find("refused"), std::string::npos) << read_file(dir / "comfy.log");
}

TEST(ComfyWorkerProcess, KilledComfyWorkerMidPromptIsRetriedOnANetdistWorker) {
  const auto& ref = local_reference();
  ASSERT_EQ(ref.size(), 2u);
  fs::path dir = scratch(kSuite, "kill");
  // Equal speeds (the unmeasured ComfyUI worker counts as the fastest known one): each takes one prompt.
  Proc comfy(comfy_args(dir / "comfy", {"--test-step-delay-ms", "400"}), dir / "comfy.log");
  Proc worker(worker_args(dir / "w", {"--test-step-delay-ms", "400"}), dir / "w.log");
  const std::string comfy_url = "comfy+" + comfy.url();
  Proc coord(coordinator_over(dir / "c", comfy_url + "," + worker.url()), dir / "c.log");
  wait_alive(coord.url(), 2);
  const std::string id1 = submit(coord.url(), prompt<Json>(1, 1));
  const std::string id2 = submit(coord.url(), prompt<Json>(1, 2));
  ASSERT_TRUE(wait_queue(comfy.url(), "queue_running")) << "the ComfyUI worker never ran a prompt";
  comfy.stop(SIGKILL);
  Json h1 = wait_history<Json>(coord.url(), id1), h2 = wait_history<Json>(coord.url(), id2);
  EXPECT_EQ(h1["status"]["status_str"], "success") << h1.dump();
  EXPECT_EQ(h2["status"]["status_str"], "success") << h2.dump();
  auto png = images(h1, dir / "c" / "out"), png2 = images(h2, dir / "c" / "out");
  png.insert(png.end(), png2.begin(), png2.end());
  EXPECT_TRUE(png == ref) << "the retried prompt's images differ from a local render";
  EXPECT_EQ(worker_row(coord.url(), worker.url())["prompts_done"], 2) << "the killed worker's prompt ran on the other";
  EXPECT_GE(worker_row(coord.url(), comfy_url)["failures"], 1);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir / "c" / "out")) files += e.path().extension() == ".png";
  EXPECT_EQ(files, 2u) << "each prompt's image written once";
}

// The coordinator withdraws what it cancels: a prompt still pending on the ComfyUI worker is deleted from
// its queue (the prompt the worker runs for somebody else is left alone), a running one is interrupted.
TEST(ComfyWorkerProcess, InterruptAndQueueDeleteReachTheComfyWorker) {
  fs::path dir = scratch(kSuite, "interrupt");
  Proc comfy(comfy_args(dir / "comfy", {"--test-step-delay-ms", "500"}), dir / "comfy.log");
  const std::string comfy_url = "comfy+" + comfy.url();
  Proc coord(coordinator_over(dir / "c", comfy_url), dir / "c.log");
  wait_alive(coord.url(), 1);
  // Somebody else's prompt keeps the worker busy; the coordinator's waits in the worker's queue.
  const std::string other = submit(comfy.url(), prompt<Json>(1, 5), {}, "other");
  ASSERT_TRUE(wait_queue(comfy.url(), "queue_running"));
  const std::string pending = submit(coord.url(), prompt<Json>(1, 1));
  ASSERT_TRUE(wait_queue(comfy.url(), "queue_pending")) << "the coordinator's prompt never reached the worker";
  EXPECT_EQ(call(coord.url(), "POST", "/interrupt", Json{{"prompt_id", pending}}.dump()).status, 200);
  Json h = wait_history<Json>(coord.url(), pending);
  EXPECT_EQ(h["status"]["status_str"], "error");
  EXPECT_EQ(h["status"]["messages"].back()[0], "execution_interrupted");
  Json mine = wait_history<Json>(comfy.url(), other);
  EXPECT_EQ(mine["status"]["status_str"], "success") << "the worker's own prompt was interrupted: " << mine.dump();
  Json q = get_json<Json>(comfy.url(), "/queue");
  EXPECT_TRUE(q["queue_pending"].empty()) << "the withdrawn prompt is still queued on the worker: " << q.dump();
  EXPECT_EQ(get_json<Json>(comfy.url(), "/history").size(), 1u) << "the withdrawn prompt ran on the worker";

  // Now one that runs there: interrupted on the worker by its prompt id.
  const std::string running = submit(coord.url(), prompt<Json>(1, 2));
  ASSERT_TRUE(wait_queue(comfy.url(), "queue_running"));
  EXPECT_EQ(call(coord.url(), "POST", "/interrupt", Json{{"prompt_id", running}}.dump()).status, 200);
  h = wait_history<Json>(coord.url(), running);
  EXPECT_EQ(h["status"]["messages"].back()[0], "execution_interrupted");
  Json remote;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    Json all = get_json<Json>(comfy.url(), "/history");
    if (all.is_object() && all.size() == 2) {
      for (auto it = all.begin(); it != all.end(); ++it)
        if (it.key() != other) remote = it.value();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(remote.is_object()) << "the interrupted prompt never ended on the worker";
  EXPECT_EQ(remote["status"]["status_str"], "error") << remote.dump();
  EXPECT_EQ(remote["status"]["messages"].back()[0], "execution_interrupted") << remote.dump();
  EXPECT_EQ(worker_row(coord.url(), comfy_url)["prompts_done"], 0);
  EXPECT_EQ(read_file(dir / "comfy.log").find("refused"), std::string::npos) << read_file(dir / "comfy.log");
}

// run_comfy_prompt on its own against the stand-in: input files uploaded (a LoadImage → SaveImage prompt, no
// model), a refusal at POST /prompt reported as the prompt's fault with the server's message, a run past its
// timeout and a cancelled run withdrawn from the worker.
TEST(ComfyWorkerProcess, RunComfyPromptUploadsInputsAndSortsFaults) {
  fs::path dir = scratch(kSuite, "direct");
  Proc comfy(comfy_args(dir / "comfy", {"--test-step-delay-ms", "500"}), dir / "comfy.log");
  fs::create_directories(dir / "mine");
  const fs::path png = fs::path(NETDIST_SOURCE_DIR) / "tests" / "data" / "emoji" / "google_1f5fb.png";
  fs::copy_file(png, dir / "mine" / "photo.png");
  ComfyRun run;
  run.base_url = comfy.url();
  run.label = "comfy+" + comfy.url();
  run.prompt_id = "coordinator-id";
  run.client_id = "direct-1";
  run.input_dir = (dir / "mine").string();
  run.timeout = std::chrono::seconds(60);
  run.prompt = Json::parse(R"({"1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
      "2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "copy", "images": ["1", 0]}}})");
  std::vector<std::string> relayed;
  run.relay = [&](const std::string& type, const Json& data) {
    relayed.push_back(type);
    if (data.is_object() && data.contains("prompt_id")) {
      EXPECT_EQ(data["prompt_id"], "coordinator-id") << type;
    }
  };
  auto reply = run_comfy_prompt(run);
  ASSERT_TRUE(reply.is_ok()) << reply.status().to_string();
  EXPECT_TRUE(reply->status.is_ok()) << reply->status.to_string();
  ASSERT_EQ(reply->files.size(), 1u);
  EXPECT_EQ(reply->files[0].type, "output");
  EXPECT_EQ(reply->files[0].bytes.substr(1, 3), "PNG");
  EXPECT_TRUE(reply->outputs.contains("2")) << reply->outputs.dump();
  ASSERT_FALSE(reply->events.empty());
  EXPECT_EQ(reply->events[0][0], "executed");
  EXPECT_EQ(reply->events[0][1]["prompt_id"], "coordinator-id");
  EXPECT_FALSE(relayed.empty()) << "no live events relayed";
  size_t uploaded = 0;
  for (const auto& e : fs::directory_iterator(dir / "comfy" / "in"))
    uploaded += e.path().filename().string().rfind("netdist-", 0) == 0 && read_file(e.path()) == read_file(png);
  EXPECT_EQ(uploaded, 1u) << "the input file was not uploaded under a netdist- name";

  // Refused at POST /prompt: the prompt's fault, with the worker's message.
  run.client_id = "direct-2";
  run.prompt["2"]["inputs"]["images"] = Json::array({"7", 0});
  reply = run_comfy_prompt(run);
  ASSERT_TRUE(reply.is_ok()) << "a refusal is not the worker's fault: " << reply.status().to_string();
  EXPECT_EQ(reply->status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(reply->status.message().find("refused the prompt"), std::string::npos) << reply->status.to_string();
  EXPECT_NE(reply->status.message().find("node 2"), std::string::npos) << reply->status.to_string();

  // Past its timeout: the worker's fault, naming the limit; the prompt is withdrawn there.
  run.client_id = "direct-3";
  run.prompt = prompt<Json>(1, 1);
  run.timeout = std::chrono::milliseconds(700);
  reply = run_comfy_prompt(run);
  ASSERT_FALSE(reply.is_ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(reply.status().message().find("did not finish within 0.7 s"), std::string::npos) << reply.status().to_string();

  // Cancelled by the coordinator: kCancelled, withdrawn too.
  run.client_id = "direct-4";
  run.prompt = prompt<Json>(1, 2);
  run.timeout = std::chrono::seconds(60);
  int polls = 0;
  run.cancelled = [&] { return ++polls > 5; };
  reply = run_comfy_prompt(run);
  ASSERT_FALSE(reply.is_ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kCancelled) << reply.status().to_string();
  bool idle = false;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!idle && Clock::now() < deadline) {
    Json q = get_json<Json>(comfy.url(), "/queue");
    idle = q.is_object() && q["queue_running"].empty() && q["queue_pending"].empty();
    if (!idle) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(idle) << "the withdrawn prompts are still on the worker";
  Json all = get_json<Json>(comfy.url(), "/history");
  int interrupted = 0;
  for (auto it = all.begin(); it != all.end(); ++it)
    interrupted += it.value()["status"]["status_str"] == "error";
  EXPECT_GE(interrupted, 1) << all.dump().substr(0, 2000);
  EXPECT_EQ(read_file(dir / "comfy.log").find("refused"), std::string::npos) << read_file(dir / "comfy.log");
}

}  // namespace netdist::cluster::comfy_test
