// The wire form of a whole prompt's reply (shard_runner.h PromptReply): round trip of status, outputs,
// events, files, sampling_seconds and a group member's exchange_seconds/exchanges; a reply from a worker that does not send sampling_seconds reads 0;
// malformed replies are corruption errors that name what is wrong.
#include <gtest/gtest.h>

#include <string>

#include "cluster/shard_runner.h"

namespace netdist::cluster {
namespace {

TEST(PromptReply, RoundTripsEveryField) {
  PromptReply r;
  r.status = Status::internal("node 3 failed");
  r.outputs = Json{{"9", {{"images", Json::array({{{"filename", "a_00001_.png"}, {"type", "output"}}})}}}};
  r.events = Json::array({Json::array({"executing", {{"node", "3"}}})});
  r.files.push_back({"output", "sub", "a_00001_.png", std::string("\x89PNG\0\x01", 6)});
  r.sampling_seconds = 1.25;
  r.exchange_seconds = 0.5;
  r.exchanges = 12;
  auto back = prompt_reply_from_json(Json::parse(prompt_reply_to_json(r).dump()));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->status.code(), StatusCode::kInternal);
  EXPECT_EQ(back->status.message(), "node 3 failed");
  EXPECT_EQ(back->outputs, r.outputs);
  EXPECT_EQ(back->events, r.events);
  ASSERT_EQ(back->files.size(), 1u);
  EXPECT_EQ(back->files[0].subfolder, "sub");
  EXPECT_EQ(back->files[0].bytes, r.files[0].bytes);
  EXPECT_DOUBLE_EQ(back->sampling_seconds, 1.25);
  EXPECT_DOUBLE_EQ(back->exchange_seconds, 0.5);
  EXPECT_EQ(back->exchanges, 12);
}

TEST(PromptReply, WithoutSamplingSecondsReadsZero) {
  Json j = prompt_reply_to_json(PromptReply{});
  j.erase("sampling_seconds");
  j.erase("exchange_seconds");
  j.erase("exchanges");
  auto back = prompt_reply_from_json(j);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->sampling_seconds, 0.0);
  EXPECT_EQ(back->exchanges, 0);
}

TEST(PromptReply, MalformedRepliesNameTheProblem) {
  const Json good = prompt_reply_to_json(PromptReply{});
  auto error_of = [](const Json& j) {
    auto r = prompt_reply_from_json(j);
    EXPECT_FALSE(r.is_ok()) << j.dump();
    return r.is_ok() ? std::string() : r.status().to_string();
  };
  Json j = good;
  j["sampling_seconds"] = -1;
  EXPECT_NE(error_of(j).find("sampling_seconds"), std::string::npos);
  j = good;
  j["sampling_seconds"] = "fast";
  EXPECT_NE(error_of(j).find("sampling_seconds"), std::string::npos);
  j = good;
  j["exchanges"] = 1.5;
  EXPECT_NE(error_of(j).find("exchanges"), std::string::npos);
  j = good;
  j.erase("exchange_seconds");
  EXPECT_NE(error_of(j).find("exchange_seconds"), std::string::npos) << "one without the other";
  j = good;
  j.erase("events");
  EXPECT_NE(error_of(j).find("\"events\""), std::string::npos);
  j = good;
  j["status"]["code"] = 999;
  EXPECT_NE(error_of(j).find("unknown status code 999"), std::string::npos);
  j = good;
  j["files"] = Json::array({{{"type", "output"}, {"subfolder", ""}, {"filename", "x.png"}}});
  EXPECT_NE(error_of(j).find("filename and data"), std::string::npos);
}

}  // namespace
}  // namespace netdist::cluster
