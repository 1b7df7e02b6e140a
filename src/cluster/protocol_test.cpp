#include "cluster/protocol.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace netdist::cluster::protocol {
namespace {

TEST(Protocol, EveryRouteHasOnePathAndComesBackFromIt) {
  for (Route r : {Route::capabilities, Route::status, Route::interrupt, Route::shard, Route::prompt, Route::pull,
                  Route::progress, Route::result, Route::join, Route::cluster, Route::models, Route::tile,
                  Route::group_kv}) {
    ASSERT_TRUE(is_protocol_path(path(r))) << path(r);
    EXPECT_EQ(route_of(path(r)), r) << path(r);
  }
  EXPECT_EQ(route_of("/netdist/v1/nothing"), std::nullopt);
  EXPECT_TRUE(is_protocol_path("/netdist/v1/nothing"));
  EXPECT_FALSE(is_protocol_path("/prompt"));
  EXPECT_STREQ(method(Route::shard), "POST");
  EXPECT_STREQ(method(Route::status), "GET");
  EXPECT_EQ(model_path("ab12"), std::string(path(Route::models)) + "/ab12");
}

TEST(Protocol, VersionMismatchNamesBothVersions) {
  Json caps = Json::object();
  Status none = check_version(caps, "worker w");
  EXPECT_EQ(none.code(), StatusCode::kUnsupported);
  EXPECT_NE(none.message().find("worker w speaks netdist protocol version none"), std::string::npos) << none.message();
  caps["protocol_version"] = kVersion + 1;
  Status other = check_version(caps, "worker w");
  EXPECT_NE(other.message().find("version " + std::to_string(kVersion + 1)), std::string::npos) << other.message();
  EXPECT_NE(other.message().find("speaks version " + std::to_string(kVersion)), std::string::npos) << other.message();
  stamp_version(caps);
  EXPECT_TRUE(check_version(caps, "worker w").is_ok());
}

TEST(Protocol, ShardAndPromptRequestsRoundTrip) {
  ShardRequest shard{"job1.0", Json{{"3", {{"class_type", "KSampler"}}}}, Json()};
  auto back = shard_request_from_json(to_json(shard));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->shard_id, "job1.0");
  EXPECT_EQ(back->workflow, shard.workflow);
  EXPECT_TRUE(back->inputs.is_null());
  EXPECT_FALSE(to_json(shard).contains("inputs"));

  PromptRequest prompt{"job2.prompt", "p", Json{{"9", Json::object()}}, Json::object(), Json::array({"9"}), Json()};
  auto p = prompt_request_from_json(to_json(prompt));
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p->task_id, "job2.prompt");
  EXPECT_EQ(p->outputs_to_execute, Json::array({"9"}));
}

TEST(Protocol, RequestParsersNameTheBadField) {
  EXPECT_NE(shard_request_from_json(Json{{"workflow", 1}}).status().message().find("\"workflow\" object"),
            std::string::npos);
  EXPECT_NE(shard_request_from_json(Json{{"workflow", Json::object()}, {"shard_id", 3}}).status().message().find(
                "\"shard_id\" must be a string"),
            std::string::npos);
  EXPECT_NE(prompt_request_from_json(Json{{"prompt", Json::object()}, {"prompt_id", "p"}, {"task_id", 1}})
                .status()
                .message()
                .find("\"task_id\" must be a string"),
            std::string::npos);
  EXPECT_FALSE(pull_request_from_json(Json{{"worker_id", ""}}).is_ok());
  EXPECT_FALSE(pull_request_from_json(Json{{"worker_id", "w"}, {"capabilities", 1}}).is_ok());
  EXPECT_FALSE(progress_request_from_json(Json{{"worker_id", "w"}, {"ticket", -1}}).is_ok());
  EXPECT_FALSE(progress_request_from_json(Json{{"worker_id", "w"}, {"ticket", 1}, {"events_from", -1}}).is_ok());
  EXPECT_FALSE(join_request_from_json(Json::array()).is_ok());
  EXPECT_FALSE(parse_events_from("-1").is_ok());
  EXPECT_FALSE(parse_events_from("").is_ok());
  EXPECT_EQ(parse_events_from("12").value(), 12u);
}

TEST(Protocol, PulledTaskCarriesKindTicketAndTheRequest) {
  PulledTask t;
  t.kind = TaskKind::prompt;
  t.ticket = 7;
  t.progress_ms = 250;
  t.request = to_json(PromptRequest{"t", "p", Json::object(), Json::object(), Json::array(), Json()});
  auto back = pulled_task_from_json(to_json(t));
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->kind, TaskKind::prompt);
  EXPECT_EQ(back->ticket, 7u);
  EXPECT_EQ(back->progress_ms, 250);
  EXPECT_EQ(back->request["prompt_id"], "p");
  // Tickets are unsigned on the wire (parsed JSON numbers >= 0 are).
  auto unknown = pulled_task_from_json(Json{{"ticket", 1u}, {"kind", "mosaic"}});
  ASSERT_TRUE(unknown.is_ok());
  EXPECT_EQ(unknown->kind, std::nullopt);
  EXPECT_EQ(unknown->kind_text, "\"mosaic\"");
  EXPECT_EQ(pulled_task_from_json(Json{{"ticket", 1u}})->kind, TaskKind::shard);  // an older coordinator
  EXPECT_FALSE(pulled_task_from_json(Json{{"kind", "shard"}}).is_ok());
}

TEST(Protocol, ResultQueryRoundTripsAndRefusesUnknownKinds) {
  ResultQuery q{"w1", 5, 200, TaskKind::prompt};
  std::map<std::string, std::string> values{{"worker_id", "w1"}, {"ticket", "5"}, {"status", "200"}, {"kind", "prompt"}};
  EXPECT_EQ(to_query(q), "worker_id=w1&ticket=5&status=200&kind=prompt");
  auto lookup = [&](const std::string& k) -> std::optional<std::string> {
    auto it = values.find(k);
    return it == values.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  auto back = result_query_from(lookup);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->ticket, 5u);
  EXPECT_EQ(back->kind, TaskKind::prompt);
  values["kind"] = "mosaic";
  EXPECT_NE(result_query_from(lookup).status().message().find("result kind 'mosaic'"), std::string::npos);
  values["status"] = "1e9";
  EXPECT_FALSE(result_query_from(lookup).is_ok());
}

TEST(Protocol, StatusReplyRoundTrips) {
  StatusReply st;
  st.running = "job1.0";
  st.step = 2;
  st.steps = 3;
  st.events = Json::array({Json::array({"progress", Json::object()})});
  auto back = status_reply_from_json(to_json(st));
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->running, "job1.0");
  EXPECT_EQ(back->steps, 3);
  ASSERT_TRUE(back->events.has_value());
  EXPECT_EQ(back->events->size(), 1u);
  EXPECT_FALSE(status_reply_from_json(Json::array()).is_ok());
  EXPECT_FALSE(to_json(StatusReply{}).contains("events"));
}

// A capability reply is input from another process: wrong JSON types are skipped, never thrown on.
TEST(Protocol, CapabilitiesSurviveWrongTypesAndRoundTrip) {
  Json hostile = Json::parse(R"({"node_classes": ["KSampler", 3, null, {"a": 1}],
                                 "models": [{"name": "a.safetensors", "sha256": 7, "bytes": -1}, 5, {"sha256": "x"},
                                            {"name": "b.safetensors", "fetch": true, "bytes": 10}],
                                 "benchmark": {"steps_per_second": "fast", "width": 64, "height": 64},
                                 "test_step_delay_ms": "soon"})");
  const Capabilities caps = capabilities_from_json(hostile);
  EXPECT_EQ(caps.node_classes, std::vector<std::string>{"KSampler"});
  ASSERT_EQ(caps.models.size(), 2u);
  EXPECT_EQ(caps.models[0].name, "a.safetensors");
  EXPECT_FALSE(caps.models[0].sha256.has_value());
  EXPECT_EQ(caps.models[0].bytes, 0u);
  EXPECT_TRUE(caps.models[1].fetch);
  ASSERT_TRUE(caps.benchmark.has_value());
  EXPECT_EQ(caps.benchmark->steps_per_second, 0.0);
  EXPECT_EQ(caps.test_step_delay_ms, 0.0);
  for (const Json& j : {Json(), Json(3), Json::array(), Json("caps")}) {
    const Capabilities none = capabilities_from_json(j);
    EXPECT_TRUE(none.node_classes.empty() && none.models.empty() && !none.benchmark) << j.dump();
  }

  Json reply = Json::object();
  put_capabilities(reply, {"KSampler"}, {ModelEntry{"", "m.safetensors", std::string(64, 'a'), 12, false}},
                   Benchmark{"tiny", 64, 64, 4, 8.5});
  const Capabilities back = capabilities_from_json(reply);
  ASSERT_EQ(back.models.size(), 1u);
  EXPECT_EQ(back.models[0].sha256, std::string(64, 'a'));
  EXPECT_EQ(back.models[0].bytes, 12u);
  ASSERT_TRUE(back.benchmark.has_value());
  EXPECT_EQ(back.benchmark->steps_per_second, 8.5);
}

TEST(Protocol, ModelListAndInputFilesNameWhatIsWrong) {
  EXPECT_FALSE(model_list_from_json(Json::object()).is_ok());
  ModelList list;
  list.models.push_back(ModelEntry{"lora", "x.safetensors", std::nullopt, 3, false});
  list.pending = 2;
  auto back = model_list_from_json(to_json(list));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  ASSERT_EQ(back->models.size(), 1u);
  EXPECT_EQ(back->models[0].kind, "lora");
  EXPECT_EQ(back->pending, 2);

  auto bad = input_file_from_json("in.png", Json{{"sha256", 1}, {"data", "AA=="}});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("in.png"), std::string::npos) << bad.status().message();
  auto good = input_file_from_json("in.png", to_json(InputFile{"ab", "AA=="}));
  ASSERT_TRUE(good.is_ok());
  EXPECT_EQ(good->data, "AA==");
}

}  // namespace
}  // namespace netdist::cluster::protocol
