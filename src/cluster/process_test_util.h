// Scaffolding for tests that start real `netdist` processes (the binary at NETDIST_BINARY, compiled into
// netdist_cluster_tests) on loopback with the embedded tiny model: a child process that reports its URL,
// HTTP calls, prompt submission and history polling, worker and coordinator command lines.
// Thread-safety: Proc is owned by one test; the functions are free of shared state.
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
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/http_client.h"
#include "netdist/source_dir.h"

namespace netdist::cluster::test {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// (fs::path, not string + literal: GCC 12 -O3 flags that as -Warray-bounds for short source paths.)
inline std::string tiny_model() {
  return (fs::path(NETDIST_SOURCE_DIR) / "models" / "tiny-emoji.safetensors").string();
}

inline fs::path scratch(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("netdist_cluster_test_" + std::to_string(getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// A `netdist` child process; its URL comes from the "listening on" line it prints.
class Proc {
 public:
  Proc(std::vector<std::string> args, const fs::path& log) {
    int out[2];
    EXPECT_EQ(pipe(out), 0);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      const int err = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (err >= 0) dup2(err, STDERR_FILENO);
      close(out[0]);
      setenv("NETDIST_MODEL", tiny_model().c_str(), 1);
      std::vector<char*> argv;
      std::string bin = NETDIST_BINARY;
      argv.push_back(bin.data());
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    close(out[1]);
    FILE* f = fdopen(out[0], "r");
    char line[512];
    const std::regex re("listening on (http://[^ \\n]+)");
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
  void stop(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    kill(pid_, SIGCONT);  // a stopped process would never act on the signal
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

inline HttpReply call(const std::string& url, const std::string& method, const std::string& target,
               const std::string& body = "", const std::string& token = "") {
  HttpCall c;
  c.method = method;
  c.target = target;
  c.body = body;
  c.auth_token = token;
  c.timeout = std::chrono::seconds(60);
  auto r = http_call(url, c);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : HttpReply{};
}

inline std::string submit(const std::string& url, const nlohmann::json& p, const std::string& token = "",
                   const std::string& client_id = "t") {
  HttpReply r = call(url, "POST", "/prompt", nlohmann::json{{"prompt", p}, {"client_id", client_id}}.dump(), token);
  EXPECT_EQ(r.status, 200) << r.body;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  return j.is_object() ? j.value("prompt_id", "") : "";
}

inline nlohmann::json wait_history(const std::string& url, const std::string& id, const std::string& token = "") {
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < deadline) {
    HttpReply r = call(url, "GET", "/history/" + id, "", token);
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

// Rows each worker rendered, from the coordinator's GET /netdist/v1/cluster, by URL.
inline std::map<std::string, int64_t> rows_by_worker(const std::string& coordinator, const std::string& token = "") {
  std::map<std::string, int64_t> out;
  auto j =
      nlohmann::json::parse(call(coordinator, "GET", "/netdist/v1/cluster", "", token).body, nullptr, false);
  if (!j.is_object()) return out;
  for (const auto& w : j["workers"]) out[w["url"].get<std::string>()] = w["rows_done"].get<int64_t>();
  return out;
}

// Per worker URL, one field of GET /netdist/v1/cluster.
inline std::map<std::string, int64_t> worker_field(const std::string& coordinator, const std::string& field) {
  std::map<std::string, int64_t> out;
  auto j = nlohmann::json::parse(call(coordinator, "GET", "/netdist/v1/cluster").body, nullptr, false);
  if (!j.is_object()) return out;
  for (const auto& w : j["workers"]) out[w["url"].get<std::string>()] = w[field].get<int64_t>();
  return out;
}

inline void wait_alive(const std::string& coordinator, size_t n, const std::string& token = "") {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    auto j = nlohmann::json::parse(call(coordinator, "GET", "/netdist/v1/cluster", "", token).body, nullptr,
                                   false);
    size_t alive = 0;
    if (j.is_object())
      for (const auto& w : j["workers"]) alive += w["alive"].get<bool>();
    if (alive >= n) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "workers did not come up";
}

// `netdist <command>` on port 0, one thread, with its folders under dir.
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

inline std::vector<std::string> worker_args(const fs::path& dir, std::vector<std::string> extra = {}) {
  return process_args("worker", dir, extra);
}

inline std::vector<std::string> coordinator_args(const fs::path& dir, std::vector<std::string> extra) {
  return process_args("serve", dir, extra);
}

}  // namespace netdist::cluster::test
