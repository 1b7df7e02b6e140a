// cluster::http_call over https:// against a real TLS HttpServer on loopback (FakeBackend): success with
// the right CA, and failures that name the URL and OpenSSL's reason for a wrong CA, a certificate for
// another host, a TLS client on a plain port; plus URL parsing and CA file errors.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cluster/http_client.h"
#include "server/fake_backend_test_util.h"
#include "server/http_server.h"
#include "server/tls_test_util.h"

namespace netdist::cluster {
namespace {

namespace fs = std::filesystem;

// A TLS server on 127.0.0.1 whose certificate names `names`.
class TlsClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("netdist_http_client_tls_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    pki_ = server::make_test_pki((dir_ / "pki").string());
    localhost_only_ = server::make_test_pki((dir_ / "localhost").string(), {"localhost"});
    other_ = server::make_test_pki((dir_ / "other").string());
  }
  void TearDown() override {
    servers_.clear();
    fs::remove_all(dir_);
  }
  // Starts a server (TLS when cert is non-empty) and returns its URL.
  std::string start(const server::TestPki* pki) {
    server::ServerOptions o;
    o.port = 0;
    o.threads = 2;
    o.output_dir = (dir_ / "out").string();
    if (pki) {
      o.tls_cert_file = pki->server_cert;
      o.tls_key_file = pki->server_key;
    }
    backends_.push_back(std::make_unique<server::FakeBackend>(o.output_dir));
    servers_.push_back(std::make_unique<server::HttpServer>(o, *backends_.back()));
    const Status s = servers_.back()->start();
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return std::string(pki ? "https" : "http") + "://127.0.0.1:" + std::to_string(servers_.back()->port());
  }
  static Result<HttpReply> get(const std::string& url, const std::string& ca) {
    HttpCall c;
    c.target = "/system_stats";
    c.timeout = std::chrono::seconds(10);
    auto tls = TlsClientContext::create(ca);
    EXPECT_TRUE(tls.is_ok()) << tls.status().to_string();
    if (tls.is_ok()) c.tls = *tls;
    return http_call(url, c);
  }

  fs::path dir_;
  server::TestPki pki_, localhost_only_, other_;
  std::vector<std::unique_ptr<server::FakeBackend>> backends_;
  std::vector<std::unique_ptr<server::HttpServer>> servers_;
};

TEST_F(TlsClientTest, VerifiedCallSucceeds) {
  const std::string url = start(&pki_);
  auto r = get(url, pki_.ca_cert);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("\"system\""), std::string::npos) << r->body;
}

TEST_F(TlsClientTest, WrongCaNamesTheUrlAndTheReason) {
  const std::string url = start(&pki_);
  auto r = get(url, other_.ca_cert);
  ASSERT_FALSE(r.is_ok());
  const std::string& m = r.status().message();
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(m.rfind(url, 0), 0u) << m;
  EXPECT_NE(m.find("TLS handshake failed: certificate verify failed"), std::string::npos) << m;
  EXPECT_NE(m.find("unable to get local issuer certificate"), std::string::npos) << m;
  EXPECT_NE(m.find(other_.ca_cert), std::string::npos) << "names what it trusted: " << m;
  // The system store does not know the throwaway CA either.
  HttpCall c;
  c.target = "/system_stats";
  auto sys = http_call(url, c);
  ASSERT_FALSE(sys.is_ok());
  EXPECT_NE(sys.status().message().find("the system CA store"), std::string::npos) << sys.status().message();
}

TEST_F(TlsClientTest, CertificateForAnotherHostIsRefused) {
  const std::string ip_url = start(&localhost_only_);  // the certificate names localhost, not 127.0.0.1
  auto r = get(ip_url, localhost_only_.ca_cert);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("IP address mismatch"), std::string::npos) << r.status().message();
  const std::string name_url = start(&pki_);  // names 127.0.0.1 and localhost
  auto ok = get("https://localhost:" + name_url.substr(name_url.rfind(':') + 1), pki_.ca_cert);
  EXPECT_TRUE(ok.is_ok()) << ok.status().to_string();
  const server::TestPki ip_only = server::make_test_pki((dir_ / "ip").string(), {"127.0.0.1"});
  const std::string ip_only_url = start(&ip_only);
  auto bad = get("https://localhost:" + ip_only_url.substr(ip_only_url.rfind(':') + 1), ip_only.ca_cert);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("hostname mismatch"), std::string::npos) << bad.status().message();
}

TEST_F(TlsClientTest, HttpsToAPlainServerAndHttpToATlsServerFailClearly) {
  const std::string plain = start(nullptr);
  auto r = get("https" + plain.substr(4), pki_.ca_cert);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("TLS handshake failed"), std::string::npos) << r.status().message();
  const std::string tls = start(&pki_);
  auto p = get("http" + tls.substr(5), pki_.ca_cert);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p->status, 400);
  EXPECT_NE(p->body.find("https_required"), std::string::npos) << p->body;
}

TEST(TlsClientContext, UnreadableOrEmptyCaFileIsNamed) {
  auto missing = TlsClientContext::create("/nonexistent/ca.pem");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("cannot read TLS CA file '/nonexistent/ca.pem'"),
            std::string::npos)
      << missing.status().message();
  const fs::path junk = fs::temp_directory_path() / ("netdist_junk_ca_" + std::to_string(getpid()) + ".pem");
  std::ofstream(junk) << "no certificate here\n";
  auto empty = TlsClientContext::create(junk.string());
  fs::remove(junk);
  ASSERT_FALSE(empty.is_ok());
  EXPECT_NE(empty.status().message().find("holds no PEM certificate"), std::string::npos)
      << empty.status().message();
}

TEST(HttpUrl, ParsesHttpAndHttps) {
  auto a = parse_http_url("https://example.org/base/");
  ASSERT_TRUE(a.is_ok());
  EXPECT_TRUE(a->tls);
  EXPECT_EQ(a->host, "example.org");
  EXPECT_EQ(a->port, "443");
  EXPECT_EQ(a->base_path, "/base");
  auto b = parse_http_url("http://[::1]:8188");
  ASSERT_TRUE(b.is_ok());
  EXPECT_FALSE(b->tls);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, "8188");
  auto c = parse_http_url("ftp://x");
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find("must start with http:// or https://"), std::string::npos);
}

}  // namespace
}  // namespace netdist::cluster
