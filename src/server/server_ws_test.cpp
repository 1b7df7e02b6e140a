#include <gtest/gtest.h>

#include "server/server_fixture_test_util.h"

namespace netdist::server {
namespace {

using json = nlohmann::ordered_json;
using Message = TestWsClient::Message;

std::vector<std::string> types_of(const std::vector<Message>& messages) {
  std::vector<std::string> types;
  for (const auto& m : messages) types.push_back(m.binary ? "<binary>" : m.json()["type"].get<std::string>());
  return types;
}

class WsTest : public ServerFixture {};

TEST_F(WsTest, StatusWithSidOnConnect) {
  TestWsClient ws;
  ASSERT_TRUE(ws.connect(port_, "/ws?clientId=client-1"));
  auto m = ws.read();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data, "{\"type\": \"status\", \"data\": {\"status\": {\"exec_info\": {\"queue_remaining\": 0}}, \"sid\": \"client-1\"}}");
  TestWsClient anon;
  ASSERT_TRUE(anon.connect(port_, "/api/ws"));
  m = anon.read();
  ASSERT_TRUE(m);
  const std::string sid = m->json()["data"]["sid"];
  EXPECT_EQ(sid.size(), 32u);
  EXPECT_EQ(sid.find('-'), std::string::npos);
}

TEST_F(WsTest, MessageSequenceForOneJob) {
  TestWsClient ws;
  ASSERT_TRUE(ws.connect(port_, "/ws?clientId=seq"));
  std::vector<Message> seen;
  ASSERT_TRUE(ws.read_until("status", "", seen));
  const std::string id = submit(prompt(42), "seq");
  ASSERT_TRUE(ws.read_until("executing", id, seen));  // first node
  while (true) {
    ASSERT_TRUE(ws.read_until("executing", id, seen));
    if (seen.back().json()["data"]["node"].is_null()) break;
  }
  std::vector<std::string> types = types_of(seen);
  const std::vector<std::string> expected = {
      "status",   "status",   "status",   "execution_start", "execution_cached", "executing", "executing", "progress",
      "progress", "progress", "executing", "executed",       "execution_success", "status",  "executing"};
  EXPECT_EQ(types, expected);
  const json start = seen[3].json()["data"];
  EXPECT_EQ(start["prompt_id"], id);
  EXPECT_TRUE(start["timestamp"].is_number_integer());
  EXPECT_EQ(seen[4].json()["data"]["nodes"], json::array());
  const json progress = seen[7].json()["data"];
  EXPECT_EQ(progress, json({{"value", 1}, {"max", 3}, {"prompt_id", id}, {"node", "3"}}));
  const json executed = seen[11].json()["data"];
  EXPECT_EQ(executed["node"], "9");
  EXPECT_EQ(executed["output"]["images"][0]["type"], "output");
  EXPECT_EQ(seen[13].json()["data"]["status"]["exec_info"]["queue_remaining"], 0);
  EXPECT_FALSE(seen[13].json()["data"].contains("sid"));
  EXPECT_EQ(seen.back().data, "{\"type\": \"executing\", \"data\": {\"node\": null, \"prompt_id\": \"" + id + "\"}}");
  // History is written before executing {node: null} is sent.
  const json h = get("/history/" + id).json()[id];
  EXPECT_EQ(h["status"]["status_str"], "success");
  EXPECT_EQ(h["status"]["completed"], true);
  std::vector<std::string> message_types;
  for (const auto& m : h["status"]["messages"]) message_types.push_back(m[0]);
  EXPECT_EQ(message_types, (std::vector<std::string>{"execution_start", "execution_cached", "execution_success"}));
  EXPECT_EQ(h["prompt"][3]["client_id"], "seq");
  EXPECT_EQ(h["prompt"][2]["3"]["_meta"]["title"], "KSampler");
  EXPECT_EQ(h["meta"]["9"], json({{"node_id", "9"}, {"display_node", "9"}, {"parent_node", nullptr}, {"real_node_id", "9"}}));
}

TEST_F(WsTest, ResubmissionIsCachedAndReportsOldFiles) {
  TestWsClient ws;
  ASSERT_TRUE(open_ws(ws, "/ws?clientId=again"));
  const std::string first = submit(prompt(7), "again");
  const json h1 = wait_history(first);
  const std::string second = submit(prompt(7), "again");
  std::vector<Message> seen;
  ASSERT_TRUE(ws.read_until("execution_cached", second, seen));
  EXPECT_EQ(seen.back().json()["data"]["nodes"], json::array({"4", "3", "9"}));
  ASSERT_TRUE(ws.read_until("executed", second, seen));
  EXPECT_EQ(seen.back().json()["data"]["output"], h1["outputs"]["9"]);
  const json h2 = wait_history(second);
  EXPECT_EQ(h2["outputs"], h1["outputs"]);
  EXPECT_EQ(backend_->executed_prompts.load(), 2);
  size_t files = 0;
  for (auto& e : std::filesystem::directory_iterator(root_ / "output")) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);
}

TEST_F(WsTest, InterruptEndsPromptInHistoryAsError) {
  TestWsClient ws;
  ASSERT_TRUE(open_ws(ws, "/ws?clientId=intr"));
  const std::string id = submit(prompt(8, {{"wait_for_interrupt", true}}), "intr");
  std::vector<Message> seen;
  ASSERT_TRUE(ws.read_until("executing", id, seen));
  ASSERT_TRUE(ws.read_until("executing", id, seen));  // the sampler
  EXPECT_EQ(post("/interrupt", "").status, 200);
  ASSERT_TRUE(ws.read_until("execution_interrupted", id, seen));
  EXPECT_EQ(seen.back().json()["data"]["node_id"], "3");
  const json h = wait_history(id);
  EXPECT_EQ(h["status"]["status_str"], "error");
  EXPECT_EQ(h["status"]["completed"], false);
  EXPECT_EQ(h["status"]["messages"].back()[0], "execution_interrupted");
  const std::string next = submit(prompt(9), "intr");
  EXPECT_EQ(wait_history(next)["status"]["status_str"], "success");
}

// Exact sequence of an identical resubmission: everything cached, SaveImage's old output re-sent, no node runs.
TEST_F(WsTest, ResubmissionSequenceIsAllCached) {
  const std::string first = submit(prompt(21));
  const json h1 = wait_history(first);
  TestWsClient ws;
  ASSERT_TRUE(open_ws(ws, "/ws?clientId=resub"));
  const std::string id = submit(prompt(21), "resub");
  std::vector<Message> seen;
  do {
    ASSERT_TRUE(ws.read_until("executing", id, seen));
  } while (!seen.back().json()["data"]["node"].is_null());
  EXPECT_EQ(types_of(seen), (std::vector<std::string>{"status", "status", "execution_start", "execution_cached", "executed",
                                                      "execution_success", "status", "executing"}));
  EXPECT_EQ(seen[3].json()["data"]["nodes"], json::array({"4", "3", "9"}));
  EXPECT_EQ(seen[4].json()["data"]["output"], h1["outputs"]["9"]);
  EXPECT_EQ(seen[4].json()["data"]["prompt_id"], id);
  const json h2 = get("/history/" + id).json()[id];
  EXPECT_EQ(h2["status"]["status_str"], "success");
  EXPECT_EQ(h2["status"]["messages"][1][1]["nodes"], json::array({"4", "3", "9"}));
}

// Exact sequence of an interrupted job: no execution_success; history written before executing {node: null}.
TEST_F(WsTest, InterruptedSequence) {
  TestWsClient ws;
  ASSERT_TRUE(open_ws(ws, "/ws?clientId=isq"));
  const std::string id = submit(prompt(22, {{"wait_for_interrupt", true}}), "isq");
  std::vector<Message> seen;
  ASSERT_TRUE(ws.read_until("executing", id, seen));
  ASSERT_TRUE(ws.read_until("executing", id, seen));
  ASSERT_EQ(seen.back().json()["data"]["node"], "3");
  EXPECT_EQ(post("/interrupt", json({{"prompt_id", id}}).dump()).status, 200);
  do {
    ASSERT_TRUE(ws.read_until("executing", id, seen));
  } while (!seen.back().json()["data"]["node"].is_null());
  EXPECT_EQ(types_of(seen), (std::vector<std::string>{"status", "status", "execution_start", "execution_cached", "executing",
                                                      "executing", "execution_interrupted", "status", "executing"}));
  const json interrupted = seen[6].json()["data"];
  EXPECT_EQ(interrupted["prompt_id"], id);
  EXPECT_EQ(interrupted["node_id"], "3");
  EXPECT_EQ(interrupted["node_type"], "FakeSampler");
  EXPECT_EQ(interrupted["executed"], json::array({"4"}));
  EXPECT_TRUE(interrupted["timestamp"].is_number_integer());
  const json h = get("/history/" + id).json()[id];
  EXPECT_EQ(h["status"]["status_str"], "error");
  EXPECT_EQ(h["status"]["messages"].back()[0], "execution_interrupted");
}

// An invalid prompt gets ComfyUI's 400 body and sends nothing on the socket: the next message is the status
// of the next valid prompt.
TEST_F(WsTest, InvalidPromptIs400AndNeverQueued) {
  TestWsClient ws;
  ASSERT_TRUE(open_ws(ws, "/ws?clientId=inv"));
  json bad = prompt(23);
  bad["4"]["inputs"]["ckpt_name"] = "nope.safetensors";
  const HttpReply r = post("/prompt", json({{"prompt", bad}, {"client_id", "inv"}}).dump());
  ASSERT_EQ(r.status, 400);
  EXPECT_EQ(r.headers.at("content-type"), "application/json; charset=utf-8");
  EXPECT_EQ(r.body,
            "{\"error\": {\"type\": \"prompt_outputs_failed_validation\", \"message\": \"Prompt outputs failed validation\", "
            "\"details\": \"Value not in list: ckpt_name: \\\"nope.safetensors\\\" not in ['model.safetensors']\", "
            "\"extra_info\": {}}, \"node_errors\": {\"4\": {\"errors\": [{\"type\": \"value_not_in_list\", "
            "\"message\": \"Value not in list\", \"details\": \"ckpt_name: \\\"nope.safetensors\\\" not in "
            "['model.safetensors']\", \"extra_info\": {\"input_name\": \"ckpt_name\", \"received_value\": "
            "\"nope.safetensors\"}}], \"dependent_outputs\": [\"9\"], \"class_type\": \"FakeLoader\"}}}");
  const std::string id = submit(prompt(24), "inv");
  auto next = ws.read();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->json()["type"], "status");
  EXPECT_EQ(next->json()["data"]["status"]["exec_info"]["queue_remaining"], 1);
  wait_history(id);
  EXPECT_EQ(get("/history").json().size(), 1u);
  EXPECT_EQ(backend_->executed_prompts.load(), 1);
}

TEST_F(WsTest, BackendFailureStillLandsInHistory) {
  TestWsClient ws;
  ASSERT_TRUE(open_ws(ws, "/ws?clientId=fail"));
  const std::string id = submit(prompt(11, {{"fail", true}}), "fail");
  std::vector<Message> seen;
  ASSERT_TRUE(ws.read_until("execution_error", id, seen));
  const json err = seen.back().json()["data"];
  EXPECT_NE(err["exception_message"].get<std::string>().find("failed on purpose"), std::string::npos);
  for (const char* key : {"node_id", "node_type", "executed", "exception_type", "traceback", "current_inputs", "current_outputs", "timestamp"})
    EXPECT_TRUE(err.contains(key)) << key;
  const json h = wait_history(id);
  EXPECT_EQ(h["status"]["status_str"], "error");
  EXPECT_EQ(h["status"]["messages"].back()[0], "execution_error");
  ASSERT_TRUE(ws.read_until("executing", id, seen));
}

TEST_F(WsTest, EventsGoOnlyToTheirClient) {
  TestWsClient mine, other, anon_watcher;
  ASSERT_TRUE(open_ws(mine, "/ws?clientId=mine"));
  ASSERT_TRUE(open_ws(other, "/ws?clientId=other"));
  const std::string id = submit(prompt(12), "mine");
  std::vector<Message> mine_seen, other_seen;
  ASSERT_TRUE(mine.read_until("executing", id, mine_seen));
  wait_history(id);
  // "other" sees only status broadcasts; the prompt with no client_id sends progress to everyone.
  const std::string no_client = submit(prompt(13));
  wait_history(no_client);
  const std::string marker = submit(prompt(14), "other");
  ASSERT_TRUE(other.read_until("execution_success", marker, other_seen));
  for (const auto& m : other_seen) {
    const json j = m.json();
    if (j["type"] == "status") continue;
    EXPECT_NE(j["data"]["prompt_id"], id) << m.data;
    if (j["data"]["prompt_id"] == no_client) {
      EXPECT_EQ(j["type"], "progress") << m.data;
    }
  }
}

TEST_F(WsTest, PreviewFramesAndFeatureFlags) {
  TestWsClient ws;
  ASSERT_TRUE(open_ws(ws, "/ws?clientId=pv"));
  ASSERT_TRUE(ws.send_text("{\"type\": \"feature_flags\", \"data\": {\"supports_preview_metadata\": true}}"));
  std::vector<Message> seen;
  ASSERT_TRUE(ws.read_until("feature_flags", "", seen));
  EXPECT_EQ(seen.back().json()["data"]["max_upload_size"], 104857600.0);
  const std::string id = submit(prompt(15, {{"preview_bytes", 5}}), "pv");
  ASSERT_TRUE(ws.read_until("execution_success", id, seen));
  int previews = 0;
  for (const auto& m : seen) {
    if (!m.binary) continue;
    ++previews;
    ASSERT_EQ(m.data.size(), 13u);
    EXPECT_EQ(m.data.substr(0, 8), std::string("\0\0\0\1\0\0\0\1", 8));
  }
  EXPECT_EQ(previews, 3);
  EXPECT_EQ(encode_preview_frame(2, "ab"), std::string("\0\0\0\1\0\0\0\2ab", 10));
}

// A backend's plan (backend.h kPlanEvent) lands in the history entry as "netdist": {"plan"} and reaches no
// WebSocket client; an entry without one has no "netdist" member.
TEST_F(WsTest, PlanEventGoesToHistoryOnly) {
  TestWsClient ws;
  ASSERT_TRUE(open_ws(ws, "/ws?clientId=plan"));
  const json plan = {{"mode", "cfg"}, {"workers", json::array({"http://a", "http://b"})}, {"predicted_s", 1.5}};
  const std::string id = submit(prompt(17, {{"plan", plan}}), "plan");
  std::vector<Message> seen;
  ASSERT_TRUE(ws.read_until("execution_success", id, seen));
  for (const auto& m : seen) {
    if (!m.binary) {
      EXPECT_EQ(m.data.find(kPlanEvent), std::string::npos) << m.data;
    }
  }
  const json h = wait_history(id);
  EXPECT_EQ(h["netdist"], json({{"plan", plan}}));
  for (const auto& m : h["status"]["messages"]) {
    EXPECT_NE(m[0], kPlanEvent);
  }
  const std::string plain = submit(prompt(18), "plan");
  EXPECT_FALSE(wait_history(plain).contains("netdist"));
}

// Per-node timings (backend.h kNodesEvent) are appended to the entry's "netdist": {"nodes"}, beside a plan.
TEST_F(WsTest, NodeTimingsGoToHistoryOnly) {
  const json nodes =
      json::array({{{"node", "2"}, {"class_type", "FakeSampler"}, {"seconds", 0.25}, {"worker", "local"}}});
  const json plan = {{"mode", "whole"}, {"workers", json::array({"http://a"})}, {"predicted_s", 1.0}};
  const std::string id = submit(prompt(19, {{"plan", plan}, {"node_timings", {{"list", nodes}}}}), "nodes");
  const json h = wait_history(id);
  EXPECT_EQ(h["netdist"], json({{"plan", plan}, {"nodes", nodes}}));
  for (const auto& m : h["status"]["messages"]) {
    EXPECT_NE(m[0], kNodesEvent);
  }
}

TEST_F(WsTest, ReconnectWithSameClientIdKeepsNewSocket) {
  TestWsClient first, second;
  ASSERT_TRUE(first.connect(port_, "/ws?clientId=dup"));
  ASSERT_TRUE(first.read());  // registered before the second socket
  ASSERT_TRUE(second.connect(port_, "/ws?clientId=dup"));
  std::vector<Message> seen;
  ASSERT_TRUE(second.read_until("status", "", seen));
  first.close();
  const std::string id = submit(prompt(16), "dup");
  ASSERT_TRUE(second.read_until("execution_success", id, seen));
}

class WsSlowReaderTest : public ServerFixture {
  void customize(ServerOptions& o) override { o.ws_max_buffered_bytes = 1 << 20; }
};

TEST_F(WsSlowReaderTest, ClientThatNeverReadsIsDroppedWithoutBlockingOthers) {
  TestWsClient slow;
  ASSERT_TRUE(slow.connect(port_, "/ws?clientId=slow", 4096));
  ASSERT_TRUE(slow.read());  // the connect-time status: registered; it reads nothing after this
  TestWsClient fast;
  ASSERT_TRUE(open_ws(fast, "/ws?clientId=fast"));
  // 200 previews of 256 KiB each to "slow": far more than its socket buffers plus the 1 MiB bound.
  const std::string flood = submit(prompt(17, {{"steps", 200}, {"preview_bytes", 256 * 1024}}), "slow");
  const std::string id = submit(prompt(18), "fast");
  std::vector<Message> seen;
  ASSERT_TRUE(fast.read_until("executing", id, seen));
  while (!seen.back().json()["data"]["node"].is_null()) ASSERT_TRUE(fast.read_until("executing", id, seen));
  EXPECT_EQ(wait_history(flood)["status"]["status_str"], "success");
  EXPECT_GE(server_->state().hub().dropped(), 1u);
}

TEST_F(WsTest, ManyConnectionsAndHundredConcurrentPosts) {
  std::vector<std::unique_ptr<TestWsClient>> sockets;
  for (int i = 0; i < 50; ++i) {
    sockets.push_back(std::make_unique<TestWsClient>());
    ASSERT_TRUE(sockets.back()->connect(port_, "/ws?clientId=c" + std::to_string(i)));
    auto m = sockets.back()->read();
    ASSERT_TRUE(m);
    EXPECT_EQ(m->json()["data"]["sid"], "c" + std::to_string(i));
  }
  std::vector<std::string> ids(100);
  std::vector<std::thread> threads;
  for (int i = 0; i < 100; ++i) {
    threads.emplace_back([&, i] {
      const HttpReply r = post("/prompt", json({{"prompt", prompt(1000 + i)}, {"client_id", "c" + std::to_string(i % 50)}}).dump());
      if (r.status == 200) ids[i] = r.json()["prompt_id"];
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& id : ids) ASSERT_FALSE(id.empty());
  for (const auto& id : ids) EXPECT_EQ(wait_history(id)["status"]["status_str"], "success");
  EXPECT_EQ(get("/history").json().size(), 100u);
  EXPECT_EQ(get("/prompt").json()["exec_info"]["queue_remaining"], 0);
}

}  // namespace
}  // namespace netdist::server
