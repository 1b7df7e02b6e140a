// make test's closing report: reads what each test step wrote (ctest --output-junit, GoogleTest XML, the
// fuzzers' result lines), counts passed, skipped and failed tests, names each skip's reason, and decides
// whether the run passed. A skip passes only with a reason CI cannot satisfy, from the tag that
// core/skip_test_util.h's macros write ("netdist-skip(<reason>): "):
//   gpu      no CUDA device or a CPU libtorch; fails when a GPU is present (nvidia-smi lists one)
//   root     not root, or a privilege root has was refused (network namespaces, a tmpfs mount)
//   offline  the npm client test without the npm registry; passes only when NETDIST_OFFLINE=1
// Any other skip (no tag, a DISABLED_ test, ctest's "Not Run") fails the run, and so does a step that
// exited non-zero, wrote no results or ran no test.
// Thread-safety: pure functions over values.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace netdist::test_report {

enum class Outcome { kPassed, kSkipped, kFailed };

struct TestCase {
  std::string name;  // "Suite.Test", a ctest name, or "fuzz:<target>"
  Outcome outcome = Outcome::kPassed;
  std::string reason;   // for a skip: the tag's reason (gpu, root, offline, ...); "" when the skip has no tag
  std::string message;  // for a skip: its message after the tag; for a failure: what failed, when known
};

// ctest --output-junit: status run → passed, fail → failed, notrun → skipped, disabled → skipped
// (reason "disabled"). A skip's reason and message come from the tag in the test's output.
Result<std::vector<TestCase>> parse_ctest_junit(const std::string& xml);

// GoogleTest --gtest_output=xml: result completed → passed (failed with a <failure>), skipped → skipped,
// status notrun → skipped (reason "disabled").
Result<std::vector<TestCase>> parse_gtest_xml(const std::string& xml);

// The fuzzers' results, one line per fuzzer: "<target> <exit code> <seconds> <runs>" (scripts/run-fuzzers).
// Exit code 0 → passed, with "<seconds> s, <runs> runs" as the message.
Result<std::vector<TestCase>> parse_fuzz_results(const std::string& text);

// The reason tag in a skip message or a test's output: {reason, rest of that line}; {"", ""} without one.
std::pair<std::string, std::string> find_skip_tag(const std::string& text);

struct Policy {
  bool gpu_present = false;  // a GPU skip fails the run
  bool offline = false;      // NETDIST_OFFLINE=1: an offline skip passes
};

// Why a skip with this reason fails the run under `policy`, or "" when it is allowed.
std::string skip_refusal(const std::string& reason, const Policy& policy);

struct Report {
  int passed = 0;
  int skipped = 0;
  int failed = 0;
  std::map<std::string, int> allowed_skips;  // by reason
  std::vector<std::string> problems;         // each makes the run fail
  bool ok() const { return failed == 0 && problems.empty(); }
};

// Counts `tests` and applies `policy`; `step_problems` (a step that crashed or wrote nothing) are kept.
Report make_report(const std::vector<TestCase>& tests, const Policy& policy,
                   std::vector<std::string> step_problems);

// The closing text: "tests: N passed, M skipped (allowed: GPU k, root j), F failed", then one line per skip
// with its reason, per fuzzer, per failure and per problem, then the verdict line.
std::string format_report(const Report& report, const std::vector<TestCase>& tests, const Policy& policy);

}  // namespace netdist::test_report
