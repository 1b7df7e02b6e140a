// Hostile and careless clients: vanishing mid-request and mid-stream, stalled and garbage connections,
// oversized and type-confused WebSocket frames, type-confused bodies, routes that throw, many sockets at once. The server must neither crash nor lose an accepted
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

// Reported crash (issue #15): a first WebSocket message whose "type" is not a string ended the process
// (nlohmann type_error on an I/O thread). Type-confused and non-object messages are ignored; the socket
// keeps receiving its events.
TEST_F(RobustnessTest, TypeConfusedWebSocketMessagesAreIgnored) {
  for (const std::string& message : {std::string(R"({"type":1})"), std::string(R"({"type":null,"data":[]})"),
                                     std::string(R"({"type":["feature_flags"]})"), std::string("[1,2]"),
                                     std::string("5"), std::string("\"feature_flags\""), std::string("null")}) {
    TestWsClient ws;
    ASSERT_TRUE(open_ws(ws, "/ws?clientId=confused"));
    EXPECT_TRUE(ws.send_text(message));
    EXPECT_TRUE(ws.send_text(R"({"type":1})"));  // later messages too
    const std::string id = submit(prompt(1000), "confused");
    std::vector<TestWsClient::Message> seen;
    EXPECT_TRUE(ws.read_until("execution_success", id, seen)) << message;
  }
  // A well-formed feature_flags message still gets its answer.
  TestWsClient ws;
  ASSERT_TRUE(open_ws(ws, "/ws?clientId=flags"));
  EXPECT_TRUE(ws.send_text(R"({"type":"feature_flags","data":{"supports_preview_metadata":true}})"));
  const auto reply = ws.read();
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->json()["type"], "feature_flags");
}

// Reported crash (issue #15): /upload/mask with original_ref fields that are not strings. Each is a 400
// naming the field; nothing is written; the server keeps serving.
TEST_F(RobustnessTest, UploadMaskWithTypeConfusedOriginalRefIs400) {
  const io::Image8 image{4, 4, 3, std::vector<uint8_t>(4 * 4 * 3, 100)};
  ASSERT_TRUE(io::write_file_atomic((root_ / "input" / "orig.png").string(), io::encode_png(image, {}, 1).value()).is_ok());
  const io::Image8 mask{4, 4, 4, std::vector<uint8_t>(4 * 4 * 4, 7)};
  const std::string mask_png = io::encode_png(mask, {}, 1).value();
  const std::pair<std::string, std::string> cases[] = {
      {R"({"filename": "orig.png", "type": 1})", "\"type\" must be a string"},
      {R"({"filename": "orig.png", "type": "input", "subfolder": ["a"]})", "\"subfolder\" must be a string"},
      {R"({"filename": "orig.png", "type": null})", "\"type\" must be a string"},
      {R"({"filename": 5, "type": "input"})", "original_ref must be JSON"},
      {R"({"filename": {"a": 1}})", "original_ref must be JSON"},
      {R"(["orig.png"])", "original_ref must be JSON"},
      {R"(7)", "original_ref must be JSON"}};
  for (const auto& [ref, message] : cases) {
    const std::string body = multipart_body({{"image", "m.png", mask_png}, {"type", "", "input"}, {"original_ref", "", ref}});
    const HttpReply r = post("/upload/mask", body,
                             {{"Content-Type", std::string("multipart/form-data; boundary=") + kTestBoundary}});
    EXPECT_EQ(r.status, 400) << ref << ": " << r.body;
    EXPECT_EQ(r.json()["error"]["type"], "invalid_mask") << ref;
    EXPECT_NE(r.json()["error"]["message"].get<std::string>().find(message), std::string::npos) << r.body;
    EXPECT_FALSE(std::filesystem::exists(root_ / "input" / "m.png")) << ref;
  }
  // The same upload with a well-formed reference works.
  const std::string body = multipart_body(
      {{"image", "m.png", mask_png}, {"type", "", "input"}, {"original_ref", "", R"({"filename": "orig.png", "type": "input"})"}});
  EXPECT_EQ(post("/upload/mask", body, {{"Content-Type", std::string("multipart/form-data; boundary=") + kTestBoundary}}).status,
            200);
}

// A file name cut at a NUL byte by the operating system made the duplicate-name loop of an upload run
// forever (found by routes_fuzz): such names and subfolders are a 400.
TEST_F(RobustnessTest, UploadNamesWithNulBytesAre400) {
  const std::string form = std::string("multipart/form-data; boundary=") + kTestBoundary;
  for (int round = 0; round < 2; ++round) {
    for (const char* route : {"/upload/image", "/upload/mask"}) {
      const std::string body = multipart_body({{"image", std::string("nul\0.png", 8), std::string(8, char(round))},
                                               {"original_ref", "", R"({"filename": "x.png"})"}});
      const HttpReply r = http_call(port_, "POST", route, body, {{"Content-Type", form}}, std::chrono::seconds(5));
      EXPECT_EQ(r.status, 400) << route << ": " << r.body;
      EXPECT_EQ(r.json()["error"]["type"], "invalid_path") << r.body;
    }
    const std::string body = multipart_body({{"image", "ok.png", "x"}, {"subfolder", "", std::string("a\0b", 3)}});
    EXPECT_EQ(post("/upload/image", body, {{"Content-Type", form}}).status, 400);
  }
  EXPECT_EQ(http_call(port_, "GET", "/view?filename=ok.png%00.html&type=input").status, 400);
  EXPECT_TRUE(std::filesystem::is_empty(root_ / "input"));
}

// Type-confused JSON bodies on the core routes get a 4xx (or ComfyUI's answer), never a crash or a 500.
TEST_F(RobustnessTest, TypeConfusedBodiesAreAnsweredByTheRoute) {
  const json values[] = {nullptr, true, -1, 1e308, "x", json::array({1}), json::object({{"a", 1}})};
  for (const char* route : {"/prompt", "/queue", "/history", "/interrupt", "/free"}) {
    for (const char* field : {"prompt", "number", "front", "prompt_id", "client_id", "extra_data", "clear", "delete",
                              "unload_models", "free_memory"}) {
      for (const json& v : values) {
        json body = {{"prompt", prompt(1)}};
        body[field] = v;
        const HttpReply r = post(route, body.dump());
        EXPECT_TRUE(r.status == 200 || (r.status >= 400 && r.status < 500)) << route << " " << body.dump() << ": " << r.status << " " << r.body;
      }
    }
    for (const json& v : values) EXPECT_LT(post(route, v.dump()).status, 500) << route << " " << v.dump();
  }
  EXPECT_EQ(get("/history?max_items=-9223372036854775808").status, 200);
  EXPECT_EQ(get("/prompt").status, 200);
}

class ThrowingRouteTest : public ServerFixture {
  void customize(ServerOptions& o) override {
    o.extra_routes = [](const Request&, const std::string& path) -> std::optional<Response> {
      if (path == "/throws") throw std::runtime_error("boom");
      if (path == "/throws_later") {
        Response r;
        r.deferred = []() -> Response { throw std::logic_error("later boom"); };
        return r;
      }
      if (path == "/json_type_error") return json_response(json(5).get<std::string>());
      return std::nullopt;
    };
  }
};

// The last-resort barrier: a route that throws (now or in its deferred reply) answers 500 internal_error
// naming the route, and the server keeps serving.
TEST_F(ThrowingRouteTest, ARouteThatThrowsAnswers500AndTheServerKeepsServing) {
  for (const char* target : {"/throws", "/api/throws_later", "/json_type_error"}) {
    const HttpReply r = get(target);
    EXPECT_EQ(r.status, 500) << target;
    EXPECT_EQ(r.json()["error"]["type"], "internal_error") << r.body;
    EXPECT_NE(r.body.find(target), std::string::npos) << r.body;
    EXPECT_EQ(r.json()["node_errors"], json::object());
  }
  const std::string id = submit(prompt(1100));
  EXPECT_EQ(wait_history(id)["status"]["status_str"], "success");
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
