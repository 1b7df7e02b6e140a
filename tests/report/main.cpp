// netdist_test_report: the closing report of `make test` (and of tests/parity/run_gpu_parity.sh).
//
//   netdist_test_report RESULTS_DIR [--gpu auto|yes|no]
//
// RESULTS_DIR/steps.txt has one line per test step, written after the step ran:
//   <step name> <exit code> <results file, relative to RESULTS_DIR>
// A results file ending in .junit.xml is ctest's --output-junit, .gtest.xml GoogleTest's --gtest_output=xml,
// .fuzz.txt the fuzzers' result lines (scripts/run-fuzzers). Prints report.h's summary and exits 0 when the
// run passed, 1 when it failed, 2 when RESULTS_DIR cannot be read. --gpu auto (the default) asks
// `nvidia-smi -L` whether a GPU is present; NETDIST_OFFLINE=1 allows the offline skip.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/report/report.h"

namespace {

using netdist::test_report::Outcome;
using netdist::test_report::TestCase;

bool nvidia_smi_lists_a_gpu() {
  FILE* p = popen("nvidia-smi -L 2>/dev/null", "r");
  if (p == nullptr) return false;
  std::string text;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p)) text += buf;
  const int rc = pclose(p);
  return rc == 0 && text.find("GPU ") != std::string::npos;
}

bool read_file(const std::filesystem::path& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream s;
  s << in.rdbuf();
  out = s.str();
  return true;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Reads one step's results into `tests`; anything wrong with the step goes to `problems`.
void read_step(const std::filesystem::path& dir, const std::string& step, int code, const std::string& file,
               std::vector<TestCase>& tests, std::vector<std::string>& problems) {
  const std::string where = "step " + step + " (exit code " + std::to_string(code) + ")";
  std::string text;
  if (!read_file(dir / file, text)) {
    problems.push_back(where + " wrote no " + (dir / file).string() + ": it crashed or did not start");
    return;
  }
  netdist::Result<std::vector<TestCase>> parsed =
      netdist::Status::invalid_argument("unknown results file kind");
  if (ends_with(file, ".junit.xml")) {
    parsed = netdist::test_report::parse_ctest_junit(text);
  } else if (ends_with(file, ".gtest.xml")) {
    parsed = netdist::test_report::parse_gtest_xml(text);
  } else if (ends_with(file, ".fuzz.txt")) {
    parsed = netdist::test_report::parse_fuzz_results(text);
  }
  if (!parsed.is_ok()) {
    problems.push_back(where + ": " + file + ": " + parsed.status().to_string());
    return;
  }
  if (parsed->empty()) problems.push_back(where + " ran no test");
  bool any_failed = false;
  for (const TestCase& t : *parsed) any_failed = any_failed || t.outcome == Outcome::kFailed;
  if (code != 0 && !any_failed) problems.push_back(where + " failed though none of its tests did");
  tests.insert(tests.end(), parsed->begin(), parsed->end());
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir_arg, gpu = "auto";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--gpu" && i + 1 < argc) {
      gpu = argv[++i];
    } else if (dir_arg.empty() && arg.rfind("--", 0) != 0) {
      dir_arg = arg;
    } else {
      dir_arg.clear();
      break;
    }
  }
  if (dir_arg.empty() || (gpu != "auto" && gpu != "yes" && gpu != "no")) {
    std::fprintf(stderr, "usage: netdist_test_report RESULTS_DIR [--gpu auto|yes|no]\n");
    return 2;
  }
  const std::filesystem::path dir(dir_arg);
  std::string steps;
  if (!read_file(dir / "steps.txt", steps)) {
    std::fprintf(stderr, "netdist_test_report: cannot read %s\n", (dir / "steps.txt").c_str());
    return 2;
  }
  std::vector<TestCase> tests;
  std::vector<std::string> problems;
  std::istringstream lines(steps);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::istringstream fields(line);
    std::string step, file;
    int code = 0;
    if (!(fields >> step >> code >> file)) {
      problems.push_back("steps.txt: expected '<step> <exit code> <results file>', got '" + line + "'");
      continue;
    }
    read_step(dir, step, code, file, tests, problems);
  }
  if (tests.empty() && problems.empty()) problems.push_back("steps.txt names no step");

  netdist::test_report::Policy policy;
  policy.gpu_present = gpu == "yes" || (gpu == "auto" && nvidia_smi_lists_a_gpu());
  const char* offline = std::getenv("NETDIST_OFFLINE");
  policy.offline = offline != nullptr && std::string(offline) == "1";
  const auto report = netdist::test_report::make_report(tests, policy, std::move(problems));
  std::fputs(netdist::test_report::format_report(report, tests, policy).c_str(), stdout);
  return report.ok() ? 0 : 1;
}
