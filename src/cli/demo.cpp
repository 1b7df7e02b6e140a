// `netdist demo`: a coordinator with 1 and then 2 local workers (GPUs when there are two, else CPU
// processes) renders the same set of prompts with the embedded model; prints the NetDist benchmark table
// (wall time, images/s, speedup) and whether both runs gave byte-identical images. Two parts: a batch of 8
// plus 4 batch-2 prompts (split into row shards), then 4 batch-1 prompts of different sizes (each sent
// whole to one worker, several at once).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/log_flags.h"
#include "cli/node_setup.h"
#include "cluster/http_client.h"
#include "cluster/protocol.h"
#include "cluster/shard_runner.h"
#include "core/log.h"
#include "core/spawn.h"
#include "engine/runtime/torch_compat.h"
#include "io/sha256.h"

namespace netdist::cli {

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Child {
  pid_t pid = 0;
  std::string url;
  FILE* out = nullptr;
};

Child start_coordinator(int workers, bool gpus, const fs::path& dir, const LogFlags& log_flags) {
  std::vector<std::string> args = {"/proc/self/exe",
                                   "serve",
                                   "--port",
                                   "0",
                                   "--enable-distributed",
                                   "--no-local",
                                   "--output-directory",
                                   (dir / "output").string(),
                                   "--temp-directory",
                                   (dir / "temp").string(),
                                   "--input-directory",
                                   (dir / "input").string()};
  if (!gpus) args.insert(args.end(), {"--local-workers", std::to_string(workers)});
  for (const std::string& arg : log_flag_args(log_flags)) args.push_back(arg);
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return {};
  fcntl(pipe_fds[0], F_SETFD, FD_CLOEXEC);
  SpawnSpec spec;  // posix_spawn, not fork (core/spawn.h)
  spec.program = "/proc/self/exe";
  spec.args = args;
  spec.stdout_fd = pipe_fds[1];
  if (gpus) {
    std::string visible;
    for (int i = 0; i < workers; ++i) visible += (i ? "," : "") + std::to_string(i);
    spec.env = {{"CUDA_VISIBLE_DEVICES", visible}};
  }
  Child c;
  auto pid = spawn_process(spec);
  if (!pid.is_ok()) {
    log::error("netdist demo: {}", pid.status().to_string());
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return {};
  }
  c.pid = *pid;
  close(pipe_fds[1]);
  c.out = fdopen(pipe_fds[0], "r");
  auto url = read_matching_line(pipe_fds[0], "listening on (http://[^ \\n]+)", std::chrono::seconds(300), "the coordinator");
  if (url.is_ok()) c.url = *url;
  else log::error("netdist demo: {}", url.status().to_string());
  return c;
}

void stop(Child& c) {
  if (c.pid > 0) stop_child(c.pid, SIGTERM, std::chrono::seconds(30));
  if (c.out) std::fclose(c.out);
  c = {};
}

Result<cluster::HttpReply> call(const std::string& url, const std::string& method, const std::string& target,
                                const std::string& body = "") {
  cluster::HttpCall c;
  c.method = method;
  c.target = target;
  c.body = body;
  c.timeout = std::chrono::seconds(600);
  return cluster::http_call(url, c);
}

Json prompt(int size, int batch, uint64_t seed, const std::string& text, const std::string& prefix) {
  return Json{
      {"4",
       {{"class_type", "CheckpointLoaderSimple"}, {"inputs", {{"ckpt_name", "tiny-emoji.safetensors"}}}}},
      {"5",
       {{"class_type", "EmptyLatentImage"},
        {"inputs", {{"width", size}, {"height", size}, {"batch_size", batch}}}}},
      {"6", {{"class_type", "CLIPTextEncode"}, {"inputs", {{"text", text}, {"clip", {"4", 1}}}}}},
      {"7", {{"class_type", "CLIPTextEncode"}, {"inputs", {{"text", ""}, {"clip", {"4", 1}}}}}},
      {"3",
       {{"class_type", "KSampler"},
        {"inputs",
         {{"seed", seed},
          {"steps", 20},
          {"cfg", 5.0},
          {"sampler_name", "euler"},
          {"scheduler", "normal"},
          {"denoise", 1.0},
          {"model", {"4", 0}},
          {"positive", {"6", 0}},
          {"negative", {"7", 0}},
          {"latent_image", {"5", 0}}}}}},
      {"8", {{"class_type", "VAEDecode"}, {"inputs", {{"samples", {"3", 0}}, {"vae", {"4", 2}}}}}},
      {"9", {{"class_type", "SaveImage"}, {"inputs", {{"filename_prefix", prefix}, {"images", {"8", 0}}}}}}};
}

// Submits every prompt, waits for all; returns the PNG paths in submission order (empty on failure).
std::vector<fs::path> render(const std::string& url, const std::vector<Json>& prompts,
                             const fs::path& output) {
  std::vector<std::string> ids;
  for (const Json& p : prompts) {
    auto r = call(url, "POST", "/prompt", Json{{"prompt", p}}.dump());
    if (!r.is_ok() || r->status != 200) {
      log::error("netdist demo: POST /prompt failed: {}", r.is_ok() ? r->body : r.status().to_string());
      return {};
    }
    ids.push_back(Json::parse(r->body)["prompt_id"].get<std::string>());
  }
  std::vector<fs::path> files;
  for (const std::string& id : ids) {
    const auto deadline = Clock::now() + std::chrono::minutes(10);
    for (;;) {
      if (Clock::now() > deadline) {
        log::error("netdist demo: prompt {} did not finish within 10 minutes", id);
        return {};
      }
      auto r = call(url, "GET", "/history/" + id);
      Json h = r.is_ok() ? Json::parse(r->body, nullptr, false) : Json();
      if (h.is_object() && h.contains(id)) {
        if (h[id]["status"]["status_str"] != "success") {
          log::error("netdist demo: prompt {} failed: {}", id, h[id]["status"].dump());
          return {};
        }
        for (const Json& img : h[id]["outputs"]["9"]["images"])
          files.push_back(output / img["filename"].get<std::string>());
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  return files;
}

// True once the coordinator at `url` lists `workers` live workers; false after 5 minutes.
bool wait_for_workers(const std::string& url, int workers) {
  const auto up_by = Clock::now() + std::chrono::minutes(5);
  for (int alive = 0; alive < workers;) {
    if (Clock::now() > up_by) return false;
    auto r = call(url, "GET", cluster::protocol::path(cluster::protocol::Route::cluster));
    alive = 0;
    if (r.is_ok()) {
      Json j = Json::parse(r->body, nullptr, false);
      if (j.is_object() && j.value("workers", Json()).is_array())
        for (const Json& w : j["workers"]) alive += w.value("alive", false) ? 1 : 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

// The SHA-256 of `files` concatenated in order (written to a scratch file in `dir`); empty if unreadable.
std::string digest_of(const std::vector<fs::path>& files, const fs::path& dir) {
  std::string all;
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    all += ss.str();
  }
  const fs::path concat = dir / "all-images.bin";
  std::ofstream(concat, std::ios::binary) << all;
  auto digest = io::file_sha256(concat.string());
  fs::remove(concat);
  return digest.is_ok() ? *digest : std::string();
}

int run_demo(const std::string& out_dir, const LogFlags& log_flags) {
  const bool gpus = runtime::cuda_device_count() >= 2;
  const std::string device = gpus ? "cuda" : "cpu";
  std::vector<Json> prompts = {prompt(64, 8, 42, "red heart", "batch8")};
  const int sizes[] = {48, 64, 80, 96};
  const char* texts[] = {"yellow star", "green tree", "blue drop", "purple heart"};
  for (int i = 0; i < 4; ++i)
    prompts.push_back(prompt(sizes[i], 2, 100 + i, texts[i], "size" + std::to_string(sizes[i])));
  std::vector<Json> whole;
  for (int i = 0; i < 4; ++i)
    whole.push_back(prompt(sizes[i], 1, 200 + i, texts[i], "whole" + std::to_string(sizes[i])));
  int images = 0;
  for (const Json& p : prompts) images += p["5"]["inputs"]["batch_size"].get<int>();
  const int whole_images = static_cast<int>(whole.size());

  struct Run {
    int workers = 1;
    double seconds = 0, whole_seconds = 0;
    std::string digest;
  };
  std::vector<Run> runs(2);
  runs[0].workers = 1;
  runs[1].workers = 2;
  for (Run& run : runs) {
    const fs::path dir =
        fs::path(out_dir) / (std::to_string(run.workers) + (run.workers == 1 ? "-worker" : "-workers"));
    fs::remove_all(dir);
    fs::create_directories(dir / "output");
    Child coord = start_coordinator(run.workers, gpus, dir, log_flags);
    if (coord.url.empty()) {
      log::error("netdist demo: the coordinator did not start");
      stop(coord);
      return 1;
    }
    if (!wait_for_workers(coord.url, run.workers)) {
      log::error("netdist demo: {} local worker(s) did not come up within 5 minutes", run.workers);
      stop(coord);
      return 1;
    }
    render(coord.url, {prompt(64, run.workers, 1, "warm up", "warmup")}, dir / "output");
    const auto t0 = Clock::now();
    std::vector<fs::path> files = render(coord.url, prompts, dir / "output");
    run.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    const auto t1 = Clock::now();
    std::vector<fs::path> whole_files = files.empty() ? files : render(coord.url, whole, dir / "output");
    run.whole_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
    stop(coord);
    if (files.empty() || whole_files.empty()) return 1;
    files.insert(files.end(), whole_files.begin(), whole_files.end());
    run.digest = digest_of(files, dir);
  }
  std::printf(
      "\nnetdist demo: %d images (a batch of 8 at 64x64, 4 prompts of 2 at 48-96 px), 20 euler steps, "
      "embedded model, %s workers\n\n",
      images, device.c_str());
  std::printf("| setup | images | wall time (s) | images/s | speedup |\n|---|---|---|---|---|\n");
  for (const Run& run : runs) {
    std::printf("| %d %s worker%s | %d | %.2f | %.2f | %.2fx |\n", run.workers, device.c_str(),
                run.workers == 1 ? "" : "s", images, run.seconds, images / run.seconds,
                runs[0].seconds / run.seconds);
  }
  std::printf("\n%d batch-1 prompts at 48-96 px (each whole on one worker, one per worker at a time):\n\n",
              whole_images);
  std::printf("| setup | images | wall time (s) | images/s | speedup |\n|---|---|---|---|---|\n");
  for (const Run& run : runs) {
    std::printf("| %d %s worker%s | %d | %.2f | %.2f | %.2fx |\n", run.workers, device.c_str(),
                run.workers == 1 ? "" : "s", whole_images, run.whole_seconds, whole_images / run.whole_seconds,
                runs[0].whole_seconds / run.whole_seconds);
  }
  const bool same = !runs[0].digest.empty() && runs[0].digest == runs[1].digest;
  std::printf("\nimages identical in both runs: %s (sha256 of all PNGs %s%s%s)\n", same ? "yes" : "NO",
              runs[0].digest.substr(0, 16).c_str(), same ? "" : " vs ",
              same ? "" : runs[1].digest.substr(0, 16).c_str());
  std::printf("PNGs in %s/\n", out_dir.c_str());
  std::printf("\nNext: a coordinator with two local workers, its dashboard in a browser at http://127.0.0.1:8188/ and\n"
              "the ComfyUI API on the same port (any ComfyUI client or script):\n"
              "  build/release/netdist serve --enable-distributed --local-workers 2\n"
              "and `build/release/netdist doctor http://127.0.0.1:8188` checks it.\n");
  return same ? 0 : 1;
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto out = std::make_shared<std::string>("netdist-demo");
  CLI::App* cmd = app.add_subcommand(
      "demo", "Render the examples on 1 and 2 local workers; print speedup and check the images match");
  cmd->add_option("--output-directory", *out, "where the PNGs go");
  auto log_flags = std::make_shared<LogFlags>();
  add_log_flags(*cmd, *log_flags);
  cmd->callback([out, log_flags] {
    if (!apply_log_flags(*log_flags, "netdist demo")) return set_exit_code(2);
    if (embedded_model_path().empty()) {
      log::error("netdist demo: the embedded model models/tiny-emoji.safetensors was not found");
      set_exit_code(2);
      return;
    }
    set_exit_code(run_demo(*out, *log_flags));
  });
}

}  // namespace netdist::cli
