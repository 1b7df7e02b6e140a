// `netdist serve --data-dir` as real processes on loopback with the embedded tiny model (64×64, 3 steps):
// kill -9 in the middle of a queue and restart with the same folder (every prompt finishes exactly once,
// with complete PNGs and no stray or duplicate files), history across a clean restart, and startup errors
// for a corrupt database and an unwritable folder. Built into the cluster test program (NETDIST_BINARY).
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
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "cluster/http_client.h"
#include "io/png.h"
#include "netdist/source_dir.h"
#include "store/store.h"

namespace netdist::store {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using cluster::HttpReply;

std::string embedded_model() { return (fs::path(NETDIST_SOURCE_DIR) / "models" / "tiny-emoji.safetensors").string(); }

fs::path process_scratch(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("netdist_store_process_test_" + std::to_string(getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// `netdist serve` on port 0 with its folders and --data-dir under `dir`.
std::vector<std::string> serve_args(const fs::path& dir, const std::vector<std::string>& extra) {
  std::vector<std::string> a = {"serve",
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
                                (dir / "models").string(),
                                "--data-dir",
                                (dir / "data").string()};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

pid_t spawn(std::vector<std::string> args, int stdout_fd, const fs::path& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (stdout_fd >= 0) dup2(stdout_fd, STDOUT_FILENO);
    const int err = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (err >= 0) dup2(err, STDERR_FILENO);
    setenv("NETDIST_MODEL", embedded_model().c_str(), 1);
    std::vector<char*> argv;
    std::string bin = NETDIST_BINARY;
    argv.push_back(bin.data());
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

// A running server; its URL comes from the "listening on" line.
class Server {
 public:
  Server(std::vector<std::string> args, const fs::path& log) {
    int out[2];
    EXPECT_EQ(pipe(out), 0);
    pid_ = spawn(std::move(args), out[1], log);
    close(out[1]);
    stdout_ = fdopen(out[0], "r");
    char line[512];
    const std::regex re("listening on (http://[^ \\n]+)");
    while (stdout_ && std::fgets(line, sizeof line, stdout_)) {
      std::cmatch m;
      if (std::regex_search(line, m, re)) {
        url_ = m[1].str();
        break;
      }
    }
    EXPECT_FALSE(url_.empty()) << "netdist serve did not start; see " << log;
  }
  ~Server() { stop(SIGTERM); }
  void stop(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    waitpid(pid_, nullptr, 0);
    pid_ = 0;
    if (stdout_) std::fclose(stdout_);
    stdout_ = nullptr;
  }
  const std::string& url() const { return url_; }

 private:
  pid_t pid_ = 0;
  FILE* stdout_ = nullptr;
  std::string url_;
};

// Runs `netdist args` to its end (60 s guard); returns the exit code (-1 if it did not end) and its stderr.
std::pair<int, std::string> run_to_exit(std::vector<std::string> args, const fs::path& log) {
  const pid_t pid = spawn(std::move(args), -1, log);
  int status = 0;
  const auto deadline = SteadyClock::now() + std::chrono::seconds(60);
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (SteadyClock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return {-1, "did not exit"};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::ifstream f(log);
  std::stringstream ss;
  ss << f.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), ss.str()};
}

nlohmann::json get_json(const std::string& url, const std::string& target) {
  cluster::HttpCall c;
  c.method = "GET";
  c.target = target;
  c.timeout = std::chrono::seconds(30);
  auto r = cluster::http_call(url, c);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? nlohmann::json::parse(r->body, nullptr, false) : nlohmann::json();
}

nlohmann::json tiny_prompt(int seed, int batch) {
  return nlohmann::json::parse(R"({
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-emoji.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": )" +
                               std::to_string(batch) + R"(}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "red heart", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "3": {"class_type": "KSampler", "inputs": {"seed": )" +
                               std::to_string(seed) + R"(, "steps": 3, "cfg": 5.0, "sampler_name": "euler",
          "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
          "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "durable", "images": ["8", 0]}}
  })");
}

std::string submit_prompt(const std::string& url, const nlohmann::json& p) {
  cluster::HttpCall c;
  c.method = "POST";
  c.target = "/prompt";
  c.body = nlohmann::json{{"prompt", p}, {"client_id", "durable-test"}}.dump();
  c.timeout = std::chrono::seconds(30);
  auto r = cluster::http_call(url, c);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  if (!r.is_ok()) return "";
  EXPECT_EQ(r->status, 200) << r->body;
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  return j.is_object() ? j.value("prompt_id", "") : "";
}

// Waits until GET /history holds every id (120 s guard); returns /history.
nlohmann::json wait_all(const std::string& url, const std::vector<std::string>& ids) {
  const auto deadline = SteadyClock::now() + std::chrono::seconds(120);
  nlohmann::json h;
  while (SteadyClock::now() < deadline) {
    h = get_json(url, "/history");
    size_t found = 0;
    for (const std::string& id : ids) found += h.is_object() && h.contains(id);
    if (found == ids.size()) return h;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "not every prompt finished; history: " << h.dump();
  return h;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(StoreProcess, KillNineMidQueueThenRestartFinishesEveryPromptExactlyOnce) {
  const fs::path dir = process_scratch("kill9");
  // The coordinator renders the shards itself, 100 ms a step: each prompt (2 shards of 3 steps) takes over half a
  // second, so the kill lands while the queue is busy.
  const std::vector<std::string> args =
      serve_args(dir, {"--enable-distributed", "--local-workers", "0", "--test-step-delay-ms", "100"});
  std::vector<std::string> ids;
  nlohmann::json first_entry;
  {
    Server server(args, dir / "serve1.log");
    for (int i = 0; i < 4; ++i) ids.push_back(submit_prompt(server.url(), tiny_prompt(100 + i, 2)));
    // Until the first prompt is done and the next one runs.
    const auto deadline = SteadyClock::now() + std::chrono::seconds(60);
    while (SteadyClock::now() < deadline) {
      const nlohmann::json h = get_json(server.url(), "/history/" + ids[0]);
      const nlohmann::json q = get_json(server.url(), "/queue");
      if (h.is_object() && h.contains(ids[0]) && q.is_object() && !q["queue_running"].empty()) {
        first_entry = h[ids[0]];
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_FALSE(first_entry.is_null()) << "the first prompt did not finish; see " << dir / "serve1.log";
    server.stop(SIGKILL);
  }
  Server server(args, dir / "serve2.log");
  // The queue is read before the history: a prompt missing from both finished in between and would be in both.
  const nlohmann::json queue = get_json(server.url(), "/queue");
  const nlohmann::json early = get_json(server.url(), "/history");
  std::set<std::string> queued;
  for (const char* part : {"queue_running", "queue_pending"})
    for (const auto& item : queue[part]) queued.insert(item[1].get<std::string>());
  for (size_t i = 1; i < ids.size(); ++i)
    EXPECT_TRUE(queued.count(ids[i]) || early.contains(ids[i])) << ids[i] << " was neither re-queued nor done";
  EXPECT_EQ(early[ids[0]], first_entry) << "the history entry committed before the kill changed";
  for (const auto& item : queue["queue_pending"]) {
    for (size_t i = 0; i < ids.size(); ++i)
      if (item[1] == ids[i]) {
        EXPECT_EQ(item[0], int(i)) << "a re-queued prompt lost its number";
      }
  }

  const nlohmann::json history = wait_all(server.url(), ids);
  EXPECT_EQ(history.size(), ids.size()) << history.dump();
  std::set<std::string> named;
  for (const std::string& id : ids) {
    const nlohmann::json& entry = history[id];
    EXPECT_EQ(entry["status"]["status_str"], "success") << id;
    const nlohmann::json& images = entry["outputs"]["9"]["images"];
    EXPECT_EQ(images.size(), 2u) << id;
    for (const auto& img : images) {
      const std::string name = img["filename"].get<std::string>();
      EXPECT_TRUE(named.insert(name).second) << name << " named by two history entries";
      auto png = io::decode_png(read_bytes(dir / "out" / name), name);
      ASSERT_TRUE(png.is_ok()) << png.status().to_string();
      EXPECT_EQ(png->first.width, 64);
      EXPECT_EQ(png->first.height, 64);
    }
  }
  // Exactly the files history names: no leftover of the killed run, no temporary file, no duplicate.
  std::set<std::string> on_disk;
  for (const auto& e : fs::directory_iterator(dir / "out")) on_disk.insert(e.path().filename().string());
  EXPECT_EQ(on_disk, named);
}

TEST(StoreProcess, HistorySurvivesACleanRestart) {
  const fs::path dir = process_scratch("clean");
  const std::vector<std::string> args = serve_args(dir, {});
  std::vector<std::string> ids;
  nlohmann::json before;
  {
    Server server(args, dir / "serve1.log");
    for (int i = 0; i < 2; ++i) ids.push_back(submit_prompt(server.url(), tiny_prompt(7 + i, 1)));
    before = wait_all(server.url(), ids);
  }
  Server server(args, dir / "serve2.log");
  const nlohmann::json after = get_json(server.url(), "/history");
  EXPECT_EQ(after, before);
  for (const std::string& id : ids) {
    const nlohmann::json one = get_json(server.url(), "/history/" + id);
    EXPECT_EQ(one[id], before[id]) << id;
  }
  const nlohmann::json queue = get_json(server.url(), "/queue");
  EXPECT_TRUE(queue["queue_pending"].empty() && queue["queue_running"].empty()) << "a finished prompt was re-queued";
  // The queue numbers continue after the stored ones.
  const std::string next = submit_prompt(server.url(), tiny_prompt(9, 1));
  const nlohmann::json h = wait_all(server.url(), {next});
  EXPECT_EQ(h[next]["prompt"][0], 2);
}

TEST(StoreProcess, CorruptDatabaseOrUnwritableDataDirStopsServeWithTheReason) {
  const fs::path dir = process_scratch("corrupt");
  fs::create_directories(dir / "data");
  const fs::path db = dir / "data" / kDatabaseFileName;
  const std::string garbage(4096, '\x5a');
  std::ofstream(db, std::ios::binary) << garbage;
  auto [code, err] = run_to_exit(serve_args(dir, {}), dir / "corrupt.log");
  EXPECT_NE(code, 0) << err;
  EXPECT_NE(err.find(db.string()), std::string::npos) << err;
  EXPECT_NE(err.find("not a database"), std::string::npos) << err;
  EXPECT_EQ(read_bytes(db), garbage) << "the corrupt database was modified";

  std::ofstream(dir / "plain_file") << "x";
  std::vector<std::string> args = serve_args(dir, {});
  args.back() = (dir / "plain_file" / "data").string();  // the value of --data-dir
  auto [code2, err2] = run_to_exit(args, dir / "unwritable.log");
  EXPECT_NE(code2, 0) << err2;
  EXPECT_NE(err2.find((dir / "plain_file" / "data").string()), std::string::npos) << err2;
}

}  // namespace
}  // namespace netdist::store
