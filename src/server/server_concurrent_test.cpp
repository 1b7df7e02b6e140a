// Prompts that the backend runs concurrently (a coordinator's whole-prompt tasks, backend.h
// runs_concurrently): several run at once, GET /queue lists each in queue_running, each prompt's WebSocket
// events reach its own client with its prompt_id, /interrupt with a prompt id stops only that prompt and
// without one stops every running prompt, and each ends in history exactly once.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "server/fake_backend_test_util.h"
#include "server/http_server.h"
#include "server/test_client_test_util.h"

namespace netdist::server {
namespace {

using json = nlohmann::ordered_json;
using Message = TestWsClient::Message;

// Every prompt runs concurrently, two at a time; execute emits a start and holds until `release` or its
// interrupt flag, then emits an executed event naming its prompt.
class ConcurrentBackend : public FakeBackend {
 public:
  using FakeBackend::FakeBackend;

  bool runs_concurrently(const QueueItem&) override { return true; }
  int max_concurrent_prompts() override { return 2; }

  Status execute(const QueueItem& item, const EmitFn& emit, std::atomic<bool>& interrupt, json& outputs) override {
    const std::string& pid = item.prompt_id;
    emit("execution_start", {{"prompt_id", pid}});
    emit("executing", {{"node", "3"}, {"display_node", "3"}, {"prompt_id", pid}});
    {
      std::unique_lock lock(mutex_);
      ++running_;
      cv_.notify_all();
      const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!released_ && !interrupt.load() && std::chrono::steady_clock::now() < end)
        cv_.wait_for(lock, std::chrono::milliseconds(5));
    }
    if (interrupt.load()) return Status::cancelled("interrupted");
    const json ui = {{"images", json::array({{{"filename", pid + ".png"}, {"subfolder", ""}, {"type", "output"}}})}};
    emit("executing", {{"node", "9"}, {"display_node", "9"}, {"prompt_id", pid}});
    emit("executed", {{"node", "9"}, {"display_node", "9"}, {"output", ui}, {"prompt_id", pid}});
    outputs["9"] = ui;
    return Status::ok();
  }

  // Waits until `n` prompts are inside execute at once (10 s guard).
  bool wait_running(int n) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return running_ >= n; });
  }
  void release() {
    std::lock_guard lock(mutex_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int running_ = 0;
  bool released_ = false;
};

// ServerFixture's server, with ConcurrentBackend.
class ConcurrentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    root_ = std::filesystem::temp_directory_path() /
            ("netdist_concurrent_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(root_);
    for (const char* d : {"output", "input", "temp"}) std::filesystem::create_directories(root_ / d);
    ServerOptions options;
    options.port = 0;
    options.threads = 4;
    options.output_dir = (root_ / "output").string();
    options.input_dir = (root_ / "input").string();
    options.temp_dir = (root_ / "temp").string();
    backend_ = std::make_unique<ConcurrentBackend>(options.output_dir);
    server_ = std::make_unique<HttpServer>(options, *backend_);
    const Status started = server_->start();
    ASSERT_TRUE(started.is_ok()) << started.to_string();
    port_ = server_->port();
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(root_);
  }

  ConcurrentBackend& backend() { return *backend_; }
  HttpReply get(const std::string& target) { return http_call(port_, "GET", target); }
  HttpReply post(const std::string& target, const std::string& body) { return http_call(port_, "POST", target, body); }
  bool open_ws(TestWsClient& ws, const std::string& target) {
    if (!ws.connect(port_, target)) return false;
    const auto status = ws.read();
    return status && status->json().value("type", "") == "status";
  }
  std::string submit(int seed, const std::string& client_id = "") {
    const json prompt = {
        {"4", {{"class_type", "FakeLoader"}, {"inputs", {{"ckpt_name", "model.safetensors"}}}}},
        {"3", {{"class_type", "FakeSampler"}, {"inputs", {{"seed", seed}, {"steps", 3}, {"model", json::array({"4", 0})}}}}},
        {"9", {{"class_type", "SaveImage"}, {"inputs", {{"images", json::array({"3", 0})}, {"filename_prefix", "ComfyUI"}}}}}};
    json body = {{"prompt", prompt}};
    if (!client_id.empty()) body["client_id"] = client_id;
    const HttpReply r = post("/prompt", body.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    const json j = r.json();
    return j.is_object() && j.contains("prompt_id") ? j["prompt_id"].get<std::string>() : "";
  }
  json wait_history(const std::string& prompt_id) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < end) {
      const json h = get("/history/" + prompt_id).json();
      if (h.is_object() && h.contains(prompt_id)) return h[prompt_id];
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ADD_FAILURE() << "prompt " << prompt_id << " never reached history";
    return nullptr;
  }

  std::filesystem::path root_;
  std::unique_ptr<ConcurrentBackend> backend_;
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
};

// The prompt_ids named by the messages a client received.
std::set<std::string> prompt_ids(const std::vector<Message>& seen) {
  std::set<std::string> ids;
  for (const auto& m : seen) {
    if (m.binary) continue;
    const json data = m.json()["data"];
    if (data.is_object() && data.contains("prompt_id")) ids.insert(data["prompt_id"].get<std::string>());
  }
  return ids;
}

TEST_F(ConcurrentTest, EventsReachTheirOwnClientAndInterruptByIdStopsOnlyThatPrompt) {
  TestWsClient a, b;
  ASSERT_TRUE(open_ws(a, "/ws?clientId=a"));
  ASSERT_TRUE(open_ws(b, "/ws?clientId=b"));
  const std::string pa = submit(1, "a");
  const std::string pb = submit(2, "b");
  ASSERT_TRUE(backend().wait_running(2)) << "the two prompts did not run at once";
  const json queue = get("/queue").json();
  EXPECT_EQ(queue["queue_running"].size(), 2u) << queue.dump();

  EXPECT_EQ(post("/interrupt", json({{"prompt_id", pb}}).dump()).status, 200);
  std::vector<Message> seen_b;
  ASSERT_TRUE(b.read_until("execution_interrupted", pb, seen_b));
  backend().release();
  std::vector<Message> seen_a;
  ASSERT_TRUE(a.read_until("executed", pa, seen_a));
  ASSERT_TRUE(a.read_until("executing", pa, seen_a));  // executing {node: null}
  EXPECT_TRUE(seen_a.back().json()["data"]["node"].is_null());

  EXPECT_EQ(prompt_ids(seen_a), std::set<std::string>({pa}));
  EXPECT_EQ(prompt_ids(seen_b), std::set<std::string>({pb}));
  const json ha = wait_history(pa), hb = wait_history(pb);
  EXPECT_EQ(ha["status"]["status_str"], "success");
  EXPECT_EQ(ha["outputs"]["9"]["images"][0]["filename"], pa + ".png");
  EXPECT_EQ(hb["status"]["status_str"], "error");
  EXPECT_EQ(hb["status"]["messages"].back()[0], "execution_interrupted");
  EXPECT_EQ(get("/history").json().size(), 2u) << "each prompt in history once";
}

TEST_F(ConcurrentTest, InterruptWithoutIdStopsEveryRunningPrompt) {
  const std::string p1 = submit(1);
  const std::string p2 = submit(2);
  ASSERT_TRUE(backend().wait_running(2));
  EXPECT_EQ(post("/interrupt", "").status, 200);
  EXPECT_EQ(wait_history(p1)["status"]["status_str"], "error");
  EXPECT_EQ(wait_history(p2)["status"]["status_str"], "error");
}

}  // namespace
}  // namespace netdist::server
