// --auth-token: every route, the WebSocket upgrade and extra routes need the bearer token (or ?token=).
#include <gtest/gtest.h>

#include "server/server_fixture_test_util.h"

namespace netdist::server {
namespace {

class AuthTest : public ServerFixture {
  void customize(ServerOptions& options) override {
    options.auth_token = "s3cret";
    options.extra_routes = [](const Request&, const std::string& path) -> std::optional<Response> {
      if (path == "/netdist/v1/ping") return json_response({{"pong", true}});
      return std::nullopt;
    };
  }
};

TEST_F(AuthTest, MissingOrWrongTokenIs401) {
  EXPECT_EQ(get("/queue").status, 401);
  EXPECT_EQ(http_call(port_, "GET", "/queue", "", {{"Authorization", "Bearer wrong"}}).status, 401);
  EXPECT_EQ(http_call(port_, "GET", "/queue", "", {{"Authorization", "Bearer s3cre"}}).status, 401);
  EXPECT_EQ(http_call(port_, "POST", "/prompt", "{}", {{"Authorization", "Basic s3cret"}}).status, 401);
  EXPECT_EQ(get("/netdist/v1/ping").status, 401);
  TestWsClient ws;
  EXPECT_FALSE(ws.connect(port_, "/ws?clientId=a"));
}

TEST_F(AuthTest, RightTokenPasses) {
  EXPECT_EQ(http_call(port_, "GET", "/queue", "", {{"Authorization", "Bearer s3cret"}}).status, 200);
  EXPECT_EQ(get("/queue?token=s3cret").status, 200);
  HttpReply r = http_call(port_, "GET", "/netdist/v1/ping", "", {{"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["pong"], true);
  TestWsClient ws;
  EXPECT_TRUE(ws.connect(port_, "/ws?clientId=a&token=s3cret"));
}

}  // namespace
}  // namespace netdist::server
