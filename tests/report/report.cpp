#include "tests/report/report.h"

#include <sstream>

#include "tests/report/xml.h"

namespace netdist::test_report {
namespace {

constexpr std::string_view kTagStart = "netdist-skip(";

void collect_testcases(const XmlElement& e, std::vector<const XmlElement*>& out) {
  for (const XmlElement& c : e.children) {
    if (c.name == "testcase") {
      out.push_back(&c);
    } else {
      collect_testcases(c, out);
    }
  }
}

std::string first_line(const std::string& text) {
  const size_t begin = text.find_first_not_of("\n\r ");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find('\n', begin) - begin);
}

// A failure's text after GoogleTest's "Failed" line (GTEST_FAIL, ADD_FAILURE), else its first line.
std::string failure_text(const std::string& text) {
  const std::string line = first_line(text);
  if (line != "Failed") return line;
  const size_t next = text.find('\n', text.find("Failed"));
  return next == std::string::npos ? line : first_line(text.substr(next + 1));
}

// GoogleTest prints "file:line: <marker>" and then the message: the message's first line, or "".
std::string line_after(const std::string& output, const std::string& marker) {
  const size_t at = output.find(marker + "\n");
  if (at == std::string::npos) return "";
  return failure_text(output.substr(at + marker.size() + 1));
}

void fill_skip(TestCase& t, const std::string& text, const std::string& fallback) {
  auto [reason, message] = find_skip_tag(text);
  t.reason = reason;
  t.message = reason.empty() ? fallback : message;
}

}  // namespace

std::pair<std::string, std::string> find_skip_tag(const std::string& text) {
  for (size_t at = text.find(kTagStart); at != std::string::npos; at = text.find(kTagStart, at + 1)) {
    const size_t begin = at + kTagStart.size();
    const size_t close = text.find("): ", begin);
    if (close == std::string::npos || close == begin) continue;
    const std::string reason = text.substr(begin, close - begin);
    if (reason.find_first_not_of("abcdefghijklmnopqrstuvwxyz-") != std::string::npos) continue;
    const size_t rest = close + 3;
    const size_t end = text.find('\n', rest);
    return {reason, text.substr(rest, end == std::string::npos ? std::string::npos : end - rest)};
  }
  return {"", ""};
}

Result<std::vector<TestCase>> parse_ctest_junit(const std::string& xml) {
  ND_ASSIGN_OR_RETURN(XmlElement root, parse_xml(xml));
  std::vector<const XmlElement*> cases;
  collect_testcases(root, cases);
  std::vector<TestCase> out;
  for (const XmlElement* c : cases) {
    TestCase t;
    t.name = c->attribute("name");
    const std::string status = c->attribute("status");
    const XmlElement* so = c->child("system-out");
    const std::string output = so ? so->text : "";
    if (status == "run") {
      t.outcome = Outcome::kPassed;
    } else if (status == "notrun") {
      t.outcome = Outcome::kSkipped;
      const XmlElement* skipped = c->child("skipped");
      std::string fallback = skipped ? skipped->attribute("message") : "not run";
      const std::string gtest_message = line_after(output, "Skipped");
      if (!gtest_message.empty()) fallback += ": " + gtest_message;
      fill_skip(t, output, fallback);
    } else if (status == "disabled") {
      t.outcome = Outcome::kSkipped;
      t.reason = "disabled";
      t.message = "disabled (a DISABLED_ test or the ctest DISABLED property)";
    } else {
      t.outcome = Outcome::kFailed;
      const XmlElement* failure = c->child("failure");
      t.message = failure ? failure->attribute("message") : "";
      if (t.message.empty()) t.message = line_after(output, "Failure");
      if (status != "fail")
        t.message = "ctest status '" + status + "'" + (t.message.empty() ? "" : ": " + t.message);
    }
    out.push_back(std::move(t));
  }
  return out;
}

Result<std::vector<TestCase>> parse_gtest_xml(const std::string& xml) {
  ND_ASSIGN_OR_RETURN(XmlElement root, parse_xml(xml));
  std::vector<const XmlElement*> cases;
  collect_testcases(root, cases);
  std::vector<TestCase> out;
  for (const XmlElement* c : cases) {
    TestCase t;
    t.name = c->attribute("classname") + "." + c->attribute("name");
    const XmlElement* failure = c->child("failure");
    const XmlElement* skipped = c->child("skipped");
    if (failure) {
      t.outcome = Outcome::kFailed;
      // "file:line\n<what failed>": both, on one line.
      const std::string message = failure->attribute("message");
      const size_t nl = message.find('\n');
      t.message = nl == std::string::npos
                      ? message
                      : message.substr(0, nl) + ": " + failure_text(message.substr(nl + 1));
    } else if (c->attribute("status") == "notrun" || c->attribute("result") == "suppressed") {
      t.outcome = Outcome::kSkipped;
      t.reason = "disabled";
      t.message = "disabled (a DISABLED_ test)";
    } else if (c->attribute("result") == "skipped" || skipped) {
      t.outcome = Outcome::kSkipped;
      const std::string text = skipped ? skipped->attribute("message") + "\n" + skipped->text : "";
      // GoogleTest's message is "file:line\n<the skip's message>".
      const std::string message = skipped ? skipped->attribute("message") : "";
      const size_t nl = message.find('\n');
      const std::string own = nl == std::string::npos ? message : first_line(message.substr(nl + 1));
      fill_skip(t, text, std::string("GTEST_SKIP: ").append(own));
    } else {
      t.outcome = Outcome::kPassed;
    }
    out.push_back(std::move(t));
  }
  return out;
}

Result<std::vector<TestCase>> parse_fuzz_results(const std::string& text) {
  std::vector<TestCase> out;
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::istringstream fields(line);
    std::string target, runs;
    int code = 0;
    double seconds = 0;
    if (!(fields >> target >> code >> seconds >> runs)) {
      return Status::corruption(std::string("fuzz results line ").append(std::to_string(number)) +
                                ": expected '<target> <exit code> <seconds> <runs>', got '" + line + "'");
    }
    TestCase t;
    t.name = "fuzz:" + target;
    std::ostringstream what;
    what << seconds << " s, " << runs << " runs";
    if (code == 0) {
      t.outcome = Outcome::kPassed;
      t.message = what.str();
    } else {
      t.outcome = Outcome::kFailed;
      t.message = std::string("exit code ").append(std::to_string(code)) + " after " + what.str() +
                  " (a crash or leak: its log says which)";
    }
    out.push_back(std::move(t));
  }
  return out;
}

std::string skip_refusal(const std::string& reason, const Policy& policy) {
  if (reason == "root") return "";
  if (reason == "gpu") {
    return policy.gpu_present ? "a GPU is present (nvidia-smi lists one, or --gpu yes) but the test skipped "
                                "for want of one: "
                                "build against a CUDA libtorch (scripts/gpu-build), or say TEST_GPU=no"
                              : "";
  }
  if (reason == "offline") {
    return policy.offline
               ? ""
               : "skipped offline while NETDIST_OFFLINE is not 1: the npm registry must be reachable";
  }
  if (reason == "disabled") return "a disabled test never runs: enable it or delete it";
  if (reason.empty()) {
    return "no netdist-skip(...) reason tag: skip only through ND_SKIP_NEEDS_GPU/ROOT "
           "(src/core/skip_test_util.h); "
           "a missing file must fail";
  }
  return "unknown skip reason '" + reason + "' (allowed: gpu, root, offline)";
}

Report make_report(const std::vector<TestCase>& tests, const Policy& policy,
                   std::vector<std::string> step_problems) {
  Report r;
  r.problems = std::move(step_problems);
  for (const TestCase& t : tests) {
    switch (t.outcome) {
      case Outcome::kPassed:
        ++r.passed;
        break;
      case Outcome::kFailed:
        ++r.failed;
        break;
      case Outcome::kSkipped: {
        ++r.skipped;
        const std::string refusal = skip_refusal(t.reason, policy);
        if (refusal.empty()) {
          ++r.allowed_skips[t.reason];
        } else {
          r.problems.push_back(t.name + " skipped: " + refusal);
        }
        break;
      }
    }
  }
  return r;
}

std::string format_report(const Report& report, const std::vector<TestCase>& tests, const Policy& policy) {
  auto count = [&](const std::string& reason) {
    auto it = report.allowed_skips.find(reason);
    return it == report.allowed_skips.end() ? 0 : it->second;
  };
  std::ostringstream out;
  out << "tests: " << report.passed << " passed, " << report.skipped << " skipped (allowed: GPU "
      << count("gpu") << ", root " << count("root");
  if (count("offline") > 0) out << ", offline " << count("offline");
  out << "), " << report.failed << " failed\n";
  for (const TestCase& t : tests) {
    if (t.outcome != Outcome::kSkipped) continue;
    out << "  skipped " << t.name << " [" << (t.reason.empty() ? "no reason tag" : t.reason) << "] "
        << t.message;
    out << (skip_refusal(t.reason, policy).empty() ? "\n" : "  <- not allowed\n");
  }
  for (const TestCase& t : tests) {
    if (t.name.rfind("fuzz:", 0) == 0 && t.outcome == Outcome::kPassed)
      out << "  " << t.name << ": " << t.message << "\n";
  }
  for (const TestCase& t : tests) {
    if (t.outcome == Outcome::kFailed)
      out << "  FAILED " << t.name << (t.message.empty() ? "" : ": " + t.message) << "\n";
  }
  for (const std::string& p : report.problems) out << "  problem: " << p << "\n";
  if (report.ok()) {
    out << "test report: passed";
    out << (policy.gpu_present ? " (a GPU is present: GPU tests must run)\n" : "\n");
  } else {
    out << "test report: FAILED (" << report.failed << " failed, " << report.problems.size() << " problem"
        << (report.problems.size() == 1 ? "" : "s") << ")\n";
  }
  return out.str();
}

}  // namespace netdist::test_report
