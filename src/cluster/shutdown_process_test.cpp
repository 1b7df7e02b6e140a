// SIGTERM ends `netdist serve` and `netdist worker` within the shutdown grace period (--shutdown-grace,
// default 5 s) even while a prompt is stuck, and with --data-dir the stuck prompt runs again at the next
// start. Stuck for real: a LoadImageUrl whose URL is a socket that accepts and never answers (the node waits
// on its HTTP call; nothing can cancel it from outside), and a coordinator whose only worker is SIGSTOPped
// in the middle of a shard.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/process_test_util.h"
#include "core/spawn.h"

// Not in netdist::cluster: in a unity build cluster_process_test.cpp's helpers share that namespace's
// anonymous namespace.
namespace netdist::shutdown_process_test {
namespace {

using namespace cluster::test;  // NOLINT(google-build-using-namespace): the process-test scaffolding

// An HTTP server on loopback that accepts connections and, until answer() is called, never replies (the
// connection stays open, the request unread); after answer() it serves `body` as image/png to every request.
class SilentUrl {
 public:
  explicit SilentUrl(std::string body) : body_(std::move(body)) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    url_ = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/emoji.png";
    thread_ = std::thread([this] { serve(); });
  }
  ~SilentUrl() {
    stop_ = true;
    thread_.join();
    for (int c : held_) close(c);
    close(fd_);
  }
  const std::string& url() const { return url_; }
  void answer() { answer_ = true; }
  int connections() const { return connections_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++connections_;
      if (!answer_) {
        held_.push_back(c);  // accepted, never read, never answered
        continue;
      }
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, size_t(n));
      }
      const std::string reply = "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: " +
                                std::to_string(body_.size()) + "\r\nConnection: close\r\n\r\n" + body_;
      for (size_t sent = 0; sent < reply.size();) {
        const ssize_t n = write(c, reply.data() + sent, reply.size() - sent);
        if (n <= 0) break;
        sent += size_t(n);
      }
      close(c);
    }
  }

  std::string body_;
  std::string url_;
  int fd_ = -1;
  std::vector<int> held_;
  std::atomic<bool> stop_{false}, answer_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

// LoadImageUrl(url) → SaveImage: no model, so the only wait is the URL.
nlohmann::json url_prompt(const std::string& url) {
  return {{"1", {{"class_type", "LoadImageUrl"}, {"inputs", {{"url", url}}}}},
          {"2", {{"class_type", "SaveImage"}, {"inputs", {{"filename_prefix", "url"}, {"images", {"1", 0}}}}}}};
}

std::string emoji_png() {
  return read_file(fs::path(NETDIST_SOURCE_DIR) / "tests" / "data" / "emoji" / "google_1f301.png");
}

// Polls GET /queue until prompt `id` is running (30 s guard).
bool wait_queue_running(const std::string& url, const std::string& id) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    const nlohmann::json q = get_json(url, "/queue");
    for (const auto& item : q.value("queue_running", nlohmann::json::array()))
      if (item.is_array() && item.size() > 1 && item[1] == id) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// Sends SIGTERM to `p` and waits for it to exit, at most `bound`: its wait status, or nullopt (then it is
// killed) when it did not exit in time.
std::optional<int> sigterm_and_wait(Proc& p, std::chrono::seconds bound) {
  kill(p.pid(), SIGTERM);
  std::optional<int> status = wait_child(p.pid(), bound);
  p.stop(SIGKILL, std::chrono::seconds(0));  // reaped already, or killed now: the test fails either way
  return status;
}

// `netdist serve --data-dir` whose prompt waits on a URL that never answers: SIGTERM ends it within 10 s
// (the default grace is 5 s), the prompt is not recorded as done, and the next start runs it again; this
// time the URL answers and the prompt succeeds.
TEST(ShutdownProcess, SigtermEndsServeWithAStuckPromptAndTheRestartRunsItAgain) {
  const fs::path dir = scratch("shutdown_process_test", "serve");
  SilentUrl image(emoji_png());
  const auto args = process_args("serve", dir, {"--data-dir", (dir / "data").string()});
  std::string id;
  {
    Proc serve(args, dir / "serve1.log");
    ASSERT_FALSE(serve.url().empty());
    id = submit(serve.url(), url_prompt(image.url()));
    ASSERT_TRUE(wait_queue_running(serve.url(), id));
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (image.connections() == 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_GT(image.connections(), 0) << "LoadImageUrl never called the URL";
    const std::optional<int> status = sigterm_and_wait(serve, std::chrono::seconds(10));
    ASSERT_TRUE(status.has_value()) << "netdist serve did not exit within 10 s of SIGTERM; see " << dir / "serve1.log";
    const std::string log = read_file(dir / "serve1.log");
    EXPECT_NE(log.find("unfinished prompts: " + id), std::string::npos) << log;
    EXPECT_NE(log.find("they run again at the next start"), std::string::npos) << log;
  }
  image.answer();
  Proc again(args, dir / "serve2.log");
  ASSERT_FALSE(again.url().empty());
  const nlohmann::json h = wait_history(again.url(), id);
  EXPECT_EQ(h["status"]["status_str"], "success") << h.dump();
  EXPECT_EQ(h["outputs"]["2"]["images"].size(), 1u) << h.dump();
  EXPECT_EQ(again.stop(SIGTERM), 0) << "an idle server stops cleanly (exit status 0)";
}

// `netdist worker` (the same server, plus /netdist/v1) with a stuck prompt: SIGTERM ends it within 10 s; a
// shorter --shutdown-grace is honoured.
TEST(ShutdownProcess, SigtermEndsAWorkerWithAStuckPrompt) {
  const fs::path dir = scratch("shutdown_process_test", "worker");
  SilentUrl image(emoji_png());
  Proc worker(worker_args(dir, {"--shutdown-grace", "1"}), dir / "worker.log");
  ASSERT_FALSE(worker.url().empty());
  const std::string id = submit(worker.url(), url_prompt(image.url()));
  ASSERT_TRUE(wait_queue_running(worker.url(), id));
  const std::optional<int> status = sigterm_and_wait(worker, std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value()) << "netdist worker did not exit within 10 s of SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << "a forced exit says so: " << *status;
  const std::string log = read_file(dir / "worker.log");
  EXPECT_NE(log.find("stopping took longer than 1 s (--shutdown-grace)"), std::string::npos) << log;
}

// A coordinator whose only worker is stopped (SIGSTOP) in the middle of a shard: SIGTERM ends it within
// 10 s; restarted with the same --data-dir, and the worker resumed, the prompt runs to completion.
TEST(ShutdownProcess, SigtermEndsACoordinatorWaitingOnAStoppedWorkerAndTheRestartFinishes) {
  const fs::path dir = scratch("shutdown_process_test", "coordinator");
  Proc worker(worker_args(dir / "w", {"--test-step-delay-ms", "300"}), dir / "w.log");
  ASSERT_FALSE(worker.url().empty());
  const auto args = coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--workers", worker.url(),
                                                 "--data-dir", (dir / "c" / "data").string()});
  std::string id;
  {
    Proc coord(args, dir / "c1.log");
    ASSERT_TRUE(wait_alive(coord.url(), 1));
    id = submit(coord.url(), prompt(2, 31));
    ASSERT_TRUE(wait_running(worker.url(), Clock::now() + std::chrono::seconds(30)));
    ASSERT_EQ(kill(worker.pid(), SIGSTOP), 0);
    const std::optional<int> status = sigterm_and_wait(coord, std::chrono::seconds(10));
    kill(worker.pid(), SIGCONT);
    ASSERT_TRUE(status.has_value()) << "the coordinator did not exit within 10 s of SIGTERM; see " << dir / "c1.log";
  }
  Proc coord(args, dir / "c2.log");
  ASSERT_FALSE(coord.url().empty());
  const nlohmann::json h = wait_history(coord.url(), id);
  EXPECT_EQ(h["status"]["status_str"], "success") << h.dump();
  EXPECT_EQ(h["outputs"]["9"]["images"].size(), 2u) << h.dump();
}

}  // namespace
}  // namespace netdist::shutdown_process_test
