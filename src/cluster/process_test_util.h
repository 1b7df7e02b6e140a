// Scaffolding for tests that start real `netdist` processes (the binary at NETDIST_BINARY, compiled into
// netdist_cluster_tests) with the embedded tiny model: a child process that reports its URL (http:// or
// https://), optionally started through a command prefix such as `ip netns exec NS`; HTTP calls with an
// optional auth token and TLS trust; prompt submission; history, worker and cluster polling; worker and
// coordinator command lines; reference renders by one plain server. Every wait is bounded (a guard, not an
// assert on time). The JSON-returning helpers take the JSON type as a template argument (nlohmann::json by
// default; nlohmann::ordered_json where a test needs the server's key order).
// Thread-safety: Proc is owned by one test; the functions are free of shared state.
#pragma once

#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/http_client.h"
#include "cluster/netdist_child_process.h"
#include "netdist/source_dir.h"

namespace netdist::cluster::test {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A fresh folder <temp>/<suite>_<pid>/<name>.
inline fs::path scratch(const std::string& suite, const std::string& name) {
  fs::path p = fs::temp_directory_path() / (suite + "_" + std::to_string(getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

inline fs::path scratch(const std::string& name) { return scratch("netdist_cluster_test", name); }

inline std::string read_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A `netdist` child process (NETDIST_BINARY; stderr to `log`), see netdist_child_process.h; a test failure
// when it does not print its URL.
class Proc : public NetdistChildProcess {
 public:
  Proc(const std::vector<std::string>& args, const fs::path& log, const std::vector<std::string>& prefix = {})
      : NetdistChildProcess(NETDIST_BINARY, args, log, prefix) {
    EXPECT_FALSE(url().empty()) << "process did not start; see " << log;
  }
};

// How a call authenticates and what it trusts. A string converts to a token.
struct CallOptions {
  CallOptions() = default;
  CallOptions(const char* token) : token(token) {}  // NOLINT(google-explicit-constructor)
  CallOptions(std::string token,                    // NOLINT(google-explicit-constructor)
              std::shared_ptr<const TlsClientContext> tls = nullptr)
      : token(std::move(token)), tls(std::move(tls)) {}

  std::string token;
  std::shared_ptr<const TlsClientContext> tls;
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
};

// One HTTP call; a transport failure is a test failure (and an empty reply).
inline HttpReply call(const std::string& url, const std::string& method, const std::string& target,
                      const std::string& body = "", const CallOptions& o = {}) {
  HttpCall c;
  c.method = method;
  c.target = target;
  c.body = body;
  c.auth_token = o.token;
  c.tls = o.tls;
  c.timeout = o.timeout;
  auto r = http_call(url, c);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : HttpReply{};
}

// GET `target` as JSON (discarded if it does not parse); a status other than 200 is a test failure.
template <class Json = nlohmann::json>
Json get_json(const std::string& url, const std::string& target, const CallOptions& o = {}) {
  HttpReply r = call(url, "GET", target, "", o);
  EXPECT_EQ(r.status, 200) << target << ": " << r.body;
  return Json::parse(r.body, nullptr, false);
}

// The tiny model (`ckpt`), 64×64, 3 steps, euler_ancestral, `batch` images; SaveImage is node 9.
template <class Json = nlohmann::json>
Json prompt(int batch, int seed = 7, const std::string& ckpt = "tiny-emoji.safetensors") {
  return Json::parse(R"({
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ")" +
                     ckpt + R"("}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": )" +
                     std::to_string(batch) + R"(}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "red heart", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "3": {"class_type": "KSampler", "inputs": {"seed": )" +
                     std::to_string(seed) + R"(, "steps": 3, "cfg": 5.0, "sampler_name": "euler_ancestral",
          "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
          "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "split", "images": ["8", 0]}}
  })");
}

// POST /prompt; the prompt id ("" and a test failure unless the reply is 200).
template <class Json>
std::string submit(const std::string& url, const Json& p, const CallOptions& o = {},
                   const std::string& client_id = "t") {
  HttpReply r = call(url, "POST", "/prompt", Json{{"prompt", p}, {"client_id", client_id}}.dump(), o);
  EXPECT_EQ(r.status, 200) << r.body;
  auto j = Json::parse(r.body, nullptr, false);
  return j.is_object() ? j.value("prompt_id", "") : "";
}

// The history entry of prompt `id` once it has one (polled every 50 ms); null and a test failure after
// `guard`.
template <class Json = nlohmann::json>
Json wait_history(const std::string& url, const std::string& id, const CallOptions& o = {},
                  std::chrono::seconds guard = std::chrono::seconds(120)) {
  const auto deadline = Clock::now() + guard;
  while (Clock::now() < deadline) {
    Json j = get_json<Json>(url, "/history/" + id, o);
    if (j.is_object() && j.contains(id)) return j[id];
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "prompt " << id << " did not finish";
  return {};
}

// The PNG files of SaveImage node 9, in order, as bytes.
template <class Json>
std::vector<std::string> images(const Json& history, const fs::path& output_dir) {
  std::vector<std::string> out;
  if (!history.is_object()) return out;
  for (const auto& img : history["outputs"]["9"]["images"])
    out.push_back(
        read_file(output_dir / img.value("subfolder", "") / img["filename"].template get<std::string>()));
  return out;
}

// GET /netdist/v1/cluster's workers by URL.
inline std::map<std::string, nlohmann::json> workers_by_url(const std::string& coordinator,
                                                            const CallOptions& o = {}) {
  std::map<std::string, nlohmann::json> out;
  auto j = nlohmann::json::parse(call(coordinator, "GET", "/netdist/v1/cluster", "", o).body, nullptr, false);
  if (!j.is_object()) return out;
  for (const auto& w : j["workers"]) out[w["url"].get<std::string>()] = w;
  return out;
}

// Per worker URL, one number of GET /netdist/v1/cluster ("rows_done", "prompts_done", ...).
inline std::map<std::string, int64_t> worker_field(const std::string& coordinator, const std::string& field,
                                                   const CallOptions& o = {}) {
  std::map<std::string, int64_t> out;
  for (auto& [url, w] : workers_by_url(coordinator, o)) out[url] = w[field].get<int64_t>();
  return out;
}

// Rows each worker rendered, by URL.
inline std::map<std::string, int64_t> rows_by_worker(const std::string& coordinator,
                                                     const CallOptions& o = {}) {
  return worker_field(coordinator, "rows_done", o);
}

// Waits until at least n workers are alive; false and a test failure after `guard`.
inline bool wait_alive(const std::string& coordinator, size_t n, const CallOptions& o = {},
                       std::chrono::seconds guard = std::chrono::seconds(60)) {
  const auto deadline = Clock::now() + guard;
  while (Clock::now() < deadline) {
    size_t alive = 0;
    for (const auto& [url, w] : workers_by_url(coordinator, o)) alive += w.value("alive", false);
    if (alive >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "workers did not come up";
  return false;
}

namespace detail {
inline bool wait_worker(const std::string& worker, bool running, Clock::time_point deadline,
                        const CallOptions& o, std::chrono::milliseconds every) {
  while (Clock::now() < deadline) {
    auto s = nlohmann::json::parse(call(worker, "GET", "/netdist/v1/status", "", o).body, nullptr, false);
    if (s.is_object() && s["running"].is_null() != running) return true;
    std::this_thread::sleep_for(every);
  }
  return false;
}
}  // namespace detail

// Polls a worker's GET /netdist/v1/status every 10 ms until it runs a task; false once `deadline` passes.
inline bool wait_running(const std::string& worker, Clock::time_point deadline, const CallOptions& o = {}) {
  return detail::wait_worker(worker, true, deadline, o, std::chrono::milliseconds(10));
}

// Polls a worker's GET /netdist/v1/status every 20 ms until it runs no task; false once `deadline` passes.
inline bool wait_idle(const std::string& worker, Clock::time_point deadline, const CallOptions& o = {}) {
  return detail::wait_worker(worker, false, deadline, o, std::chrono::milliseconds(20));
}

// `netdist <command>` on port 0, one thread, its folders under dir, then `extra`.
inline std::vector<std::string> process_args(const std::string& command, const fs::path& dir,
                                             const std::vector<std::string>& extra) {
  std::vector<std::string> a = {command,
                                "--port",
                                "0",
                                "--threads",
                                "1",
                                "--output-directory",
                                (dir / "out").string(),
                                "--temp-directory",
                                (dir / "temp").string(),
                                "--input-directory",
                                (dir / "in").string(),
                                "--models-dir",
                                (dir / "models").string()};
  // NETDIST_TEST_DEVICE (e.g. "cuda") runs the processes on that device: the same tests prove the CUDA path
  // on the GPU machine (several processes share one card there; Gloo carries the exchange).
  if (const char* device = std::getenv("NETDIST_TEST_DEVICE"); device != nullptr && *device != '\0') {
    a.push_back("--device");
    a.push_back(device);
  }
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

inline std::vector<std::string> worker_args(const fs::path& dir, const std::vector<std::string>& extra = {}) {
  return process_args("worker", dir, extra);
}

inline std::vector<std::string> coordinator_args(const fs::path& dir, const std::vector<std::string>& extra) {
  return process_args("serve", dir, extra);
}

// One plain `netdist serve` (folders under dir) rendering prompt<Json>(batch, seed) whole for each seed, one
// after another: the reference PNG bytes by seed (distinct seeds: a repeated prompt would be answered from
// the cache).
template <class Json = nlohmann::json>
std::map<int, std::vector<std::string>> reference_images(const fs::path& dir, int batch,
                                                         const std::vector<int>& seeds = {7}) {
  std::map<int, std::vector<std::string>> out;
  Proc server(process_args("serve", dir, {}), dir / "serve.log");
  if (server.url().empty()) return out;
  for (int seed : seeds)
    out[seed] = images(wait_history<Json>(server.url(), submit(server.url(), prompt<Json>(batch, seed))),
                       dir / "out");
  return out;
}

}  // namespace netdist::cluster::test
