#include "server/prompt_queue.h"

#include <gtest/gtest.h>

#include <atomic>

namespace netdist::server {
namespace {

using json = nlohmann::ordered_json;

QueueItem item(json number, const std::string& id) {
  QueueItem it;
  it.number = std::move(number);
  it.prompt_id = id;
  it.prompt = {{"1", {{"class_type", "X"}}}};
  it.extra_data = {{"client_id", "c"}};
  it.outputs_to_execute = json::array({"1"});
  return it;
}

TEST(PromptQueue, FrontGivesNegativeNumbersAndRunsFirst) {
  PromptQueue q;
  EXPECT_EQ(q.take_number(false), 0);
  EXPECT_EQ(q.take_number(false), 1);
  EXPECT_EQ(q.take_number(true), -2);
  q.put(item(1, "b"));
  q.put(item(-2, "front"));
  q.put(item(5.5, "float"));
  q.put(item(1, "a"));
  const json queue = q.queue_json();
  ASSERT_EQ(queue["queue_pending"].size(), 4u);
  EXPECT_EQ(queue["queue_pending"][0][1], "front");
  EXPECT_EQ(queue["queue_pending"][1][1], "a");
  EXPECT_EQ(queue["queue_pending"][2][1], "b");
  EXPECT_EQ(queue["queue_pending"][3][1], "float");
  auto running = q.get(std::chrono::milliseconds(0));
  ASSERT_TRUE(running);
  EXPECT_EQ(running->item.prompt_id, "front");
  EXPECT_EQ(q.tasks_remaining(), 4);
  EXPECT_EQ(q.queue_json()["queue_running"][0],
            json::parse(R"([-2, "front", {"1": {"class_type": "X"}}, {"client_id": "c"}, ["1"]])"));
}

TEST(PromptQueue, TaskDoneWritesComfyHistoryEntry) {
  PromptQueue q;
  int changes = 0;
  q.set_on_change([&](int64_t) { ++changes; });
  q.put(item(0, "p1"));
  auto running = q.get(std::chrono::milliseconds(0));
  ASSERT_TRUE(running);
  ExecutionStatus status{"success", true, json::array({json::array({"execution_start", {{"prompt_id", "p1"}}})})};
  q.task_done(running->task_id, {{"9", {{"images", json::array()}}}}, {{"9", {{"node_id", "9"}}}}, status);
  EXPECT_EQ(changes, 3);
  EXPECT_EQ(q.tasks_remaining(), 0);
  const json h = q.get_history_item("p1");
  ASSERT_TRUE(h.contains("p1"));
  const json& e = h["p1"];
  std::vector<std::string> keys;
  for (auto it = e.begin(); it != e.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"prompt", "outputs", "status", "meta"}));
  EXPECT_EQ(e["prompt"][1], "p1");
  EXPECT_EQ(e["status"]["status_str"], "success");
  EXPECT_EQ(e["status"]["completed"], true);
  EXPECT_EQ(e["status"]["messages"][0][0], "execution_start");
  EXPECT_EQ(q.get_history_item("nope"), json::object());
}

TEST(PromptQueue, HistoryIsBoundedAndSliced) {
  PromptQueue q(3);
  for (int i = 0; i < 6; ++i) {
    q.put(item(i, "p" + std::to_string(i)));
    auto r = q.get(std::chrono::milliseconds(0));
    ASSERT_TRUE(r);
    q.task_done(r->task_id, json::object(), json::object(), {"success", true, json::array()});
  }
  // ComfyUI evicts only when more than the maximum are held before an insert: at most max + 1 entries.
  EXPECT_EQ(q.history_size(), 4u);
  json all = q.get_history(std::nullopt, -1);
  EXPECT_EQ(all.begin().key(), "p2");
  json last2 = q.get_history(2, -1);
  ASSERT_EQ(last2.size(), 2u);
  EXPECT_EQ(last2.begin().key(), "p4");
  json offset = q.get_history(1, 1);
  ASSERT_EQ(offset.size(), 1u);
  EXPECT_EQ(offset.begin().key(), "p3");
  EXPECT_EQ(q.get_history(0, -1), json::object());
  q.delete_history_item("p3");
  EXPECT_EQ(q.history_size(), 3u);
  q.wipe_history();
  EXPECT_EQ(q.history_size(), 0u);
}

TEST(PromptQueue, DeleteAndWipePending) {
  PromptQueue q;
  std::atomic<int> changes{0};
  q.set_on_change([&](int64_t) { ++changes; });
  q.put(item(0, "a"));
  q.put(item(1, "b"));
  q.put(item(2, "c"));
  EXPECT_TRUE(q.delete_queue_item("b"));
  EXPECT_FALSE(q.delete_queue_item("zz"));
  EXPECT_EQ(q.tasks_remaining(), 2);
  q.wipe_queue();
  EXPECT_EQ(q.tasks_remaining(), 0);
  EXPECT_EQ(changes.load(), 5);
}

TEST(PromptQueue, GetWakesOnFlagsAndShutdown) {
  PromptQueue q;
  q.set_flag("free_memory", true);
  EXPECT_FALSE(q.get(std::chrono::seconds(5)));
  EXPECT_EQ(q.take_flags(), json({{"free_memory", true}}));
  EXPECT_EQ(q.take_flags(), json::object());
  std::thread t([&] { q.shutdown(); });
  EXPECT_FALSE(q.get(std::chrono::seconds(5)));
  t.join();
  EXPECT_TRUE(q.is_shutdown());
}

}  // namespace
}  // namespace netdist::server
