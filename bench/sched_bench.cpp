// sched_bench: queue policies and cost-model worker choice with real `netdist` processes, the embedded tiny
// model, on this CPU (docs/scheduling.md).
//   (a) One `netdist serve --queue-policy P` per policy, fifo then sjf: a fixed mixed trace of 20 prompts
//       (64²–128², 4–30 steps, fixed seeds) submitted at once behind one small warm prompt; per-prompt
//       latency from submit to its /history entry (polled every 20 ms). Prints mean and p95 per policy and
//       sjf/fifo. Target: sjf mean ≥ 25 % below fifo.
//   (b) A coordinator (--no-local) over 2 workers, one throttled with --test-step-delay-ms equal to the
//       normal step time (measured first from the plain worker: two 64² prompts of different step counts,
//       time difference / step difference), so it runs at half speed. Makespan of one batch against the
//       ideal = total work / sum of speeds = rows × steps × step_time / 1.5. Prints the ratio.
// Usage: sched_bench [path/to/netdist]   (default: `netdist` next to this program). Every process uses
// --threads 1. Takes about 2–3 minutes here.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/http_client.h"
#include "cluster/netdist_child_process.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

std::string g_binary;
fs::path g_root;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// `args`, then the folders (created under `dir`), one thread and port 0.
std::vector<std::string> bench_args(std::vector<std::string> args, const fs::path& dir) {
  fs::create_directories(dir);
  for (const char* d : {"--output-directory", "--temp-directory", "--input-directory"})
    args.insert(args.end(), {d, (dir / "files").string()});
  args.insert(args.end(), {"--models-dir", (dir / "models").string(), "--threads", "1", "--port", "0"});
  return args;
}

// A `netdist` child process (netdist_child_process.h) with its folders and log.txt under g_root / name.
class Proc : public netdist::cluster::test::NetdistChildProcess {
 public:
  Proc(const std::vector<std::string>& args, const std::string& name)
      : NetdistChildProcess(g_binary, bench_args(args, g_root / name), g_root / name / "log.txt") {
    if (url().empty())
      std::fprintf(stderr, "sched_bench: %s did not start; see %s\n", name.c_str(),
                   (g_root / name / "log.txt").c_str());
  }
};

json call(const std::string& url, const std::string& method, const std::string& target, const json& body = nullptr) {
  netdist::cluster::HttpCall c;
  c.method = method;
  c.target = target;
  if (!body.is_null()) c.body = body.dump();
  c.timeout = std::chrono::seconds(60);
  auto r = netdist::cluster::http_call(url, c);
  if (!r.is_ok() || r->status != 200) {
    std::fprintf(stderr, "sched_bench: %s %s%s failed: %s\n", method.c_str(), url.c_str(), target.c_str(),
                 r.is_ok() ? r->body.c_str() : r.status().to_string().c_str());
    std::exit(1);
  }
  return json::parse(r->body, nullptr, false);
}

json prompt(int size, int steps, int batch, int seed) {
  json p = json::parse(R"({
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-emoji.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "red heart", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 3, "cfg": 5.0, "sampler_name": "euler",
          "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
          "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "sched", "images": ["8", 0]}}
  })");
  p["5"]["inputs"]["width"] = size;
  p["5"]["inputs"]["height"] = size;
  p["5"]["inputs"]["batch_size"] = batch;
  p["3"]["inputs"]["steps"] = steps;
  p["3"]["inputs"]["seed"] = seed;
  return p;
}

std::string submit(const std::string& url, const json& p) {
  return call(url, "POST", "/prompt", json{{"prompt", p}, {"client_id", "sched_bench"}})["prompt_id"];
}

// Polls GET /history until every id is there; returns each id's first-seen time.
std::map<std::string, Clock::time_point> wait_all(const std::string& url, const std::vector<std::string>& ids) {
  std::map<std::string, Clock::time_point> done;
  const auto deadline = Clock::now() + std::chrono::seconds(300);
  while (done.size() < ids.size() && Clock::now() < deadline) {
    const json h = call(url, "GET", "/history");
    const auto now = Clock::now();
    for (const std::string& id : ids) {
      if (!done.count(id) && h.contains(id)) {
        if (h[id]["status"].value("status_str", "") != "success") {
          std::fprintf(stderr, "sched_bench: prompt %s failed: %s\n", id.c_str(), h[id]["status"].dump().c_str());
          std::exit(1);
        }
        done[id] = now;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (done.size() < ids.size()) {
    std::fprintf(stderr, "sched_bench: prompts did not finish in 300 s\n");
    std::exit(1);
  }
  return done;
}

struct Latency {
  double mean = 0, p95 = 0, makespan = 0;
};

Latency run_trace(const std::string& policy) {
  Proc server({"serve", "--queue-policy", policy}, "serve-" + policy);
  if (server.url().empty()) std::exit(1);
  wait_all(server.url(), {submit(server.url(), prompt(64, 4, 1, 1))});  // loads the model
  // The trace: fixed seeds, sizes 64/96/128, 4–30 steps, in a fixed shuffled order.
  std::mt19937 rng(20261128);
  std::vector<json> trace;
  for (int i = 0; i < 20; ++i) {
    const int size = 64 + 32 * static_cast<int>(rng() % 3);
    const int steps = 4 + static_cast<int>(rng() % 27);
    trace.push_back(prompt(size, steps, 1, 100 + i));
  }
  submit(server.url(), prompt(64, 4, 1, 2));  // runs while the trace is queued behind it
  std::vector<std::string> ids;
  std::map<std::string, Clock::time_point> submitted;
  const auto t0 = Clock::now();
  for (const json& p : trace) {
    ids.push_back(submit(server.url(), p));
    submitted[ids.back()] = Clock::now();
  }
  const auto done = wait_all(server.url(), ids);
  std::vector<double> lat;
  Latency out;
  for (const std::string& id : ids) {
    lat.push_back(seconds(done.at(id) - submitted.at(id)));
    out.makespan = std::max(out.makespan, seconds(done.at(id) - t0));
  }
  std::sort(lat.begin(), lat.end());
  for (double l : lat) out.mean += l / static_cast<double>(lat.size());
  out.p95 = lat[static_cast<size_t>(0.95 * static_cast<double>(lat.size() - 1) + 0.5)];
  return out;
}

void bench_policies() {
  std::printf("(a) 20 prompts (64²–128², 4–30 steps) submitted at once, one `netdist serve`, --threads 1\n");
  std::fflush(stdout);
  const Latency fifo = run_trace("fifo");
  const Latency sjf = run_trace("sjf");
  std::printf("| policy | mean latency s | p95 latency s | makespan s |\n|---|---|---|---|\n");
  std::printf("| fifo | %.2f | %.2f | %.2f |\n", fifo.mean, fifo.p95, fifo.makespan);
  std::printf("| sjf | %.2f | %.2f | %.2f |\n", sjf.mean, sjf.p95, sjf.makespan);
  std::printf("sjf/fifo mean latency: %.2f (target <= 0.75), p95: %.2f\n\n", sjf.mean / fifo.mean, sjf.p95 / fifo.p95);
  std::fflush(stdout);
}

// Seconds for one 64² prompt of `steps` on `url` (submit to history).
double prompt_seconds(const std::string& url, int steps, int seed) {
  const auto t0 = Clock::now();
  wait_all(url, {submit(url, prompt(64, steps, 1, seed))});
  return seconds(Clock::now() - t0);
}

void bench_makespan() {
  const int rows = 12, steps = 30;
  std::printf("(b) one batch of %d 64² images, %d steps, 1 row per shard, coordinator --no-local over 2 workers\n", rows, steps);
  std::fflush(stdout);
  Proc fast({"worker"}, "worker-fast");
  if (fast.url().empty()) std::exit(1);
  prompt_seconds(fast.url(), 2, 1);  // model load
  double step_s = 0;
  for (int i = 0; i < 2; ++i) {
    const double short_run = prompt_seconds(fast.url(), 5, 10 + i);
    const double long_run = prompt_seconds(fast.url(), 45, 20 + i);
    step_s += (long_run - short_run) / 40.0 / 2.0;
  }
  const int delay_ms = std::max(1, static_cast<int>(step_s * 1000.0 + 0.5));
  Proc slow({"worker", "--test-step-delay-ms", std::to_string(delay_ms)}, "worker-slow");
  if (slow.url().empty()) std::exit(1);
  Proc coordinator({"serve", "--enable-distributed", "--no-local", "--workers", fast.url() + "," + slow.url()},
                   "coordinator");
  if (coordinator.url().empty()) std::exit(1);
  wait_all(coordinator.url(), {submit(coordinator.url(), prompt(64, 2, 2, 3))});  // loads models, seeds the model
  const auto t0 = Clock::now();
  wait_all(coordinator.url(), {submit(coordinator.url(), prompt(64, steps, rows, 4))});
  const double makespan = seconds(Clock::now() - t0);
  const double ideal = rows * steps * step_s / 1.5;
  const json cluster = call(coordinator.url(), "GET", "/netdist/v1/cluster");
  std::printf("normal step: %.1f ms; slow worker throttled by %d ms/step\n", step_s * 1000, delay_ms);
  std::printf("| worker | rows done | seconds_per_unit | samples |\n|---|---|---|---|\n");
  for (const json& w : cluster["workers"]) {
    const std::string name = w["url"] == fast.url() ? "fast" : "slow (1/2)";
    std::printf("| %s | %lld | %s | %lld |\n", name.c_str(), static_cast<long long>(w["rows_done"].get<int64_t>()),
                w["seconds_per_unit"].dump().c_str(), static_cast<long long>(w["samples"].get<int64_t>()));
  }
  std::printf("makespan %.2f s, ideal (work / sum of speeds) %.2f s, ratio %.2f\n", makespan, ideal, makespan / ideal);
}

}  // namespace

int main(int argc, char** argv) {
  g_binary = argc > 1 ? argv[1] : (fs::absolute(argv[0]).parent_path() / "netdist").string();
  if (!fs::exists(g_binary)) {
    std::fprintf(stderr, "sched_bench: no netdist binary at %s (pass its path)\n", g_binary.c_str());
    return 2;
  }
  g_root = fs::temp_directory_path() / ("netdist_sched_bench_" + std::to_string(getpid()));
  fs::remove_all(g_root);
  signal(SIGPIPE, SIG_IGN);
  const auto t0 = Clock::now();
  bench_policies();
  bench_makespan();
  std::printf("total bench time %.0f s\n", seconds(Clock::now() - t0));
  fs::remove_all(g_root);
  return 0;
}
