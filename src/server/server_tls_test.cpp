// HTTPS and WSS: a server with --tls-cert/--tls-key (a throwaway CA from tls_test_util.h) answers HTTPS
// requests, keeps requiring the bearer token, answers plain HTTP on its port with a 400 naming the problem
// and keeps serving, carries the WebSocket over TLS, and refuses bad certificate/key files at startup with
// a message naming the file.
#include <gtest/gtest.h>

#include <fstream>

#include "server/server_fixture_test_util.h"
#include "server/tls_test_util.h"

namespace netdist::server {
namespace {

using json = nlohmann::ordered_json;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kToken = "tls-test-token-0123456789";

class TlsServerTest : public ServerFixture {
 protected:
  void customize(ServerOptions& o) override {
    pki_ = make_test_pki((root_ / "pki").string());
    o.tls_cert_file = pki_.server_cert;
    o.tls_key_file = pki_.server_key;
    o.auth_token = kToken;
  }
  static Headers bearer() { return {{"Authorization", std::string("Bearer ") + kToken}}; }
  HttpReply https(const std::string& method, const std::string& target, const std::string& body = "",
                  const Headers& headers = bearer(), std::string* error = nullptr) {
    return https_call(port_, pki_.ca_cert, method, target, body, headers, error);
  }

  TestPki pki_;
};

TEST_F(TlsServerTest, HttpsRequestSucceedsAndStillNeedsTheToken) {
  std::string error;
  const HttpReply ok = https("GET", "/system_stats", "", bearer(), &error);
  ASSERT_EQ(ok.status, 200) << error;
  EXPECT_TRUE(ok.json()["system"].is_object()) << ok.body;
  EXPECT_EQ(https("GET", "/system_stats", "", {}).status, 401) << "TLS does not replace the token";
}

TEST_F(TlsServerTest, PlainHttpOnTheTlsPortIs400AndTheServerKeepsServing) {
  const HttpReply plain = http_call(port_, "GET", "/system_stats", "", bearer());
  EXPECT_EQ(plain.status, 400);
  EXPECT_EQ(plain.json()["error"].value("type", ""), "https_required") << plain.body;
  EXPECT_NE(plain.body.find("https://"), std::string::npos) << plain.body;
  // Bytes that are neither TLS nor HTTP, and a client that vanishes mid-request: the connection closes.
  EXPECT_EQ(raw_call(port_, "\x01\x02garbage\r\n\r\n").find("200 OK"), std::string::npos);
  EXPECT_TRUE(send_and_vanish(port_, "GET / HTTP/1.1\r\n"));
  std::string error;
  EXPECT_EQ(https("GET", "/system_stats", "", bearer(), &error).status, 200) << error;
}

TEST_F(TlsServerTest, PromptOverHttpsWithEventsOverWss) {
  TestWsClient ws;
  ASSERT_TRUE(ws.connect_tls(port_, pki_.ca_cert, std::string("/ws?clientId=tls&token=") + kToken));
  auto status = ws.read();
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->json().value("type", ""), "status");
  const HttpReply r = https("POST", "/prompt", json{{"prompt", prompt(5)}, {"client_id", "tls"}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string id = r.json().value("prompt_id", "");
  std::vector<TestWsClient::Message> seen;
  EXPECT_TRUE(ws.read_until("execution_success", id, seen));
  EXPECT_FALSE(ws.connect_tls(port_, pki_.ca_cert, "/ws?clientId=notoken"))
      << "the WebSocket needs the token too";
}

TEST_F(TlsServerTest, ClientWithAnotherCaFailsVerification) {
  const TestPki other = make_test_pki((root_ / "other").string());
  std::string error;
  EXPECT_EQ(https_call(port_, other.ca_cert, "GET", "/system_stats", "", bearer(), &error).status, 0);
  EXPECT_NE(error.find("certificate verify failed"), std::string::npos) << error;
  EXPECT_EQ(https("GET", "/system_stats").status, 200) << "the server keeps serving";
}

class TlsFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("netdist_tls_files_" + std::to_string(::getpid()));
    a_ = make_test_pki((dir_ / "a").string());
    b_ = make_test_pki((dir_ / "b").string());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
  TestPki a_, b_;
};

TEST_F(TlsFilesTest, GoodPairLoadsAndNoneMeansPlain) {
  EXPECT_TRUE(check_tls_files(a_.server_cert, a_.server_key).is_ok());
  EXPECT_TRUE(check_tls_files("", "").is_ok());
}

TEST_F(TlsFilesTest, EachBadFileIsNamed) {
  const std::string missing = (dir_ / "nope.pem").string();
  Status s = check_tls_files(missing, a_.server_key);
  EXPECT_NE(s.message().find("cannot read TLS certificate file '" + missing + "'"), std::string::npos)
      << s.message();
  s = check_tls_files(a_.server_cert, missing);
  EXPECT_NE(s.message().find("cannot read TLS key file '" + missing + "'"), std::string::npos) << s.message();
  s = check_tls_files(a_.server_cert, "");
  EXPECT_NE(s.message().find("needs --tls-key"), std::string::npos) << s.message();
  s = check_tls_files("", a_.server_key);
  EXPECT_NE(s.message().find("needs --tls-cert"), std::string::npos) << s.message();
  s = check_tls_files(a_.server_cert, b_.server_key);
  EXPECT_NE(s.message().find("TLS key file '" + b_.server_key + "' does not match the certificate in '" +
                             a_.server_cert + "'"),
            std::string::npos)
      << s.message();
  const std::string garbage = (dir_ / "garbage.pem").string();
  std::ofstream(garbage) << "not a certificate\n";
  s = check_tls_files(garbage, a_.server_key);
  EXPECT_NE(s.message().find("TLS certificate file '" + garbage + "' holds no PEM certificate"),
            std::string::npos)
      << s.message();
  s = check_tls_files(a_.server_cert, garbage);
  EXPECT_NE(s.message().find("TLS key file '" + garbage + "' holds no unencrypted PEM private key"),
            std::string::npos)
      << s.message();
  s = check_tls_files(a_.server_cert, a_.server_cert);  // the certificate given as the key
  EXPECT_NE(s.message().find("TLS key file '" + a_.server_cert + "'"), std::string::npos) << s.message();
}

TEST_F(TlsFilesTest, ServerStartRefusesAMismatchedKey) {
  ServerOptions o;
  o.port = 0;
  o.tls_cert_file = a_.server_cert;
  o.tls_key_file = b_.server_key;
  FakeBackend backend((dir_ / "out").string());
  HttpServer server(o, backend);
  const Status s = server.start();
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("does not match"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace netdist::server
