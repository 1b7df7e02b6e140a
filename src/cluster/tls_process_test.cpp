// A cluster over TLS, real processes on loopback with a throwaway CA: a coordinator and a static
// `--workers https://` worker render a batch to the bytes a plain server renders; a `--join https://`
// worker dials in and renders; a worker that does not trust the coordinator's certificate logs the URL and
// OpenSSL's reason and never takes work; `serve` refuses bad TLS flags at startup naming the file.
#include <gtest/gtest.h>

#include "cluster/process_test_util.h"
#include "server/tls_test_util.h"

// Not in netdist::cluster: in a unity build cluster_process_test.cpp's helpers of the same names share that
// namespace's anonymous namespace.
namespace netdist::tls_process_test {
namespace {

using namespace cluster::test;  // NOLINT(google-build-using-namespace): the process-test scaffolding

constexpr const char* kToken = "tls-cluster-token";

class TlsProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = scratch("netdist_tls_process", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    pki_ = server::make_test_pki((dir_ / "pki").string());
    auto tls = cluster::TlsClientContext::create(pki_.ca_cert);
    ASSERT_TRUE(tls.is_ok()) << tls.status().to_string();
    client_ = {kToken, *tls};
  }
  void TearDown() override { fs::remove_all(dir_.parent_path()); }
  // serve/worker args with TLS on, the token and the CA.
  std::vector<std::string> args(const std::string& command, const std::string& name,
                                std::vector<std::string> extra) {
    std::vector<std::string> tls = {"--tls-cert", pki_.server_cert, "--tls-key",    pki_.server_key,
                                    "--tls-ca",   pki_.ca_cert,     "--auth-token", kToken};
    tls.insert(tls.end(), extra.begin(), extra.end());
    return process_args(command, dir_ / name, tls);
  }

  fs::path dir_;
  server::TestPki pki_;
  CallOptions client_;
};

TEST_F(TlsProcess, StaticHttpsWorkerRendersTheUnsplitBytes) {
  const auto ref = reference_images(dir_ / "ref", 4)[7];
  ASSERT_EQ(ref.size(), 4u);
  Proc w(args("worker", "w", {}), dir_ / "w.log");
  ASSERT_EQ(w.url().rfind("https://127.0.0.1:", 0), 0u) << w.url();
  Proc coord(args("serve", "c", {"--enable-distributed", "--no-local", "--workers", w.url()}),
             dir_ / "c.log");
  ASSERT_EQ(coord.url().rfind("https://", 0), 0u) << coord.url();
  ASSERT_TRUE(wait_alive(coord.url(), 1, client_)) << read_file(dir_ / "c.log");
  auto h = wait_history(coord.url(), submit(coord.url(), prompt(4), client_), client_);
  EXPECT_EQ(h["status"]["status_str"], "success");
  EXPECT_TRUE(images(h, dir_ / "c" / "out") == ref) << "TLS cluster images differ from the unsplit batch";
  EXPECT_EQ(workers_by_url(coord.url(), client_)[w.url()]["rows_done"], 4);
}

TEST_F(TlsProcess, DialInOverHttpsRenders) {
  Proc coord(args("serve", "c", {"--enable-distributed", "--no-local", "--local-workers", "0"}),
             dir_ / "c.log");
  Proc w(args("worker", "w", {"--join", coord.url()}), dir_ / "w.log");
  ASSERT_TRUE(wait_alive(coord.url(), 1, client_)) << read_file(dir_ / "w.log");
  auto h = wait_history(coord.url(), submit(coord.url(), prompt(2), client_), client_);
  EXPECT_EQ(h["status"]["status_str"], "success");
  EXPECT_EQ(images(h, dir_ / "c" / "out").size(), 2u);
  EXPECT_EQ(workers_by_url(coord.url(), client_)[w.url()]["dial_in"], true);
}

TEST_F(TlsProcess, UntrustedCoordinatorIsLoggedWithUrlAndReason) {
  const server::TestPki other = server::make_test_pki((dir_ / "other").string());
  Proc coord(args("serve", "c", {"--enable-distributed", "--no-local", "--local-workers", "0"}),
             dir_ / "c.log");
  Proc w(process_args("worker", dir_ / "w",
                      {"--join", coord.url(), "--tls-ca", other.ca_cert, "--auth-token", kToken}),
         dir_ / "w.log");
  const std::string expected = "cannot reach " + coord.url();
  std::string log;
  // The dial-in client's line is awaited itself: the model fetcher (model_fetch.h) may log the same TLS
  // failure first, when it lists the coordinator's models.
  for (int i = 0; i < 400 && log.find(expected) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    log = read_file(dir_ / "w.log");
  }
  EXPECT_NE(log.find(expected), std::string::npos) << log;
  EXPECT_NE(log.find("unable to get local issuer certificate"), std::string::npos) << log;
  EXPECT_TRUE(workers_by_url(coord.url(), client_).empty()) << "an unverified worker never joined";
}

// Startup errors before anything loads: exit status 2, the message names the problem and the file.
TEST_F(TlsProcess, BadTlsFlagsStopStartup) {
  auto run = [&](std::vector<std::string> extra, const std::string& name) {
    std::vector<std::string> a = process_args("serve", dir_ / name, extra);
    std::string cmd = std::string(NETDIST_BINARY);
    for (const auto& s : a) cmd += " '" + s + "'";
    cmd += " >/dev/null 2>" + (dir_ / (name + ".err")).string();
    const int rc = std::system(cmd.c_str());
    return std::make_pair(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_file(dir_ / (name + ".err")));
  };
  const server::TestPki other = server::make_test_pki((dir_ / "other").string());
  auto [rc1, err1] = run({"--tls-cert", pki_.server_cert}, "nokey");
  EXPECT_EQ(rc1, 2);
  EXPECT_NE(err1.find("--tls-cert " + pki_.server_cert + " needs --tls-key"), std::string::npos) << err1;
  auto [rc2, err2] =
      run({"--tls-cert", (dir_ / "missing.pem").string(), "--tls-key", pki_.server_key}, "missing");
  EXPECT_EQ(rc2, 2);
  EXPECT_NE(err2.find("cannot read TLS certificate file '" + (dir_ / "missing.pem").string() + "'"),
            std::string::npos)
      << err2;
  auto [rc3, err3] = run({"--tls-cert", pki_.server_cert, "--tls-key", other.server_key}, "mismatch");
  EXPECT_EQ(rc3, 2);
  EXPECT_NE(err3.find("does not match the certificate"), std::string::npos) << err3;
  auto [rc4, err4] = run({"--tls-ca", (dir_ / "noca.pem").string()}, "noca");
  EXPECT_EQ(rc4, 2);
  EXPECT_NE(err4.find("cannot read TLS CA file"), std::string::npos) << err4;
  // TLS does not lift the token rule: a public address without a token is still refused.
  auto [rc5, err5] =
      run({"--listen", "0.0.0.0", "--tls-cert", pki_.server_cert, "--tls-key", pki_.server_key}, "public");
  EXPECT_EQ(rc5, 2);
  EXPECT_NE(err5.find("refusing to listen on 0.0.0.0 without authentication"), std::string::npos) << err5;
}

}  // namespace
}  // namespace netdist::tls_process_test
