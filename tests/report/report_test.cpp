// The report's parsers on the formats ctest 3.25 and GoogleTest 1.12 write (samples copied from real runs),
// the skip policy, and the summary line.
#include "tests/report/report.h"

#include <gtest/gtest.h>

#include "core/skip_test_util.h"
#include "tests/report/xml.h"

namespace netdist::test_report {
namespace {

const char* kJunit = R"X(<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="(empty)"
	tests="6" failures="2" disabled="1" skipped="3" hostname="" time="0" timestamp="2026-12-07T09:41:44"
	>
	<testcase name="A.Pass" classname="A.Pass" time="0.04" status="run">
		<system-out>[ RUN      ] A.Pass
[       OK ] A.Pass (0 ms)
</system-out>
	</testcase>
	<testcase name="A.Gpu" classname="A.Gpu" time="0.05" status="notrun">
		<skipped message="SKIP_REGULAR_EXPRESSION_MATCHED"/>
		<system-out>[ RUN      ] A.Gpu
/src/a_test.cpp:3: Skipped
)X" ND_SKIP_TAG("gpu") R"X(no CUDA device &lt;&amp;&gt;
[  SKIPPED ] A.Gpu (0 ms)
</system-out>
	</testcase>
	<testcase name="A.Raw" classname="A.Raw" time="0.05" status="notrun">
		<skipped message="SKIP_REGULAR_EXPRESSION_MATCHED"/>
		<system-out>[ RUN      ] A.Raw
/src/a_test.cpp:9: Skipped
golden file absent
[  SKIPPED ] A.Raw (0 ms)
</system-out>
	</testcase>
	<testcase name="A.Fail" classname="A.Fail" time="0.08" status="fail">
		<failure message=""/>
		<system-out>/src/a_test.cpp:4: Failure
Failed
boom
</system-out>
	</testcase>
	<testcase name="A.Off" classname="A.Off" time="0" status="disabled">
		<system-out>Disabled</system-out>
	</testcase>
	<testcase name="npm_clients" classname="npm_clients" time="0.03" status="notrun">
		<skipped message="SKIP_RETURN_CODE=77"/>
		<system-out>npm_clients: )X" ND_SKIP_TAG("offline") R"X(NETDIST_OFFLINE=1 and no npm cache
</system-out>
	</testcase>
</testsuite>
)X";

const char* kGtest = R"X(<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="3" failures="1" disabled="0" errors="0" time="0" name="AllTests">
  <testsuite name="TinyModel" tests="3" failures="1" disabled="0" skipped="1" errors="0" time="0">
    <testcase name="Loads" file="t.cpp" line="2" status="run" result="completed" time="0" classname="TinyModel" />
    <testcase name="Root" file="t.cpp" line="3" status="run" result="skipped" time="0" classname="TinyModel">
      <skipped message="t.cpp:3&#x0A;)X" ND_SKIP_TAG("root") R"X(not root"><![CDATA[t.cpp:3
)X" ND_SKIP_TAG("root") R"X(not root]]></skipped>
    </testcase>
    <testcase name="Hue" file="t.cpp" line="4" status="run" result="completed" time="0" classname="TinyModel">
      <failure message="t.cpp:4&#x0A;Failed&#x0A;golden.json is missing" type=""><![CDATA[t.cpp:4
Failed
golden.json is missing]]></failure>
    </testcase>
  </testsuite>
</testsuites>
)X";

TEST(TestReportXml, ParsesAttributesTextCdataAndEntities) {
  auto doc = parse_xml("<?xml version=\"1.0\"?><!-- c --><a x='1 &amp; 2'>t&#x41;<b/><![CDATA[<raw>]]></a>");
  ASSERT_TRUE(doc.is_ok()) << doc.status().to_string();
  EXPECT_EQ(doc->name, "a");
  EXPECT_EQ(doc->attribute("x"), "1 & 2");
  EXPECT_EQ(doc->text, "tA<raw>");
  ASSERT_NE(doc->child("b"), nullptr);
}

TEST(TestReportXml, RejectsTruncatedAndMismatchedDocuments) {
  EXPECT_FALSE(parse_xml("<a><b></a>").is_ok());
  EXPECT_FALSE(parse_xml("<a x=\"1\">text").is_ok());
  EXPECT_FALSE(parse_xml("<a>&bogus;</a>").is_ok());
  EXPECT_FALSE(parse_xml("").is_ok());
}

TEST(TestReport, ReadsCtestJunit) {
  auto tests = parse_ctest_junit(kJunit);
  ASSERT_TRUE(tests.is_ok()) << tests.status().to_string();
  ASSERT_EQ(tests->size(), 6u);
  EXPECT_EQ((*tests)[0].outcome, Outcome::kPassed);
  EXPECT_EQ((*tests)[1].outcome, Outcome::kSkipped);
  EXPECT_EQ((*tests)[1].reason, "gpu");
  EXPECT_EQ((*tests)[1].message, "no CUDA device <&>");
  EXPECT_EQ((*tests)[2].reason, "");
  EXPECT_EQ((*tests)[2].message, "SKIP_REGULAR_EXPRESSION_MATCHED: golden file absent");
  EXPECT_EQ((*tests)[3].outcome, Outcome::kFailed);
  EXPECT_EQ((*tests)[3].message, "boom");
  EXPECT_EQ((*tests)[4].reason, "disabled");
  EXPECT_EQ((*tests)[5].reason, "offline");
}

TEST(TestReport, ReadsGtestXml) {
  auto tests = parse_gtest_xml(kGtest);
  ASSERT_TRUE(tests.is_ok()) << tests.status().to_string();
  ASSERT_EQ(tests->size(), 3u);
  EXPECT_EQ((*tests)[0].name, "TinyModel.Loads");
  EXPECT_EQ((*tests)[0].outcome, Outcome::kPassed);
  EXPECT_EQ((*tests)[1].outcome, Outcome::kSkipped);
  EXPECT_EQ((*tests)[1].reason, "root");
  EXPECT_EQ((*tests)[1].message, "not root");
  EXPECT_EQ((*tests)[2].outcome, Outcome::kFailed);
  EXPECT_EQ((*tests)[2].message, "t.cpp:4: golden.json is missing");
}

TEST(TestReport, ReadsFuzzResultsAndRejectsGarbage) {
  auto tests = parse_fuzz_results("prompt_fuzz 0 15 123456\n\nsafetensors_fuzz 1 3 99\n");
  ASSERT_TRUE(tests.is_ok()) << tests.status().to_string();
  ASSERT_EQ(tests->size(), 2u);
  EXPECT_EQ((*tests)[0].name, "fuzz:prompt_fuzz");
  EXPECT_EQ((*tests)[0].outcome, Outcome::kPassed);
  EXPECT_EQ((*tests)[0].message, "15 s, 123456 runs");
  EXPECT_EQ((*tests)[1].outcome, Outcome::kFailed);
  EXPECT_FALSE(parse_fuzz_results("prompt_fuzz crashed\n").is_ok());
}

TEST(TestReport, SkipPolicy) {
  Policy cpu;
  EXPECT_EQ(skip_refusal("gpu", cpu), "");
  EXPECT_EQ(skip_refusal("root", cpu), "");
  EXPECT_NE(skip_refusal("offline", cpu), "");
  EXPECT_NE(skip_refusal("", cpu), "");
  EXPECT_NE(skip_refusal("disabled", cpu), "");
  EXPECT_NE(skip_refusal("golden", cpu), "");
  Policy gpu_offline{true, true};
  EXPECT_NE(skip_refusal("gpu", gpu_offline), "");
  EXPECT_EQ(skip_refusal("offline", gpu_offline), "");
}

TEST(TestReport, SummaryCountsAndFailsOnSkipsCiCouldSatisfy) {
  std::vector<TestCase> tests = {{"A.Pass", Outcome::kPassed, "", ""},
                                 {"A.Gpu", Outcome::kSkipped, "gpu", "no CUDA device"},
                                 {"N.Ns", Outcome::kSkipped, "root", "not root"},
                                 {"fuzz:prompt_fuzz", Outcome::kPassed, "", "15 s, 10 runs"}};
  Report ok = make_report(tests, Policy{}, {});
  EXPECT_TRUE(ok.ok());
  const std::string text = format_report(ok, tests, Policy{});
  EXPECT_EQ(text.substr(0, text.find('\n')), "tests: 2 passed, 2 skipped (allowed: GPU 1, root 1), 0 failed");
  EXPECT_NE(text.find("  skipped A.Gpu [gpu] no CUDA device\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  fuzz:prompt_fuzz: 15 s, 10 runs\n"), std::string::npos) << text;
  EXPECT_NE(text.find("test report: passed"), std::string::npos) << text;

  Report with_gpu = make_report(tests, Policy{true, false}, {});
  EXPECT_FALSE(with_gpu.ok());
  ASSERT_EQ(with_gpu.problems.size(), 1u);
  EXPECT_NE(with_gpu.problems[0].find("A.Gpu"), std::string::npos);

  tests.push_back({"A.Raw", Outcome::kSkipped, "", "golden file absent"});
  Report raw = make_report(tests, Policy{}, {});
  EXPECT_FALSE(raw.ok());
  EXPECT_NE(format_report(raw, tests, Policy{}).find("test report: FAILED (0 failed, 1 problem)"),
            std::string::npos);

  Report crashed = make_report({}, Policy{}, {"step TinyModel (exit code 134) wrote no x.gtest.xml"});
  EXPECT_FALSE(crashed.ok());
}

}  // namespace
}  // namespace netdist::test_report
