// The dashboard's static files (dashboard.h) and GET /metrics (metrics.h) on a real server on loopback.
#include <gtest/gtest.h>

#include <sstream>

#include "server/dashboard.h"
#include "server/metrics.h"
#include "server/server_fixture_test_util.h"

namespace netdist::server {
namespace {

using json = nlohmann::ordered_json;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kDashToken = "dash-token-0123456789";

// The value of the sample `name{labels}` (exact text before the value) in a Prometheus text body; -1 when absent.
double sample(const std::string& body, const std::string& series) {
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

class DashboardTest : public ServerFixture {};

// A stand-in coordinator: its extra routes answer GET /netdist/v1/cluster.
class DashboardClusterTest : public ServerFixture {
 protected:
  void customize(ServerOptions& o) override {
    o.extra_routes = [](const Request&, const std::string& path) -> std::optional<Response> {
      if (path == "/netdist/v1/cluster") return json_response({{"workers", json::array()}, {"queued", 0}});
      return std::nullopt;
    };
  }
};

TEST_F(DashboardClusterTest, ConfigSaysCoordinator) {
  EXPECT_EQ(get("/dashboard/config.json").json(), json({{"auth_required", false}, {"cluster", true}}));
}

class DashboardAuthTest : public ServerFixture {
 protected:
  void customize(ServerOptions& o) override {
    o.auth_token = kDashToken;
    o.extra_metrics = [] { return std::string("# TYPE netdist_test_extra gauge\nnetdist_test_extra 7\n"); };
  }
};

TEST_F(DashboardTest, ServesTheEmbeddedFiles) {
  const HttpReply index = get("/");
  ASSERT_EQ(index.status, 200);
  EXPECT_EQ(index.headers.at("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(index.body.find("/dashboard/app.js"), std::string::npos);
  EXPECT_NE(index.headers.at("content-security-policy").find("default-src 'self'"), std::string::npos);
  for (const char* file : {"app.js", "api.js", "workflow.js", "style.css"}) {
    const HttpReply r = get(std::string("/dashboard/") + file);
    EXPECT_EQ(r.status, 200) << file;
    EXPECT_GT(r.body.size(), 100u) << file;
  }
  EXPECT_EQ(get("/dashboard/app.js").headers.at("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(get("/api/dashboard/style.css").headers.at("content-type"), "text/css; charset=utf-8");
  EXPECT_EQ(get("/dashboard/config.json").json(), json({{"auth_required", false}, {"cluster", false}}));
  const HttpReply missing = get("/dashboard/nope.js");
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.body.find("nope.js"), std::string::npos);
  EXPECT_EQ(get("/dashboard/../CMakeLists.txt").status, 404);
  EXPECT_EQ(post("/", "{}").status, 404);  // only GET serves files
}

TEST_F(DashboardAuthTest, StaticFilesArePublicEverythingElseNeedsTheToken) {
  EXPECT_EQ(get("/").status, 200);
  EXPECT_EQ(get("/dashboard/app.js").status, 200);
  EXPECT_EQ(get("/dashboard/config.json").json(), json({{"auth_required", true}, {"cluster", false}}));
  EXPECT_EQ(get("/metrics").status, 401);
  EXPECT_EQ(get("/queue").status, 401);
  EXPECT_EQ(http_call(port_, "GET", "/metrics", "", {{"Authorization", "Bearer wrong"}}).status, 401);
  const HttpReply m = http_call(port_, "GET", "/metrics", "", {{"Authorization", std::string("Bearer ") + kDashToken}});
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(sample(m.body, "netdist_test_extra"), 7);
  EXPECT_EQ(get(std::string("/metrics?token=") + kDashToken).status, 200);
  EXPECT_EQ(http_call(port_, "POST", std::string("/metrics?token=") + kDashToken, "").status, 405);
}

TEST_F(DashboardTest, MetricsCountPromptsStepsAndRequests) {
  const std::string before = get("/metrics").body;
  EXPECT_EQ(sample(before, "netdist_prompts_finished_total{outcome=\"success\"}"), 0);
  EXPECT_EQ(sample(before, "netdist_queue_length"), 0);
  const std::string id = submit(prompt(11));
  ASSERT_FALSE(id.empty());
  ASSERT_FALSE(wait_history(id).is_null());
  const std::string after = get("/metrics").body;
  EXPECT_EQ(sample(after, "netdist_prompts_finished_total{outcome=\"success\"}"), 1);
  EXPECT_EQ(sample(after, "netdist_prompts_finished_total{outcome=\"error\"}"), 0);
  EXPECT_EQ(sample(after, "netdist_sampler_steps_total"), 3);  // FakeSampler: 3 steps, one progress event each
  EXPECT_EQ(sample(after, "netdist_prompts{state=\"history\"}"), 1);
  EXPECT_EQ(sample(after, "netdist_http_request_duration_seconds_count{method=\"POST\",route=\"/prompt\"}"), 1);
  EXPECT_EQ(sample(after, "netdist_http_request_duration_seconds_bucket{method=\"POST\",route=\"/prompt\",le=\"+Inf\"}"), 1);
  EXPECT_GE(sample(after, "netdist_http_request_duration_seconds_count{method=\"GET\",route=\"/history\"}"), 1);
  EXPECT_GE(sample(after, "netdist_http_responses_total{code=\"200\"}"), 3);
  // Every sample line belongs to a family declared before it.
  std::istringstream in(after);
  std::string line, family;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      family = line.substr(7, line.find(' ', 7) - 7);
    } else if (!line.empty() && line[0] != '#') {
      EXPECT_EQ(line.rfind(family, 0), 0u) << line;
    }
  }
}

TEST_F(DashboardTest, UnknownPathsShareOneLabel) {
  for (int i = 0; i < 5; ++i) EXPECT_EQ(get("/no/such/route/" + std::to_string(i)).status, 404);
  const std::string m = get("/metrics").body;
  EXPECT_EQ(sample(m, "netdist_http_request_duration_seconds_count{method=\"GET\",route=\"other\"}"), 5);
  EXPECT_EQ(m.find("/no/such"), std::string::npos);
}

TEST(ServerMetrics, RouteLabels) {
  EXPECT_EQ(ServerMetrics::route_label("/"), "/");
  EXPECT_EQ(ServerMetrics::route_label("/api/history/abc"), "/history");
  EXPECT_EQ(ServerMetrics::route_label("/view"), "/view");
  EXPECT_EQ(ServerMetrics::route_label("/dashboard/app.js"), "/dashboard");
  EXPECT_EQ(ServerMetrics::route_label("/netdist/v1/models/0123"), "/netdist/v1/models");
  EXPECT_EQ(ServerMetrics::route_label("/netdist/v1/evil\"label"), "other");
  EXPECT_EQ(ServerMetrics::route_label("/historyx"), "other");
}

TEST(ServerMetrics, TextFormatHelpers) {
  EXPECT_EQ(prometheus_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(prometheus_number(3), "3");
  EXPECT_EQ(prometheus_number(0.25), "0.25");
  EXPECT_EQ(prometheus_number(1.0 / 0.0), "+Inf");
  ServerMetrics m;
  m.observe_request("GET", "/queue", 200, 0.003);
  m.observe_request("GET", "/queue", 200, 7.0);
  m.observe_request("BREW", "/queue", 400, 0.0);
  const std::string t = m.text();
  EXPECT_EQ(sample(t, "netdist_http_request_duration_seconds_bucket{method=\"GET\",route=\"/queue\",le=\"0.001\"}"), 0);
  EXPECT_EQ(sample(t, "netdist_http_request_duration_seconds_bucket{method=\"GET\",route=\"/queue\",le=\"0.005\"}"), 1);
  EXPECT_EQ(sample(t, "netdist_http_request_duration_seconds_bucket{method=\"GET\",route=\"/queue\",le=\"5\"}"), 1);
  EXPECT_EQ(sample(t, "netdist_http_request_duration_seconds_bucket{method=\"GET\",route=\"/queue\",le=\"+Inf\"}"), 2);
  EXPECT_EQ(sample(t, "netdist_http_request_duration_seconds_sum{method=\"GET\",route=\"/queue\"}"), 7.003);
  EXPECT_EQ(sample(t, "netdist_http_request_duration_seconds_count{method=\"other\",route=\"/queue\"}"), 1);
  EXPECT_EQ(sample(t, "netdist_http_responses_total{code=\"400\"}"), 1);
}

}  // namespace
}  // namespace netdist::server
