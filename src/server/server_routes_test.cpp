#include <gtest/gtest.h>

#include <fstream>

#include "server/server_fixture_test_util.h"

namespace netdist::server {
namespace {

using json = nlohmann::ordered_json;

class RouteTest : public ServerFixture {};

TEST_F(RouteTest, PostPromptReplyShapeWhateverTheContentType) {
  for (const char* content_type : {"", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "application/json"}) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (*content_type) headers.emplace_back("Content-Type", content_type);
    const HttpReply r = post("/prompt", json({{"prompt", prompt(1)}, {"client_id", "abc"}}).dump(), headers);
    ASSERT_EQ(r.status, 200) << content_type << ": " << r.body;
    EXPECT_EQ(r.headers.at("content-type"), "application/json; charset=utf-8");
    const json j = r.json();
    std::vector<std::string> keys;
    for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
    EXPECT_EQ(keys, (std::vector<std::string>{"prompt_id", "number", "node_errors"}));
    EXPECT_EQ(j["prompt_id"].get<std::string>().size(), 36u);
    EXPECT_TRUE(j["number"].is_number_integer());
    EXPECT_EQ(j["node_errors"], json::object());
    EXPECT_NE(r.body.find("\", \"number\": "), std::string::npos) << "Python separators: " << r.body;
  }
}

TEST_F(RouteTest, PromptIdNumberAndFrontHonoured) {
  HttpReply r = post("/prompt", json({{"prompt", prompt(2)}, {"prompt_id", "my-id-1"}}).dump());
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["prompt_id"], "my-id-1");
  r = post("/prompt", json({{"prompt", prompt(3)}, {"number", 7}}).dump());
  EXPECT_NE(r.body.find("\"number\": 7.0"), std::string::npos) << r.body;
  r = post("/prompt", json({{"prompt", prompt(4)}, {"front", true}}).dump());
  EXPECT_LE(r.json()["number"].get<int>(), 0);
  const json h = wait_history("my-id-1");
  EXPECT_EQ(h["prompt"][1], "my-id-1");
}

TEST_F(RouteTest, InvalidPromptGets400WithComfyErrorBody) {
  json bad = prompt(1);
  bad["4"]["inputs"]["ckpt_name"] = "x.safetensors";
  HttpReply r = post("/prompt", json({{"prompt", bad}}).dump());
  ASSERT_EQ(r.status, 400);
  json j = r.json();
  EXPECT_EQ(j["error"]["type"], "prompt_outputs_failed_validation");
  EXPECT_EQ(j["node_errors"]["4"]["errors"][0]["type"], "value_not_in_list");
  EXPECT_EQ(j["node_errors"]["4"]["class_type"], "FakeLoader");
  EXPECT_EQ(j["node_errors"]["4"]["dependent_outputs"], json::array({"9"}));

  r = post("/prompt", json({{"prompt", {{"1", {{"class_type", "Nope"}, {"inputs", json::object()}}}}}}).dump());
  ASSERT_EQ(r.status, 400);
  EXPECT_EQ(r.json()["error"]["type"], "invalid_prompt");
  EXPECT_EQ(r.json()["error"]["details"], "Node ID '#1'");

  r = post("/prompt", json({{"client_id", "x"}}).dump());
  ASSERT_EQ(r.status, 400);
  EXPECT_EQ(r.json()["error"]["type"], "no_prompt");
  EXPECT_EQ(r.json()["node_errors"], json::object());
}

TEST_F(RouteTest, BadQueueSettingsGet400NamingTheField) {
  const std::pair<json, std::string> cases[] = {
      {{{"netdist", {{"policy", "shortest"}}}}, "unknown queue policy 'shortest' (valid: fair, "},
      {{{"netdist", {{"priority", "high"}}}}, "extra_data.netdist.priority must be an integer"},
      {{{"netdist", {{"policy", "lifo"}}}}, "only honoured when the server runs --queue-policy fair"},
  };
  for (const auto& [extra, message] : cases) {
    const HttpReply r = post("/prompt", json({{"prompt", prompt(1)}, {"extra_data", extra}}).dump());
    ASSERT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.json()["error"]["type"], "invalid_queue_settings");
    EXPECT_NE(r.json()["error"]["message"].get<std::string>().find(message), std::string::npos) << r.body;
  }
  const HttpReply ok = post("/prompt", json({{"prompt", prompt(1)}, {"extra_data", {{"netdist", {{"priority", 3}, {"policy", "fifo"}}}}}}).dump());
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST_F(RouteTest, MalformedJsonIs400WithMessage) {
  for (const char* route : {"/prompt", "/queue", "/history", "/free"}) {
    const HttpReply r = post(route, "{\"prompt\": ");
    ASSERT_EQ(r.status, 400) << route;
    const json j = r.json();
    EXPECT_EQ(j["error"]["type"], "invalid_json") << route;
    EXPECT_NE(j["error"]["message"].get<std::string>().find("not valid JSON"), std::string::npos);
  }
  EXPECT_EQ(post("/prompt", "[1, 2]").status, 400);
  EXPECT_EQ(post("/interrupt", "garbage").status, 200);
}

TEST_F(RouteTest, GetPromptQueueAndApiAliases) {
  for (const char* prefix : {"", "/api"}) {
    const HttpReply p = get(std::string(prefix) + "/prompt");
    ASSERT_EQ(p.status, 200) << prefix;
    EXPECT_TRUE(p.json()["exec_info"]["queue_remaining"].is_number_integer());
    const json q = get(std::string(prefix) + "/queue").json();
    EXPECT_TRUE(q["queue_running"].is_array());
    EXPECT_TRUE(q["queue_pending"].is_array());
    EXPECT_EQ(get(std::string(prefix) + "/object_info/Nope%20%5BX%5D").body, "{}");
    EXPECT_EQ(get(std::string(prefix) + "/history/unknown-id").body, "{}");
    EXPECT_EQ(get(std::string(prefix) + "/embeddings").body, "[]");
    EXPECT_EQ(get(std::string(prefix) + "/extensions").body, "[]");
  }
  EXPECT_EQ(get("/internal/logs").status, 404);
  EXPECT_EQ(get("/no/such/route").status, 404);
  EXPECT_EQ(get("/no/such/route").json()["error"]["type"], "not_found");
}

TEST_F(RouteTest, QueueDeleteAndClearLeavePendingEmpty) {
  json blocking = prompt(10, {{"wait_for_interrupt", true}});
  const std::string running = submit(blocking);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(submit(prompt(100 + i)));
  // Wait until the first prompt is running so the others stay pending.
  for (int i = 0; i < 5000 && get("/queue").json()["queue_running"].empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  json q = get("/queue").json();
  ASSERT_EQ(q["queue_running"].size(), 1u);
  EXPECT_EQ(q["queue_running"][0][1], running);
  ASSERT_EQ(q["queue_pending"].size(), 3u);
  EXPECT_EQ(q["queue_pending"][0].size(), 5u);
  EXPECT_EQ(q["queue_pending"][0][1], ids[0]);
  HttpReply r = post("/queue", json({{"delete", json::array({ids[1]})}}).dump());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(get("/queue").json()["queue_pending"].size(), 2u);
  post("/api/queue", json({{"clear", true}}).dump());
  EXPECT_EQ(get("/queue").json()["queue_pending"].size(), 0u);
  EXPECT_EQ(post("/interrupt", json({{"prompt_id", "someone-else"}}).dump()).status, 200);
  EXPECT_EQ(get("/prompt").json()["exec_info"]["queue_remaining"], 1);
  EXPECT_EQ(post("/interrupt", json({{"prompt_id", running}}).dump()).status, 200);
  const json h = wait_history(running);
  EXPECT_EQ(h["status"]["status_str"], "error");
  EXPECT_EQ(get("/history/" + ids[0]).body, "{}");
}

TEST_F(RouteTest, HistoryListingOffsetsAndDeletion) {
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(submit(prompt(200 + i)));
    wait_history(ids.back());
  }
  json all = get("/history").json();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all.begin().key(), ids[0]);
  json last2 = get("/history?max_items=2").json();
  ASSERT_EQ(last2.size(), 2u);
  EXPECT_EQ(last2.begin().key(), ids[2]);
  json off = get("/history?max_items=2&offset=1").json();
  ASSERT_EQ(off.size(), 2u);
  EXPECT_EQ(off.begin().key(), ids[1]);
  EXPECT_EQ(get("/history?max_items=abc").status, 400);
  EXPECT_EQ(post("/history", json({{"delete", json::array({ids[0]})}}).dump()).status, 200);
  EXPECT_EQ(get("/history").json().size(), 3u);
  post("/history", json({{"clear", true}}).dump());
  EXPECT_EQ(get("/history").body, "{}");
}

TEST_F(RouteTest, InfoRoutes) {
  json stats = get("/system_stats").json();
  EXPECT_EQ(stats["system"]["os"], "posix");
  for (const char* key : {"ram_total", "ram_free", "comfyui_version", "python_version", "pytorch_version", "embedded_python", "argv"})
    EXPECT_TRUE(stats["system"].contains(key)) << key;
  EXPECT_EQ(stats["devices"][0]["type"], "cpu");
  json info = get("/object_info").json();
  EXPECT_TRUE(info["SaveImage"]["output_node"].get<bool>());
  json one = get("/object_info/FakeLoader").json();
  EXPECT_EQ(one.size(), 1u);
  EXPECT_EQ(one["FakeLoader"]["input"]["required"]["ckpt_name"][0][0], "model.safetensors");
  const HttpReply features = get("/features");
  EXPECT_NE(features.body.find("\"max_upload_size\": 104857600.0"), std::string::npos) << features.body;
  json models = get("/models").json();
  EXPECT_EQ(models[0], "checkpoints");
  std::ofstream(root_ / "models/checkpoints/b.safetensors") << "x";
  std::ofstream(root_ / "models/checkpoints/a.ckpt") << "x";
  std::ofstream(root_ / "models/checkpoints/notes.txt") << "x";
  EXPECT_EQ(get("/models/checkpoints").json(), json::array({"a.ckpt", "b.safetensors"}));
  EXPECT_EQ(get("/models/loras").json(), json::array());
  EXPECT_EQ(get("/models/nope").status, 404);
  EXPECT_EQ(post("/free", json({{"unload_models", true}}).dump()).status, 200);
  for (int i = 0; i < 5000 && backend_->free_calls.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(backend_->free_calls.load(), 1);
}

TEST_F(RouteTest, OptionsAndOriginRule) {
  EXPECT_EQ(http_call(port_, "OPTIONS", "/prompt").status, 200);
  const std::string host = "127.0.0.1:" + std::to_string(port_);
  EXPECT_EQ(http_call(port_, "GET", "/prompt", "", {{"Origin", "http://evil.example.com"}}).status, 403);
  EXPECT_EQ(http_call(port_, "POST", "/prompt", "{}", {{"Origin", "http://evil.example.com"}}).status, 403);
  EXPECT_EQ(http_call(port_, "GET", "/prompt", "", {{"Origin", "http://" + host}}).status, 200);
  EXPECT_EQ(http_call(port_, "GET", "/prompt", "", {{"Origin", "http://127.0.0.1"}}).status, 200);
  EXPECT_EQ(http_call(port_, "GET", "/prompt", "", {{"Host", "example.com:1"}, {"Origin", "http://other"}}).status, 200);
}

class SmallBodyRouteTest : public ServerFixture {
  void customize(ServerOptions& o) override { o.max_body_bytes = 1024; }
};

TEST_F(SmallBodyRouteTest, OversizedBodyIs413NamingTheLimit) {
  const HttpReply r = post("/prompt", std::string(4096, ' '));
  ASSERT_EQ(r.status, 413);
  EXPECT_EQ(r.json()["error"]["type"], "request_too_large");
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("1024 bytes"), std::string::npos);
  const std::string chunked = raw_call(port_,
                                       "POST /prompt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                       "800\r\n" + std::string(2048, ' ') + "\r\n0\r\n\r\n");
  EXPECT_EQ(chunked.rfind("HTTP/1.1 413", 0), 0u) << chunked.substr(0, 100);
  EXPECT_EQ(post("/prompt", json({{"prompt", prompt(1)}}).dump()).status, 200);
}

class CorsRouteTest : public ServerFixture {
  void customize(ServerOptions& o) override { o.cors_origin = "*"; }
};

TEST_F(CorsRouteTest, CorsHeadersReplaceOriginRule) {
  const HttpReply r = http_call(port_, "GET", "/prompt", "", {{"Origin", "http://evil.example.com"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.at("access-control-allow-origin"), "*");
  EXPECT_EQ(r.headers.at("access-control-allow-methods"), "POST, GET, DELETE, PUT, OPTIONS");
}

}  // namespace
}  // namespace netdist::server
