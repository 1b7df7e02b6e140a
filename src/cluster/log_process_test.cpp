// --log-level and --log-format on a real `netdist serve` (core/log.h, cli/log_flags.h): every stderr line is
// a JSON object with --log-format json, the prompt's messages carry its id, and bad values stop the command
// with exit status 2 naming the flag and the value.
#include <sys/wait.h>

#include <csignal>
#include <cstdlib>
#include <string>
#include <vector>

#include "cluster/process_test_util.h"

namespace netdist::log_process_test {
namespace {

using namespace netdist::cluster::test;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Runs the netdist binary with `args` (stdout dropped, stderr to `err`); its exit status and stderr.
std::pair<int, std::string> run_netdist(const std::vector<std::string>& args, const fs::path& err) {
  std::string cmd = std::string(NETDIST_BINARY);
  for (const auto& s : args) cmd += " '" + s + "'";
  cmd += " >/dev/null 2>'" + err.string() + "'";
  const int rc = std::system(cmd.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_file(err)};
}

TEST(LogProcess, JsonFormatEveryLineParsesAndThePromptsLinesCarryItsId) {
  const fs::path dir = scratch("log_process_test", "json");
  std::string id;
  {
    Proc server(process_args("serve", dir, {"--log-format", "json", "--log-level", "debug"}), dir / "serve.log");
    ASSERT_FALSE(server.url().empty());
    id = submit(server.url(), prompt(1));
    ASSERT_FALSE(id.empty());
    EXPECT_EQ(wait_history(server.url(), id)["status"]["status_str"], "success");
    EXPECT_EQ(server.stop(SIGTERM), 0);
  }
  const std::string log = read_file(dir / "serve.log");
  const std::vector<std::string> lines = lines_of(log);
  ASSERT_FALSE(lines.empty()) << "nothing logged";
  size_t tagged = 0, tagged_debug = 0;
  for (const std::string& line : lines) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "not a JSON object: " << line << "\nwhole log:\n" << log;
    EXPECT_TRUE(j["time"].is_string() && j["level"].is_string() && j["msg"].is_string()) << line;
    if (j.value("prompt_id", "") == id) {
      ++tagged;
      tagged_debug += j["level"] == "debug";
    }
  }
  EXPECT_GE(tagged, 2u) << "the prompt's start and end carry its id:\n" << log;
  EXPECT_GE(tagged_debug, 1u) << "--log-level debug shows the executor's node lines, tagged:\n" << log;
}

// The default (info, text): the prompt's lines have a [prompt=ID] tag; debug lines are filtered out.
TEST(LogProcess, TextFormatTagsThePromptAndInfoHidesDebug) {
  const fs::path dir = scratch("log_process_test", "text");
  std::string id;
  {
    Proc server(process_args("serve", dir, {}), dir / "serve.log");
    ASSERT_FALSE(server.url().empty());
    id = submit(server.url(), prompt(1, 8));
    ASSERT_FALSE(id.empty());
    EXPECT_EQ(wait_history(server.url(), id)["status"]["status_str"], "success");
  }
  const std::string log = read_file(dir / "serve.log");
  EXPECT_NE(log.find(" info [prompt=" + id + "] prompt executed in "), std::string::npos) << log;
  EXPECT_EQ(log.find(" debug "), std::string::npos) << log;
}

TEST(LogProcess, BadLogFlagsExitWithStatus2NamingThem) {
  const fs::path dir = scratch("log_process_test", "bad");
  auto [rc1, err1] = run_netdist(process_args("serve", dir, {"--log-level", "loud"}), dir / "level.err");
  EXPECT_EQ(rc1, 2);
  EXPECT_NE(err1.find("netdist serve: --log-level: 'loud' is not one of"), std::string::npos) << err1;
  auto [rc2, err2] = run_netdist(process_args("worker", dir, {"--log-format", "xml"}), dir / "format.err");
  EXPECT_EQ(rc2, 2);
  EXPECT_NE(err2.find("netdist worker: --log-format: 'xml' is not one of text, json"), std::string::npos) << err2;
  auto [rc3, err3] = run_netdist({"run", "no-such-workflow.json", "--log-level", "WARN"}, dir / "run.err");
  EXPECT_EQ(rc3, 2);
  EXPECT_NE(err3.find("netdist run: --log-level: 'WARN'"), std::string::npos) << err3;
  auto [rc4, err4] = run_netdist({"demo", "--log-format", "yaml"}, dir / "demo.err");
  EXPECT_EQ(rc4, 2);
  EXPECT_NE(err4.find("netdist demo: --log-format: 'yaml'"), std::string::npos) << err4;
}

}  // namespace
}  // namespace netdist::log_process_test
