#include <gtest/gtest.h>

#include "server/auth.h"
#include "server/server_fixture_test_util.h"

namespace netdist::server {
namespace {

using json = nlohmann::ordered_json;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kToken = "s3cret-token-0123456789";

class AuthTest : public ServerFixture {
 protected:
  void customize(ServerOptions& o) override {
    o.auth_token = kToken;
    o.extra_routes = [](const Request&, const std::string& path) -> std::optional<Response> {
      if (path == "/netdist/v1/ping") return json_response({{"pong", true}});
      return std::nullopt;
    };
  }
  static Headers bearer(const std::string& token = kToken) { return {{"Authorization", "Bearer " + token}}; }
  static std::string error_type(const HttpReply& r) {
    const json j = r.json();
    return j.is_object() && j.contains("error") ? j["error"].value("type", "") : "";
  }
};

TEST(TokenEquals, ComparesWholeTokens) {
  EXPECT_TRUE(token_equals("abc", "abc"));
  EXPECT_FALSE(token_equals("abc", "abd"));
  EXPECT_FALSE(token_equals("ab", "abc"));
  EXPECT_FALSE(token_equals("abcd", "abc"));
  EXPECT_FALSE(token_equals("", "abc"));
  EXPECT_TRUE(token_equals(std::string("a\0b", 3), std::string("a\0b", 3)));
  EXPECT_FALSE(token_equals(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST(CheckAuth, OffWhenTokenEmpty) {
  Request r;
  r.method = "POST";
  EXPECT_FALSE(check_auth("", r).has_value());
  EXPECT_TRUE(check_auth("t", r).has_value());
  r.method = "OPTIONS";
  EXPECT_FALSE(check_auth("t", r).has_value());
}

TEST_F(AuthTest, MissingWrongAndRightTokenOnHttp) {
  HttpReply r = get("/prompt");
  ASSERT_EQ(r.status, 401);
  EXPECT_EQ(error_type(r), "missing_token");
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("Authorization: Bearer"), std::string::npos);
  EXPECT_EQ(r.headers["www-authenticate"], "Bearer realm=\"netdist\"");
  EXPECT_EQ(r.headers["content-type"], "application/json; charset=utf-8");

  r = http_call(port_, "GET", "/prompt", "", bearer("wrong"));
  ASSERT_EQ(r.status, 401);
  EXPECT_EQ(error_type(r), "wrong_token");
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("wrong token"), std::string::npos);
  EXPECT_EQ(r.body.find(kToken), std::string::npos) << "the reply must not echo the token";

  r = http_call(port_, "GET", "/prompt", "", bearer(std::string(kToken) + "x"));
  EXPECT_EQ(r.status, 401);
  r = http_call(port_, "GET", "/prompt", "", {{"Authorization", std::string("Basic ") + kToken}});
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.json()["error"]["message"].get<std::string>().find("not 'Bearer <token>'"), std::string::npos);

  EXPECT_EQ(http_call(port_, "GET", "/prompt", "", bearer()).status, 200);
  EXPECT_EQ(http_call(port_, "GET", "/api/prompt", "", {{"Authorization", std::string("bearer  ") + kToken}}).status, 200);
  EXPECT_EQ(get(std::string("/prompt?token=") + kToken).status, 200);
  EXPECT_EQ(get("/prompt?token=nope").status, 401);
  EXPECT_EQ(error_type(get("/prompt?token=nope")), "wrong_token");
  EXPECT_EQ(http_call(port_, "OPTIONS", "/prompt").status, 200);
}

TEST_F(AuthTest, EveryRouteNeedsTheToken) {
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"GET", "/prompt"},        {"GET", "/queue"},          {"GET", "/history"},
      {"GET", "/history/x"},     {"GET", "/view?filename=a.png"}, {"GET", "/object_info"},
      {"GET", "/object_info/X"}, {"GET", "/system_stats"},   {"GET", "/features"},
      {"GET", "/embeddings"},    {"GET", "/extensions"},     {"GET", "/models"},
      {"GET", "/models/checkpoints"}, {"GET", "/no/such/route"}, {"GET", "/api/prompt"},
      {"POST", "/prompt"},       {"POST", "/queue"},         {"POST", "/history"},
      {"POST", "/interrupt"},    {"POST", "/free"},          {"POST", "/upload/image"},
      {"POST", "/upload/mask"},  {"POST", "/api/prompt"}};
  for (const auto& [method, target] : routes) {
    const HttpReply r = http_call(port_, method, target, method == "POST" ? "{}" : "");
    EXPECT_EQ(r.status, 401) << method << " " << target;
  }
}

TEST_F(AuthTest, RefusedPromptIsNeverQueued) {
  const std::string body = json({{"prompt", prompt(1)}, {"client_id", "c"}, {"prompt_id", "refused-1"}}).dump();
  EXPECT_EQ(post("/prompt", body).status, 401);
  EXPECT_EQ(post("/prompt", body, bearer("wrong")).status, 401);
  EXPECT_EQ(post("/prompt?token=wrong", body).status, 401);
  EXPECT_EQ(post("/interrupt", "{}").status, 401);
  const json queue = http_call(port_, "GET", "/queue", "", bearer()).json();
  EXPECT_EQ(queue["queue_running"].size() + queue["queue_pending"].size(), 0u);
  EXPECT_EQ(http_call(port_, "GET", "/history", "", bearer()).body, "{}");
  EXPECT_EQ(backend_->executed_prompts.load(), 0);

  const HttpReply accepted = post("/prompt", body, bearer());
  ASSERT_EQ(accepted.status, 200) << accepted.body;
  EXPECT_EQ(accepted.json()["prompt_id"], "refused-1");
}

TEST_F(AuthTest, RefusedBeforeTheBodyIsRead) {
  // Headers announce 50 MB that never come: the 401 must arrive without the body (raw_call gives up after 5 s).
  const std::string reply = raw_call(port_, "POST /prompt HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n{",
                                     std::chrono::seconds(5));
  EXPECT_EQ(reply.rfind("HTTP/1.1 401", 0), 0u) << reply.substr(0, 120);
}

TEST_F(AuthTest, WebSocketNeedsTheToken) {
  TestWsClient none;
  EXPECT_FALSE(none.connect(port_, "/ws?clientId=a"));
  TestWsClient wrong;
  EXPECT_FALSE(wrong.connect(port_, "/ws?clientId=a&token=wrong"));
  TestWsClient wrong_header;
  EXPECT_FALSE(wrong_header.connect(port_, "/ws?clientId=a", 0, bearer("wrong")));
  const std::string upgrade =
      "GET /ws?clientId=a HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  const std::string reply = raw_call(port_, upgrade);
  EXPECT_EQ(reply.rfind("HTTP/1.1 401", 0), 0u) << reply.substr(0, 120);
  EXPECT_NE(reply.find("missing_token"), std::string::npos);

  TestWsClient by_query;
  ASSERT_TRUE(by_query.connect(port_, std::string("/ws?clientId=q&token=") + kToken));
  auto m = by_query.read();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->json()["data"]["sid"], "q");
  TestWsClient by_header;
  ASSERT_TRUE(by_header.connect(port_, "/api/ws?clientId=h", 0, bearer()));
  m = by_header.read();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->json()["data"]["sid"], "h");

  // The authenticated socket receives its prompt's events.
  const HttpReply r = post("/prompt", json({{"prompt", prompt(3)}, {"client_id", "h"}}).dump(), bearer());
  ASSERT_EQ(r.status, 200);
  std::vector<TestWsClient::Message> seen;
  EXPECT_TRUE(by_header.read_until("execution_success", r.json()["prompt_id"], seen));
}

TEST_F(AuthTest, ExtraRoutesNeedTheToken) {
  EXPECT_EQ(get("/netdist/v1/ping").status, 401);
  HttpReply r = http_call(port_, "GET", "/netdist/v1/ping", "", bearer());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["pong"], true);
}

class NoAuthTest : public ServerFixture {};

TEST_F(NoAuthTest, NoTokenConfiguredIgnoresCredentials) {
  EXPECT_EQ(get("/prompt").status, 200);
  EXPECT_EQ(http_call(port_, "GET", "/prompt", "", {{"Authorization", "Bearer anything"}}).status, 200);
  EXPECT_EQ(get("/prompt?token=anything").status, 200);
}

}  // namespace
}  // namespace netdist::server
