#include "core/log.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace netdist {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Runs f with stderr captured (at the file descriptor) and returns the lines it wrote. Restores the default
// configuration afterwards so tests do not leak into each other.
template <class F>
std::vector<std::string> captured(std::string_view level, std::string_view format, F f) {
  EXPECT_TRUE(log::configure(level, format).is_ok());
  testing::internal::CaptureStderr();
  f();
  std::string text = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(log::configure("info", "text").is_ok());
  return lines_of(text);
}

TEST(Log, LevelFiltersLowerMessages) {
  auto lines = captured("warn", "text", [] {
    log::debug("d {}", 1);
    log::info("i {}", 2);
    log::warn("w {}", 3);
    log::error("e {}", 4);
  });
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find(" warn w 3"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find(" error e 4"), std::string::npos) << lines[1];
}

TEST(Log, OffSilencesEverythingAndTraceShowsEverything) {
  auto off = captured("off", "text", [] { log::error("nothing"); });
  EXPECT_TRUE(off.empty());
  auto all = captured("trace", "text", [] {
    log::trace("t");
    log::debug("d");
  });
  EXPECT_EQ(all.size(), 2u);
}

TEST(Log, TextLineHasUtcTimeLevelTagsAndMessage) {
  auto lines = captured("info", "text", [] {
    log::Scope scope("abc", "w1");
    log::warn("worker {} lost: {}", "w1", "timeout");
  });
  ASSERT_EQ(lines.size(), 1u);
  std::regex shape(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z warn \[prompt=abc worker=w1\] worker w1 lost: timeout)");
  EXPECT_TRUE(std::regex_match(lines[0], shape)) << lines[0];
}

TEST(Log, JsonLinesParseWithFields) {
  auto lines = captured("debug", "json", [] {
    log::debug("plain");
    log::Scope scope("p-1", "");
    log::info("quote \" backslash \\ newline \n tab \t ctl \x01 bad \xff end");
  });
  ASSERT_EQ(lines.size(), 2u);
  auto first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first["level"], "debug");
  EXPECT_EQ(first["msg"], "plain");
  EXPECT_TRUE(first["time"].is_string());
  EXPECT_FALSE(first.contains("prompt_id"));
  EXPECT_FALSE(first.contains("worker"));
  auto second = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(second["level"], "info");
  EXPECT_EQ(second["prompt_id"], "p-1");
  EXPECT_FALSE(second.contains("worker"));
  EXPECT_EQ(second["msg"], "quote \" backslash \\ newline \n tab \t ctl \x01 bad \xef\xbf\xbd end");
}

TEST(Log, ScopesNestInnermostNonEmptyWins) {
  auto lines = captured("info", "json", [] {
    log::Scope outer("p-outer", "w-outer");
    {
      log::Scope inner("p-inner", "");
      log::info("inner");
    }
    log::info("outer");
  });
  ASSERT_EQ(lines.size(), 2u);
  auto inner = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(inner["prompt_id"], "p-inner");
  EXPECT_EQ(inner["worker"], "w-outer");
  auto outer = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(outer["prompt_id"], "p-outer");
}

TEST(Log, ScopesArePerThread) {
  auto lines = captured("info", "json", [] {
    log::Scope scope("p-main", "w-main");
    std::thread([] { log::info("other thread"); }).join();
    std::thread([] {
      log::Scope mine("p-thread", "");
      log::info("own scope");
    }).join();
  });
  ASSERT_EQ(lines.size(), 2u);
  auto other = nlohmann::json::parse(lines[0]);
  EXPECT_FALSE(other.contains("prompt_id"));
  EXPECT_FALSE(other.contains("worker"));
  auto own = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(own["prompt_id"], "p-thread");
  EXPECT_FALSE(own.contains("worker"));
}

TEST(Log, ConfigureRejectsBadValuesNamingThem) {
  Status bad_level = log::configure("verbose", "text");
  EXPECT_EQ(bad_level.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_level.message().find("--log-level"), std::string::npos);
  EXPECT_NE(bad_level.message().find("'verbose'"), std::string::npos);
  Status bad_format = log::configure("info", "xml");
  EXPECT_EQ(bad_format.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_format.message().find("--log-format"), std::string::npos);
  EXPECT_NE(bad_format.message().find("'xml'"), std::string::npos);
  // A rejected call changes nothing: info still prints, as text.
  auto lines = captured("info", "text", [] {
    EXPECT_FALSE(log::configure("debug", "yaml").is_ok());
    log::debug("hidden");
    log::info("shown");
  });
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find(" info shown"), std::string::npos) << lines[0];
}

}  // namespace
}  // namespace netdist
