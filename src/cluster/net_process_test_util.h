// Test-only helpers for tests that start real `netdist` processes (the binary's path is NETDIST_BINARY):
// a child process whose URL (http:// or https://) comes from its "listening on" line, optionally started
// through a command prefix (e.g. `ip netns exec NS`); calls through cluster::http_call; the tiny model's
// prompt; waiting for history and live workers. Every wait is bounded (a guard, not an assert on time).
// (The TLS and netns process tests use this one; cluster_process_test.cpp, fault_injection_test.cpp use
// process_test_util.h, the older plain-HTTP form: merging the two is left to do.)
// Thread-safety: one test thread.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/http_client.h"
#include "netdist/source_dir.h"

namespace netdist::cluster::proc_test {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

inline std::string tiny_model() {
  return (fs::path(NETDIST_SOURCE_DIR) / "models" / "tiny-emoji.safetensors").string();
}

// A fresh folder under the temp directory, unique to this process and `suite`.
inline fs::path scratch(const std::string& suite, const std::string& name) {
  fs::path p = fs::temp_directory_path() / (suite + "_" + std::to_string(getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// A `netdist` child process (stderr to `log`). `prefix` runs before the binary (argv[0] of the prefix is
// looked up on PATH). The URL is empty, with a test failure, if it exits before printing one.
class Proc {
 public:
  Proc(std::vector<std::string> args, const fs::path& log, std::vector<std::string> prefix = {}) {
    int out[2];
    EXPECT_EQ(pipe(out), 0);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      const int err = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (err >= 0) dup2(err, STDERR_FILENO);
      close(out[0]);
      setpgid(0, 0);  // its own group: stop() reaches a prefix's child too
      setenv("NETDIST_MODEL", tiny_model().c_str(), 1);
      std::vector<std::string> all = prefix;
      all.push_back(NETDIST_BINARY);
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    FILE* f = fdopen(out[0], "r");
    char line[512];
    const std::regex re("listening on (https?://[^ \\n]+)");
    while (f && std::fgets(line, sizeof line, f)) {
      std::cmatch m;
      if (std::regex_search(line, m, re)) {
        url_ = m[1].str();
        break;
      }
    }
    stdout_ = f;
    EXPECT_FALSE(url_.empty()) << "process did not start; see " << log;
  }
  ~Proc() { stop(SIGTERM); }
  Proc(const Proc&) = delete;
  Proc& operator=(const Proc&) = delete;
  // Signals the process group and reaps the child. Idempotent.
  void stop(int sig) {
    if (pid_ <= 0) return;
    kill(-pid_, sig);
    kill(pid_, sig);
    waitpid(pid_, nullptr, 0);
    pid_ = 0;
    if (stdout_) std::fclose(stdout_);
    stdout_ = nullptr;
  }
  const std::string& url() const { return url_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = 0;
  FILE* stdout_ = nullptr;
  std::string url_;
};

struct CallOptions {
  std::string token;
  std::shared_ptr<const TlsClientContext> tls;
};

inline HttpReply call(const std::string& url, const std::string& method, const std::string& target,
                      const std::string& body = "", const CallOptions& o = {}) {
  HttpCall c;
  c.method = method;
  c.target = target;
  c.body = body;
  c.auth_token = o.token;
  c.tls = o.tls;
  c.timeout = std::chrono::seconds(60);
  auto r = http_call(url, c);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : HttpReply{};
}

// The tiny model, 64×64, 3 steps, euler_ancestral, `batch` images; SaveImage is node 9.
inline nlohmann::json prompt(int batch, int seed = 7) {
  return nlohmann::json::parse(R"({
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-emoji.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": )" +
                               std::to_string(batch) + R"(}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "red heart", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "3": {"class_type": "KSampler", "inputs": {"seed": )" +
                               std::to_string(seed) +
                               R"(, "steps": 3, "cfg": 5.0, "sampler_name": "euler_ancestral",
          "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
          "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "split", "images": ["8", 0]}}
  })");
}

inline std::string submit(const std::string& url, const nlohmann::json& p, const CallOptions& o = {}) {
  HttpReply r = call(url, "POST", "/prompt", nlohmann::json{{"prompt", p}, {"client_id", "t"}}.dump(), o);
  EXPECT_EQ(r.status, 200) << r.body;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  return j.is_object() ? j.value("prompt_id", "") : "";
}

inline nlohmann::json wait_history(const std::string& url, const std::string& id, const CallOptions& o = {},
                                   std::chrono::seconds guard = std::chrono::seconds(120)) {
  const auto deadline = Clock::now() + guard;
  while (Clock::now() < deadline) {
    HttpReply r = call(url, "GET", "/history/" + id, "", o);
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains(id)) return j[id];
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "prompt " << id << " did not finish";
  return {};
}

// The PNG files of SaveImage node 9, in order, as bytes.
inline std::vector<std::string> images(const nlohmann::json& history, const fs::path& output_dir) {
  std::vector<std::string> out;
  if (!history.is_object()) return out;
  for (const auto& img : history["outputs"]["9"]["images"]) {
    std::ifstream f(output_dir / img.value("subfolder", "") / img["filename"].get<std::string>(),
                    std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    out.push_back(ss.str());
  }
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

// Waits until at least n workers are alive; false (no failure) after `guard`.
inline bool wait_alive(const std::string& coordinator, size_t n, const CallOptions& o = {},
                       std::chrono::seconds guard = std::chrono::seconds(60)) {
  const auto deadline = Clock::now() + guard;
  while (Clock::now() < deadline) {
    size_t alive = 0;
    for (const auto& [url, w] : workers_by_url(coordinator, o)) alive += w.value("alive", false);
    if (alive >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
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
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// One plain `netdist serve` on loopback rendering prompt(batch, seed) whole for each seed: the reference PNG
// bytes by seed (prompts with distinct seeds: a repeated prompt would be answered from the cache).
inline std::map<int, std::vector<std::string>> reference_images(const fs::path& dir, int batch,
                                                                const std::vector<int>& seeds = {7}) {
  std::map<int, std::vector<std::string>> out;
  Proc server(process_args("serve", dir, {}), dir / "serve.log");
  if (server.url().empty()) return out;
  for (int seed : seeds)
    out[seed] = images(wait_history(server.url(), submit(server.url(), prompt(batch, seed))), dir / "out");
  return out;
}

}  // namespace netdist::cluster::proc_test
