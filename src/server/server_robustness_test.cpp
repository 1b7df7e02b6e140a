// Hostile and careless clients: vanishing mid-request and mid-stream, stalled and garbage connections,
// oversized WebSocket frames, many sockets at once. The server must neither crash nor lose an accepted
// prompt.
#include <gtest/gtest.h>

#include "server/server_fixture_test_util.h"

namespace netdist::server {
namespace {

using json = nlohmann::ordered_json;

class RobustnessTest : public ServerFixture {
 protected:
  static std::string post_bytes(const std::string& body) {
    return "POST /prompt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  // Waits until the queue is empty and returns the history.
  json drained_history() {
    for (int i = 0; i < 10000 && get("/prompt").json()["exec_info"]["queue_remaining"] != 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return get("/history").json();
  }
};

TEST_F(RobustnessTest, ClientsThatVanishAfterPostingLoseNoAcceptedPrompt) {
  constexpr int kClients = 40;
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      const std::string body =
          json({{"prompt", prompt(500 + i)}, {"prompt_id", "vanish-" + std::to_string(i)}}).dump();
      // Even clients send the whole request, then vanish before the reply; odd ones vanish halfway through
      // the body.
      const std::string bytes = post_bytes(body);
      EXPECT_TRUE(
          send_and_vanish(port_, i % 2 == 0 ? bytes : bytes.substr(0, bytes.size() - body.size() / 2)));
    });
  }
  for (auto& t : threads) t.join();
  // A prompt is accepted once its request is complete, so every even one must finish; no odd one may exist.
  for (int i = 0; i < kClients; i += 2) {
    const json h = wait_history("vanish-" + std::to_string(i));
    EXPECT_EQ(h["status"]["status_str"], "success") << i;
  }
  const json history = drained_history();
  EXPECT_EQ(history.size(), size_t(kClients / 2));
  for (int i = 1; i < kClients; i += 2) EXPECT_FALSE(history.contains("vanish-" + std::to_string(i))) << i;
}

TEST_F(RobustnessTest, StalledAndGarbageConnectionsDoNotBlockOthers) {
  // Connections that send half a header and stall stay open until the prompt has run: if they blocked the
  // server, the prompt would never reach history.
  std::vector<int> stalled;
  for (int i = 0; i < 60; ++i) {
    stalled.push_back(open_stalled(port_, "POST /prompt HTTP/1.1\r\nHost: x\r\nContent-Le"));
    ASSERT_GE(stalled.back(), 0);
  }
  const std::string id = submit(prompt(600));
  EXPECT_EQ(wait_history(id)["status"]["status_str"], "success");
  for (int fd : stalled) ::close(fd);

  for (const std::string& garbage :
       {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),  // a TLS hello
        std::string("NOT-HTTP\r\n\r\n"), std::string(70 * 1024, 'A') + "\r\n\r\n",
        std::string("GET /prompt HTTP/1.1\r\nContent-Length: -5\r\n\r\n"),
        std::string("POST /prompt HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")}) {
    const std::string reply = raw_call(port_, garbage, std::chrono::seconds(3));
    EXPECT_TRUE(reply.empty() || reply.rfind("HTTP/1.1 4", 0) == 0) << reply.substr(0, 80);
  }
  EXPECT_EQ(get("/prompt").status, 200);
}

TEST_F(RobustnessTest, WebSocketClientVanishingMidJobLeavesTheJobRunning) {
  const std::string id = [&] {
    TestWsClient ws;
    EXPECT_TRUE(open_ws(ws, "/ws?clientId=gone"));
    const std::string pid = submit(prompt(700, {{"steps", 200}, {"preview_bytes", 4096}}), "gone");
    std::vector<TestWsClient::Message> seen;
    EXPECT_TRUE(ws.read_until("progress", pid, seen));
    ws.close();  // abrupt: no close frame
    return pid;
  }();
  EXPECT_EQ(wait_history(id)["status"]["status_str"], "success");
  // The next client with the same id gets a fresh session and its events.
  TestWsClient again;
  ASSERT_TRUE(open_ws(again, "/ws?clientId=gone"));
  const std::string next = submit(prompt(701), "gone");
  std::vector<TestWsClient::Message> seen;
  EXPECT_TRUE(again.read_until("execution_success", next, seen));
}

TEST_F(RobustnessTest, OversizedAndJunkWebSocketMessagesCloseOnlyThatSocket) {
  TestWsClient junk;
  ASSERT_TRUE(open_ws(junk, "/ws?clientId=junk"));
  EXPECT_TRUE(junk.send_text("not json at all {"));
  EXPECT_TRUE(junk.send_text("{\"type\": \"feature_flags\", \"data\": 5}"));
  TestWsClient huge;
  ASSERT_TRUE(open_ws(huge, "/ws?clientId=huge"));
  huge.send_text(std::string(5 * 1024 * 1024, 'x'));  // over the 4 MiB message limit
  EXPECT_FALSE(huge.read(std::chrono::seconds(5)));   // closed by the server
  const std::string id = submit(prompt(800), "junk");
  std::vector<TestWsClient::Message> seen;
  EXPECT_TRUE(junk.read_until("execution_success", id, seen));
}

TEST_F(RobustnessTest, ThreeHundredSocketsAllReceiveBroadcastProgress) {
  constexpr int kSockets = 300;
  std::vector<std::unique_ptr<TestWsClient>> sockets;
  for (int i = 0; i < kSockets; ++i) {
    sockets.push_back(std::make_unique<TestWsClient>());
    ASSERT_TRUE(open_ws(*sockets.back(), "/ws?clientId=many" + std::to_string(i))) << i;
  }
  // No client_id: ComfyUI sends progress to every socket.
  const std::string id = submit(prompt(900, {{"steps", 4}}));
  for (int i = 0; i < kSockets; ++i) {
    std::vector<TestWsClient::Message> seen;
    int progress = 0;
    while (progress < 4) {
      ASSERT_TRUE(sockets[i]->read_until("progress", id, seen)) << "socket " << i;
      ++progress;
    }
  }
  EXPECT_EQ(wait_history(id)["status"]["status_str"], "success");
  EXPECT_EQ(server_->state().hub().dropped(), 0u);
}

class SmallUploadTest : public ServerFixture {
  void customize(ServerOptions& o) override { o.max_body_bytes = 2048; }
};

TEST_F(SmallUploadTest, UploadOverTheLimitIs413AndWritesNothing) {
  const std::string body = multipart_body({{"image", "big.png", std::string(4096, 'x')}});
  const HttpReply r = post("/upload/image", body,
                           {{"Content-Type", std::string("multipart/form-data; boundary=") + kTestBoundary}});
  ASSERT_EQ(r.status, 413);
  EXPECT_EQ(r.json()["error"]["type"], "request_too_large");
  EXPECT_TRUE(std::filesystem::is_empty(root_ / "input"));
  EXPECT_EQ(get("/prompt").status, 200);
}

}  // namespace
}  // namespace netdist::server
