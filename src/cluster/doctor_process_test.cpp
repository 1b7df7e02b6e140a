// `netdist doctor` against real processes on loopback: a healthy cluster passes (every worker renders its
// one step), and each broken case the command claims to detect fails with its row and a fix: a wrong token,
// nothing listening, a dead worker, the same model name with different bytes on two workers, an untrusted
// TLS certificate, a damaged model file, a missing vocabulary.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "cluster/process_test_util.h"
#include "server/tls_test_util.h"

// Not in netdist::cluster: in a unity build the other process tests' helpers share that anonymous namespace.
namespace netdist::doctor_process_test {
namespace {

using namespace cluster::test;  // NOLINT(google-build-using-namespace): the process-test scaffolding

constexpr const char* kToken = "doctor-token";

struct DoctorRun {
  int exit_code = -1;
  nlohmann::json report;  // --json output (null when it did not parse)
  std::string text;       // stdout + stderr, for failure messages
};

DoctorRun run_doctor(const fs::path& dir, const std::vector<std::string>& args) {
  fs::create_directories(dir);
  const fs::path out = dir / "doctor.out";
  DoctorRun run;
  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return run;
  std::vector<std::string> a = {"doctor", "--json"};
  a.insert(a.end(), args.begin(), args.end());
  const pid_t pid = spawn_netdist(NETDIST_BINARY, a, dir / "doctor.err", {}, fd);
  ::close(fd);
  if (pid <= 0) return run;
  auto status = wait_child(pid, std::chrono::seconds(300));
  if (!status) status = stop_child(pid, SIGKILL, std::chrono::seconds(1));
  run.exit_code = WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  run.text = read_file(out) + read_file(dir / "doctor.err");
  run.report = nlohmann::json::parse(read_file(out), nullptr, false);
  if (run.report.is_discarded()) run.report = nullptr;
  return run;
}

// The level of the row (area, what), or "" when there is none.
std::string level(const DoctorRun& run, const std::string& area, const std::string& what) {
  if (!run.report.is_object()) return "";
  for (const auto& c : run.report["checks"])
    if (c["area"] == area && c["what"] == what) return c["level"].get<std::string>();
  return "";
}

std::string row_field(const DoctorRun& run, const std::string& area, const std::string& what, const char* field) {
  if (!run.report.is_object()) return "";
  for (const auto& c : run.report["checks"])
    if (c["area"] == area && c["what"] == what) return c[field].get<std::string>();
  return "";
}

// A models folder holding a copy of the embedded model under checkpoints/.
fs::path models_with_tiny(const fs::path& dir) {
  fs::create_directories(dir / "checkpoints");
  fs::copy_file(tiny_model(), dir / "checkpoints" / "tiny.safetensors", fs::copy_options::overwrite_existing);
  return dir;
}

TEST(DoctorProcess, HealthyClusterPassesAndEveryWorkerRendersOneStep) {
  const fs::path dir = scratch("doctor_healthy");
  Proc a(worker_args(dir / "a", {"--auth-token", kToken}), dir / "a.log");
  Proc b(worker_args(dir / "b", {"--auth-token", kToken}), dir / "b.log");
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--auth-token", kToken, "--workers",
                                          a.url() + "," + b.url()}),
             dir / "c.log");
  ASSERT_TRUE(wait_alive(coord.url(), 2, kToken)) << read_file(dir / "c.log");
  const fs::path models = models_with_tiny(dir / "models");
  DoctorRun run = run_doctor(dir / "doctor", {coord.url(), "--auth-token", kToken, "--models-dir", models.string()});
  EXPECT_EQ(run.exit_code, 0) << run.text;
  EXPECT_EQ(level(run, coord.url(), "reachable"), "ok") << run.text;
  EXPECT_EQ(level(run, coord.url(), "token"), "ok") << run.text;
  EXPECT_EQ(level(run, coord.url(), "clock"), "ok") << run.text;
  EXPECT_EQ(level(run, coord.url(), "role"), "ok") << run.text;
  for (const std::string& w : {a.url(), b.url()}) {
    EXPECT_EQ(level(run, w, "health"), "ok") << run.text;
    EXPECT_EQ(level(run, w, "protocol"), "ok") << run.text;
    EXPECT_EQ(level(run, w, "one-step render"), "ok") << run.text;
  }
  EXPECT_EQ(level(run, "models", "checkpoints/tiny.safetensors"), "ok") << run.text;
  EXPECT_NE(row_field(run, "models", "checkpoints/tiny.safetensors", "detail").find("SD1"), std::string::npos)
      << run.text;
  EXPECT_EQ(level(run, "local", "CLIP vocabulary"), "ok") << run.text;

  // The same cluster, seen with a wrong token, and with the token but one worker gone.
  DoctorRun wrong = run_doctor(dir / "wrong", {coord.url(), "--auth-token", "not-it", "--models-dir", models.string()});
  EXPECT_EQ(wrong.exit_code, 1) << wrong.text;
  EXPECT_EQ(level(wrong, coord.url(), "token"), "FAIL") << wrong.text;
  EXPECT_NE(row_field(wrong, coord.url(), "token", "fix").find("--auth-token"), std::string::npos) << wrong.text;

  const std::string gone = b.url();
  b.stop(SIGKILL);
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  const auto alive = [&] {
    const auto workers = workers_by_url(coord.url(), kToken);
    const auto it = workers.find(gone);
    return it == workers.end() || !it->second.is_object() || it->second.value("alive", true);
  };
  while (Clock::now() < deadline && alive()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  DoctorRun dead = run_doctor(dir / "dead", {coord.url(), "--auth-token", kToken, "--models-dir", models.string(),
                                             "--no-bench"});
  EXPECT_EQ(dead.exit_code, 1) << dead.text;
  EXPECT_EQ(level(dead, gone, "health"), "FAIL") << dead.text;
  EXPECT_EQ(level(dead, a.url(), "health"), "ok") << dead.text;
  EXPECT_EQ(level(dead, a.url(), "one-step render"), "") << "--no-bench renders nothing";
}

TEST(DoctorProcess, NothingListeningFailsReachable) {
  const fs::path dir = scratch("doctor_nothing");
  const std::string url = "http://127.0.0.1:1";
  DoctorRun run = run_doctor(dir, {url, "--models-dir", models_with_tiny(dir / "models").string()});
  EXPECT_EQ(run.exit_code, 1) << run.text;
  EXPECT_EQ(level(run, url, "reachable"), "FAIL") << run.text;
  EXPECT_NE(row_field(run, url, "reachable", "fix").find("running at"), std::string::npos) << run.text;
}

TEST(DoctorProcess, SameModelNameWithOtherBytesOnTwoWorkersFails) {
  const fs::path dir = scratch("doctor_hashes");
  // Two different files under one name: the embedded model, and a copy with one weight byte changed.
  fs::create_directories(dir / "a" / "models" / "checkpoints");
  fs::create_directories(dir / "b" / "models" / "checkpoints");
  fs::copy_file(tiny_model(), dir / "a" / "models" / "checkpoints" / "same.safetensors");
  fs::copy_file(tiny_model(), dir / "b" / "models" / "checkpoints" / "same.safetensors");
  {
    // Flip the last byte of b's copy: a weight of the tiny model, so still a valid file of the same size.
    const std::string bytes = read_file(tiny_model());
    std::fstream f(dir / "b" / "models" / "checkpoints" / "same.safetensors",
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-1, std::ios::end);
    f.put(static_cast<char>(bytes.back() ^ 0x01));
  }
  Proc a(worker_args(dir / "a", {"--auth-token", kToken}), dir / "a.log");
  Proc b(worker_args(dir / "b", {"--auth-token", kToken}), dir / "b.log");
  // Workers hash their files in the background: wait until both state a digest for same.safetensors.
  const auto hashed = [&](const std::string& url) {
    for (const auto& m : get_json(url, "/netdist/v1/capabilities", kToken).value("models", nlohmann::json::array()))
      if (m.value("name", "") == "same.safetensors" && m["sha256"].is_string()) return true;
    return false;
  };
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline && !(hashed(a.url()) && hashed(b.url())))
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  Proc coord(coordinator_args(dir / "c", {"--enable-distributed", "--no-local", "--auth-token", kToken, "--workers",
                                          a.url() + "," + b.url()}),
             dir / "c.log");
  ASSERT_TRUE(wait_alive(coord.url(), 2, kToken)) << read_file(dir / "c.log");
  DoctorRun run = run_doctor(dir / "doctor", {coord.url(), "--auth-token", kToken, "--no-bench", "--models-dir",
                                              (dir / "a" / "models").string()});
  EXPECT_EQ(run.exit_code, 1) << run.text;
  EXPECT_EQ(level(run, "cluster", "model checkpoint same.safetensors"), "FAIL") << run.text;
  const std::string detail = row_field(run, "cluster", "model checkpoint same.safetensors", "detail");
  EXPECT_NE(detail.find(a.url()), std::string::npos) << detail;
  EXPECT_NE(detail.find(b.url()), std::string::npos) << detail;
}

TEST(DoctorProcess, UntrustedCertificateFailsUntilTheCaIsGiven) {
  const fs::path dir = scratch("doctor_tls");
  const server::TestPki pki = server::make_test_pki((dir / "pki").string());
  Proc w(worker_args(dir / "w", {"--auth-token", kToken, "--tls-cert", pki.server_cert, "--tls-key", pki.server_key}),
         dir / "w.log");
  ASSERT_EQ(w.url().rfind("https://", 0), 0u) << w.url();
  const std::string models = models_with_tiny(dir / "models").string();
  DoctorRun untrusted = run_doctor(dir / "untrusted", {w.url(), "--auth-token", kToken, "--models-dir", models});
  EXPECT_EQ(untrusted.exit_code, 1) << untrusted.text;
  EXPECT_EQ(level(untrusted, w.url(), "reachable"), "FAIL") << untrusted.text;
  EXPECT_NE(row_field(untrusted, w.url(), "reachable", "fix").find("--tls-ca"), std::string::npos) << untrusted.text;
  DoctorRun trusted = run_doctor(dir / "trusted", {w.url(), "--auth-token", kToken, "--tls-ca", pki.ca_cert,
                                                   "--models-dir", models, "--no-bench"});
  EXPECT_EQ(trusted.exit_code, 0) << trusted.text;
  EXPECT_EQ(level(trusted, w.url(), "tls"), "ok") << trusted.text;
  EXPECT_EQ(level(trusted, w.url(), "role"), "ok") << trusted.text;
  EXPECT_EQ(level(trusted, w.url(), "protocol"), "ok") << trusted.text;
}

TEST(DoctorProcess, DamagedModelAndMissingVocabularyFailLocally) {
  const fs::path dir = scratch("doctor_local");
  const fs::path models = models_with_tiny(dir / "models");
  std::ofstream(models / "checkpoints" / "broken.safetensors", std::ios::binary) << "not a safetensors file";
  DoctorRun run = run_doctor(dir / "run", {"--models-dir", models.string(), "--clip-vocab", (dir / "none").string()});
  EXPECT_EQ(run.exit_code, 1) << run.text;
  EXPECT_EQ(level(run, "models", "checkpoints/broken.safetensors"), "FAIL") << run.text;
  EXPECT_NE(row_field(run, "models", "checkpoints/broken.safetensors", "detail").find("broken.safetensors"),
            std::string::npos)
      << run.text;
  EXPECT_EQ(level(run, "models", "checkpoints/tiny.safetensors"), "ok") << run.text;
  EXPECT_EQ(level(run, "local", "CLIP vocabulary"), "FAIL") << run.text;
  EXPECT_EQ(level(run, "local", "libtorch"), "ok") << run.text;
}

}  // namespace
}  // namespace netdist::doctor_process_test
